"""Which host objects the start-up sweep may remove: pure rules over given records, states, paths and
command lines.

The evidence. A daemon is its store. Its run root's ContainerRunDirectory layout,
``<runroot>/<driver>-containers/<id>/userdata``, is the bundle of every runtime container and monitor it
creates (podman, sharing the store, uses the same layout), and the store's container records say who made
each container: crio writes a JSON object with a ``pod-id`` key as a record's metadata, podman and buildah
do not. Everything else may be shared and proves nothing by its name alone: the runtime state directory
(``/run/runc``), the namespaces directory (``/var/run/netns``), the cgroup parent (``/crio``) and the exit
directory can serve other crio daemons (with other stores) and podman at the same time.

Owned objects are never touched: the loaded pods and containers, and the object of every journal entry
still pending (its recovery failed; the next start retries it).

An object is removed when it is *ours* by these rules and its ID is not owned:

1. Storage containers: a record of our store whose metadata is crio's. Another tool's record is never ours.
2. Runtime containers, in the state directory of every configured runtime handler: ours when the bundle is
   exactly ``<our run containers dir>/<id>/userdata`` with ``<id>`` the runtime container's own ID, and
   either our store has a crio record ``<id>``, or it has no record ``<id>`` at all and the container
   carries crio's annotation ``io.kubernetes.cri.container-type`` (a pod cannot set it; podman does not).
   A record of another tool makes the container that tool's.
3. Monitors (conmon processes): the same rule on their command line's bundle (``-b``) and container ID
   (``-c``); without a record, their exit directory (``--exit-dir``) must be this daemon's.
4. Proven IDs: the IDs of rules 1 to 3 and the pod IDs (``io.kubernetes.cri.sandbox-id``) of the runtime
   containers of rule 2. IDs are random, so no other daemon can own an object named after one.
5. Pinned namespace files ``crio-<id>`` (``netns/`` and ``userns/`` under the namespaces directory): only for
   a proven ``<id>``. A file whose ID nothing proves ours (a pod whose record and runtime container are both
   gone) is left alone: a daemon sharing the directory may own it.
6. Cgroups: only directories whose last component is ``crio-<id>`` of a proven ``<id>``: those the runtime
   reported for a runtime container of rule 2, and the bundle's ``linux.cgroupsPath`` (cgroupfs form)
   under every hierarchy. Removed only when empty (rmdir).
7. Storage directories (``<driver>-containers/<id>`` under both roots) of a proven ``<id>`` without a record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crio.core.spec.annotations import CONTAINER_TYPE, SANDBOX_ID
from crio.core.storage.layerid import is_id
from crio.core.types import RuntimeContainer

# The key that marks a storage record's metadata as crio's (the managers' create_container calls).
CRIO_METADATA_KEY = "pod-id"
# Pinned namespace files and container cgroups are named "crio-<id>".
PREFIX = "crio-"
USERDATA = "userdata"
# conmon options that take a value (short and long spellings); any other option is a flag.
_MONITOR_VALUE_OPTIONS = frozenset(
    {
        "-c", "--cid", "-u", "--cuuid", "-n", "--name", "-r", "--runtime", "-b", "--bundle",
        "-p", "--container-pidfile", "-P", "--conmon-pidfile", "-l", "--log-path", "--log-level",
        "--exit-dir", "--exit-command", "--exit-command-arg", "--exit-delay", "--socket-dir-path",
        "--persist-dir", "--runtime-arg", "--runtime-opt", "--log-size-max", "--log-tag", "--log-label",
        "--log-global-size-max", "--restore", "--restore-arg", "--exec-process-spec", "-T", "--timeout",
        "--api-version", "--seccomp-notify-socket", "--seccomp-notify-plugins", "--sdnotify-socket",
    }
)  # fmt: skip
_CID, _BUNDLE, _EXIT_DIR = ("-c", "--cid"), ("-b", "--bundle"), ("--exit-dir",)


def is_crio_metadata(metadata: str) -> bool:
    """Whether a storage record's metadata is crio's: a JSON object with a ``pod-id`` key."""
    try:
        parsed = json.loads(metadata or "null")
    except ValueError:
        return False
    return isinstance(parsed, dict) and CRIO_METADATA_KEY in parsed


def _normal(path: str | Path) -> str:
    return os.path.normpath(str(path))


@dataclass(frozen=True)
class Scope:
    """What the rules judge against: our run containers directory (and its aliases, e.g. its real path),
    our exit directory, the IDs of our store's records by maker, and the owned IDs."""

    run_containers_dirs: tuple[str, ...]
    exit_dir: str
    crio_records: frozenset[str]
    other_records: frozenset[str]
    owned: frozenset[str]

    @classmethod
    def of(
        cls,
        run_containers_dirs: Iterable[str | Path],
        exit_dir: str | Path,
        records: Iterable[tuple[str, str]],
        owned: Iterable[str],
    ) -> Scope:
        """Build a scope from the store's ``(id, metadata)`` records."""
        crio: set[str] = set()
        other: set[str] = set()
        for record_id, metadata in records:
            (crio if is_crio_metadata(metadata) else other).add(record_id)
        return cls(
            tuple(dict.fromkeys(_normal(d) for d in run_containers_dirs)),
            _normal(exit_dir),
            frozenset(crio),
            frozenset(other),
            frozenset(owned),
        )

    def storage_id_of(self, bundle: str) -> str | None:
        """The ID ``<id>`` when ``bundle`` is ``<run containers dir>/<id>/userdata``, else None."""
        if not bundle:
            return None
        path = Path(_normal(bundle))
        if path.name != USERDATA or not is_id(path.parent.name):
            return None
        return path.parent.name if str(path.parent.parent) in self.run_containers_dirs else None


def _verdict_of_store(scope: Scope, object_id: str, bundle: str) -> bool | None:
    """What the store says of a runtime container or monitor: not ours unless its bundle is our storage
    container ``object_id``'s; then ours with a crio record, not ours with another tool's record, and None
    (undecided: the caller's own evidence decides) without a record."""
    if scope.storage_id_of(bundle) != object_id:
        return False
    if object_id in scope.crio_records:
        return True
    if object_id in scope.other_records:
        return False
    return None


def runtime_container_is_ours(scope: Scope, container: RuntimeContainer) -> bool:
    """Rule 2: whether a runtime container is this daemon's (owned or not)."""
    verdict = _verdict_of_store(scope, container.id, container.bundle)
    return CONTAINER_TYPE in container.annotations if verdict is None else verdict


def orphan_runtime_containers(scope: Scope, listed: Iterable[RuntimeContainer]) -> list[RuntimeContainer]:
    """The runtime containers that are ours and not owned."""
    return [c for c in listed if c.id not in scope.owned and runtime_container_is_ours(scope, c)]


@dataclass(frozen=True)
class Monitor:
    """A monitor process as its command line describes it."""

    pid: int
    container_id: str
    bundle: str
    exit_dir: str


def _options(argv: Sequence[str]) -> dict[str, str]:
    """conmon's options with values (``-x VALUE``, ``--long VALUE`` or ``--long=VALUE``); first wins."""
    found: dict[str, str] = {}
    index = 1
    while index < len(argv):
        token = argv[index]
        index += 1
        if token.startswith("--") and "=" in token:
            key, _, value = token.partition("=")
            found.setdefault(key, value)
        elif token in _MONITOR_VALUE_OPTIONS and index < len(argv):
            found.setdefault(token, argv[index])
            index += 1
    return found


def _first(options: dict[str, str], names: Sequence[str]) -> str:
    return next((options[n] for n in names if n in options), "")


def parse_monitor(pid: int, argv: Sequence[str], names: Collection[str]) -> Monitor | None:
    """The monitor a process's command line describes, when its program is named in ``names`` (e.g.
    "conmon") and it names a container and a bundle; None for any other process."""
    if not argv or os.path.basename(argv[0]) not in names:
        return None
    options = _options(argv)
    container_id, bundle = _first(options, _CID), _first(options, _BUNDLE)
    if not container_id or not bundle:
        return None
    return Monitor(pid, container_id, bundle, _first(options, _EXIT_DIR))


def monitor_is_ours(scope: Scope, monitor: Monitor) -> bool:
    """Rule 3: whether a monitor watches a container of this daemon (owned or not)."""
    verdict = _verdict_of_store(scope, monitor.container_id, monitor.bundle)
    if verdict is not None:
        return verdict
    return bool(monitor.exit_dir) and _normal(monitor.exit_dir) == scope.exit_dir


def orphan_monitors(scope: Scope, monitors: Iterable[Monitor]) -> list[Monitor]:
    """The monitors that are ours and whose container is not owned."""
    return [m for m in monitors if m.container_id not in scope.owned and monitor_is_ours(scope, m)]


def orphan_records(scope: Scope) -> list[str]:
    """Rule 1: our store's crio records that are not owned, sorted."""
    return sorted(scope.crio_records - scope.owned)


def proven_ids(scope: Scope, containers: Iterable[RuntimeContainer], monitors: Iterable[Monitor]) -> set[str]:
    """Rule 4: the not owned IDs proven ours, from the orphan records, runtime containers and monitors."""
    proven = set(scope.crio_records)
    for container in containers:
        proven.add(container.id)
        pod_id = container.annotations.get(SANDBOX_ID, "")
        if is_id(pod_id):
            proven.add(pod_id)
    proven.update(m.container_id for m in monitors)
    return proven - scope.owned


def pinned_id(name: str) -> str | None:
    """The ID in a pinned namespace file name ``crio-<id>``, else None."""
    rest = name.removeprefix(PREFIX)
    return rest if rest != name and is_id(rest) else None


def orphan_pinned(names: Iterable[str], proven: Collection[str]) -> list[str]:
    """Rule 5: the pinned namespace file names (``crio-<id>``) of proven IDs, sorted."""
    return sorted(n for n in names if pinned_id(n) in proven)


def cgroup_dirs(
    container_id: str, reported: Iterable[str], cgroups_path: str, hierarchies: Iterable[str]
) -> list[str]:
    """Rule 6: the cgroup directories of a proven container: those the runtime reported and its cgroupfs
    ``cgroups_path`` under every hierarchy mount point, kept only when their last component is
    ``crio-<id>`` and they climb nowhere (no ``..``); sorted, without duplicates."""
    leaf = f"{PREFIX}{container_id}"
    candidates = [str(p) for p in reported]
    if cgroups_path and ":" not in cgroups_path:  # "slice:prefix:name" is systemd's, not a cgroupfs path
        relative = cgroups_path.strip("/")
        candidates += [os.path.join(root, relative) for root in hierarchies if relative]
    found = set()
    for candidate in candidates:
        parts = Path(candidate).parts
        if os.path.isabs(candidate) and ".." not in parts and parts[-1] == leaf:
            found.add(_normal(candidate))
    return sorted(found)

"""crio and containerd started together on scratch directories, ready for the same CRI client.

Both get the same content: runc (/usr/sbin/runc, under conmon for crio, under containerd-shim-runc-v2 for
containerd), a bridge + host-local + portmap conflist of the same shape (crio: ``criobench0``
10.78.0.0/16; containerd: ``ctrbench0`` 10.77.0.0/16 — neither meets podman's cni0, crio's crio0 or the
tests' criotest0), host-local allocations in the scratch directory, Debian's plugins from /usr/lib/cni,
and the same images from the local registry: crio's pause image is set to ``registry.k8s.io/pause:3.9``
and pulled from the registry (replacing the offline-built one of that name), as containerd's
``sandbox_image`` is. Pods go to a cgroup parent per runtime (``/crio-bench-crio``,
``/crio-bench-containerd``; cgroupfs).

``crio-baseline`` (with a ``baseline`` revision) is a second crio daemon set up exactly like ``crio`` by the
same code, but importing the ``crio`` package of that revision (``git archive`` into the scratch directory,
set as its ``PYTHONPATH``; checked and printed) and sharing nothing a daemon owns: its own scratch
subdirectory (socket, graph root and run root, exits, attach sockets, namespaces, logs, CNI config,
host-local data, runc state: every crio daemon here gets ``runtime_root`` under its directory), network
``crio-bench-baseline`` on bridge ``criobase0`` 10.79.0.0/16, cgroup parent ``/crio-bench-crio-baseline``.

On exit everything is stopped and removed through CRI, then checked: no monitor process (conmon /
shim), no veth on the benchmark bridges, no network namespace, no IPAM allocation, no cgroup left; the
daemons are stopped, the bridges deleted, the scratch directory unmounted and removed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType

from bench import registry
from bench.common import REPO, CriClient, CrioDaemon, remove_tree, scratch_dir
from bench.cri import PAUSE, remove_everything
from bench.peer_containerd import ContainerdDaemon, bridge_conflist, containerd_version

RUNTIMES = ("crio", "containerd")  # the default set
BASELINE = "crio-baseline"  # crio run from a checkout of another revision (SideBySide's ``baseline``)
KNOWN_RUNTIMES = (*RUNTIMES, BASELINE)
CRIO_BRIDGE = "criobench0"
CRIO_SUBNET = "10.78.0.0/16"
CRIO_NETWORK = "crio-bench"
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/var/run/netns")
PLUGIN_GROUP = "crio.plugins"  # the entry points crio finds its plugins by


@dataclass(frozen=True)
class CrioNetwork:
    """The pod network of one benchmark crio daemon (CNI network name, bridge, host-local subnet)."""

    name: str
    bridge: str
    subnet: str


CRIO_NETWORKS = {
    "crio": CrioNetwork(CRIO_NETWORK, CRIO_BRIDGE, CRIO_SUBNET),
    BASELINE: CrioNetwork("crio-bench-baseline", "criobase0", "10.79.0.0/16"),
}


# ------------------------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def all_pids() -> list[int]:
    """Every process on the host."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def children_map() -> dict[int, list[int]]:
    """ppid → child pids, for every process."""
    tree: dict[int, list[int]] = {}
    for pid in all_pids():
        tree.setdefault(_ppid(pid), []).append(pid)
    return tree


def tree_without(root: int, exclude: set[int]) -> list[int]:
    """``root`` and its descendants, skipping the subtrees rooted at ``exclude`` (the monitors)."""
    tree = children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        found.append(pid)
        todo.extend(tree.get(pid, []))
    return found


def conmon_pids(daemon_pid: int, exit_dir: Path) -> list[int]:
    """crio's monitors: ``conmon`` processes naming its exit dir, or re-parented to the daemon (subreaper)."""
    found = []
    for pid in all_pids():
        argv = _cmdline(pid)
        if not argv or os.path.basename(argv[0]) != "conmon":
            continue
        if str(exit_dir) in argv or _ppid(pid) == daemon_pid:
            found.append(pid)
    return sorted(found)


@dataclass(frozen=True)
class Memory:
    """RSS and PSS (KiB, from /proc/PID/smaps_rollup) summed over some processes."""

    processes: int
    rss_kib: int
    pss_kib: int

    def __add__(self, other: Memory) -> Memory:
        return Memory(
            self.processes + other.processes, self.rss_kib + other.rss_kib, self.pss_kib + other.pss_kib
        )


def memory_of(pids: Sequence[int]) -> Memory:
    """The RSS and PSS sums of ``pids`` (processes gone meanwhile count as nothing)."""
    count = rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                fields = {}
                for line in handle:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] in ("Rss:", "Pss:"):
                        fields[parts[0]] = int(parts[1])
        except OSError:
            continue
        count += 1
        rss += fields.get("Rss:", 0)
        pss += fields.get("Pss:", 0)
    return Memory(count, rss, pss)


# -------------------------------------------------------------------------------------------- runtimes


@dataclass
class Runtime:
    """One started runtime as the benchmarks see it."""

    name: str
    version: str
    client: CriClient
    daemon_pid: Callable[[], int]
    monitor_pids: Callable[[], list[int]]
    cgroup_parent: str
    log_root: Path
    bridge: str
    ipam_dir: Path
    netns_dir: Path | None  # where it pins pod network namespaces, when not the shared /var/run/netns
    code: str = ""  # crio: the source tree the daemon runs, checked (CrioDaemon.code_check)

    def daemon_memory(self) -> Memory:
        """The daemon and its helpers (its process tree without the monitors and their containers)."""
        return memory_of(tree_without(self.daemon_pid(), set(self.monitor_pids())))

    def monitors_memory(self) -> Memory:
        """Every per-container monitor (conmon for crio, containerd-shim-runc-v2 for containerd)."""
        return memory_of(self.monitor_pids())


def _crio_runtime(
    base: Path, images: Sequence[str], name: str = "crio", src: Path | None = None
) -> tuple[Runtime, CrioDaemon]:
    """A benchmark crio daemon named ``name`` (``crio`` or ``crio-baseline``) with every path under ``base``
    (socket, roots, exits, attach sockets, namespaces, logs, CNI config, host-local data, runc state), its
    own network (:data:`CRIO_NETWORKS`) and cgroup parent ``/crio-bench-NAME``, importing crio from ``src``
    (None: as :class:`CrioDaemon` decides)."""
    network = CRIO_NETWORKS[name]
    daemon = CrioDaemon(base, src=src, name=name)
    conflist = bridge_conflist(network.name, network.bridge, network.subnet, base / "ipam")
    (base / "cni" / f"10-{network.name}.conflist").write_text(json.dumps(conflist, indent=2) + "\n")
    (daemon.config_dir / "50-bench.conf").write_text(
        f'[crio.network]\nplugin_dirs = ["/usr/lib/cni"]\n[crio.image]\npause_image = "{PAUSE}"\n'
        f'[crio.runtime.runtimes.runc]\nruntime_root = "{base}/runc"\n'
    )
    daemon.start()
    try:
        code = daemon.code_check()
        for image in images:  # the pause image too: the registry's content replaces the offline build
            daemon.client.pull(image)
        version = daemon.client.version()
    except BaseException:
        daemon.stop()  # the caller does not know this daemon yet
        raise
    runtime = Runtime(
        name=name,
        version=version,
        client=daemon.client,
        daemon_pid=lambda: daemon.pid,
        monitor_pids=lambda: conmon_pids(daemon.pid, base / "exits"),
        cgroup_parent=f"/crio-bench-{name}",
        log_root=base / "podlogs",
        bridge=network.bridge,
        ipam_dir=base / "ipam",
        netns_dir=base / "ns" / "netns",
        code=code,
    )
    return runtime, daemon


@dataclass(frozen=True)
class Checkout:
    """The crio package of one revision of this repository, extracted into ``tree`` (``tree/crio``)."""

    tree: Path
    commit: str
    subject: str
    notes: tuple[str, ...] = ()  # what may make the checkout behave unlike that revision

    def describe(self) -> str:
        """``COMMIT (subject) in TREE``."""
        return f"{self.commit[:12]} ({self.subject}) in {self.tree}"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def checkout(ref: str, tree: Path) -> Checkout:
    """Extract ``crio/`` and ``pyproject.toml`` of revision ``ref`` into ``tree`` (``git archive``: no
    worktree is registered, nothing to prune afterwards; deleting ``tree`` removes it)."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise ValueError(f"--baseline {ref}: not a commit of {REPO}") from None
    subject = _git("log", "-1", "--format=%s", commit)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "crio", "pyproject.toml"],
        capture_output=True,
        check=True,
    ).stdout
    tree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return Checkout(tree, commit, subject, tuple(_plugin_notes(tree / "pyproject.toml")))


def _plugin_notes(pyproject: Path) -> list[str]:
    """Differences between the plugin entry points a checkout declares and the installed ones, which are
    what every daemon of this venv loads (its metadata is the editable install's, not the checkout's)."""
    declared = tomllib.loads(pyproject.read_text())["project"].get("entry-points", {}).get(PLUGIN_GROUP, {})
    installed = {
        ep.name: ep.value for ep in metadata.entry_points(group=PLUGIN_GROUP) if ep.value.startswith("crio.")
    }
    if declared == installed:
        return []
    return [f"its {PLUGIN_GROUP} entry points {declared} differ from the installed ones {installed}"]


def _containerd_runtime(base: Path, images: Sequence[str]) -> tuple[Runtime, ContainerdDaemon]:
    daemon = ContainerdDaemon(base)
    daemon.start()
    for image in images:
        daemon.client.pull(image)
    runtime = Runtime(
        name="containerd",
        version=daemon.client.version(),
        client=daemon.client,
        daemon_pid=lambda: daemon.pid,
        monitor_pids=daemon.shim_pids,
        cgroup_parent="/crio-bench-containerd",
        log_root=base / "podlogs",
        bridge=daemon.bridge,
        ipam_dir=daemon.ipam_dir,
        netns_dir=None,
    )
    return runtime, daemon


def image_ids(runtime: Runtime, images: Sequence[str]) -> dict[str, str]:
    """image name → the ID the runtime stored it under (the config digest for both)."""
    found = {}
    for image in images:
        status = runtime.client.image_status(image)
        found[image] = status.id if status is not None else "-"
    return found


# ------------------------------------------------------------------------------------------- leak checks


def cgroup_dirs(parent: str) -> list[Path]:
    """Every directory of the cgroup ``parent`` in every mounted hierarchy (v1 controllers and v2)."""
    found: list[Path] = []
    mounts = [CGROUP_ROOT, *CGROUP_ROOT.iterdir()] if CGROUP_ROOT.is_dir() else []
    for mount in mounts:  # cgroup v2 alone: the root itself is the hierarchy
        candidate = (mount / parent.lstrip("/")).resolve()  # cpu -> cpu,cpuacct symlinks: once each
        if candidate.is_dir() and candidate not in found and (mount != CGROUP_ROOT or _is_v2_root()):
            found.append(candidate)
    return found


def _is_v2_root() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").exists()


def remove_cgroup(parent: str) -> list[str]:
    """rmdir the (empty) cgroup ``parent`` bottom-up in every hierarchy; the paths that could not go."""
    left = []
    for top in cgroup_dirs(parent):
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                left.append(dirpath)
    return left


def veths_on(bridge: str) -> list[str]:
    """Interfaces enslaved to ``bridge``."""
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
    return [line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines() if ":" in line]


def ipam_allocations(ipam_dir: Path) -> list[str]:
    """host-local's allocation files (an IP address per file) under ``ipam_dir``."""
    if not ipam_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in ipam_dir.rglob("*")
        if p.is_file() and p.name != "lock" and not p.name.startswith("last_reserved_ip")
    )


def netns_entries(directory: Path) -> set[str]:
    """The pinned network namespaces in ``directory``."""
    return set(os.listdir(directory)) if directory.is_dir() else set()


def leaks(runtime: Runtime, netns_before: set[str]) -> list[str]:
    """What is left of ``runtime``'s pods after they were all removed (empty: nothing)."""
    found = []
    deadline = time.monotonic() + 10  # shims and conmons exit shortly after the task is deleted
    while runtime.monitor_pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    if monitors := runtime.monitor_pids():
        found.append(f"{len(monitors)} monitor processes {monitors[:5]}")
    if veths := veths_on(runtime.bridge):
        found.append(f"{len(veths)} veths on {runtime.bridge}")
    if allocations := ipam_allocations(runtime.ipam_dir):
        found.append(f"{len(allocations)} IPAM allocations {allocations[:5]}")
    if runtime.netns_dir is not None:
        pinned = netns_entries(runtime.netns_dir)
    else:
        pinned = netns_entries(NETNS_DIR) - netns_before
    if pinned:
        found.append(f"{len(pinned)} network namespaces {sorted(pinned)[:3]}")
    return found


# --------------------------------------------------------------------------------------------- together


class SideBySide:
    """Start the named runtimes (default crio and containerd) on one scratch directory, pre-pulling
    ``images``.

    ``crio-baseline`` is a second crio daemon running revision ``baseline`` (a git ref of this repository,
    extracted into the scratch directory), set up like ``crio`` on paths, a network and a cgroup parent of
    its own; it is added to ``names`` when ``baseline`` is given.

    A context manager: ``with SideBySide() as rts: ...``; ``rts.runtimes`` in the order given. On exit
    every pod and container is removed through CRI, the leak checks run (printed, and kept in
    ``leak_report``), then the daemons are stopped and all their traces removed (unless ``keep``).
    """

    def __init__(
        self,
        names: Sequence[str] = RUNTIMES,
        images: Sequence[str] = (PAUSE,),
        keep: bool = False,
        baseline: str | None = None,
    ) -> None:
        unknown = set(names) - set(KNOWN_RUNTIMES)
        if unknown:
            raise ValueError(f"unknown runtimes {sorted(unknown)}; choose from {KNOWN_RUNTIMES}")
        if len(set(names)) != len(names):
            raise ValueError(f"runtimes named twice: {list(names)}")
        self.names = list(names)
        if baseline and BASELINE not in self.names:
            self.names.append(BASELINE)
        if BASELINE in self.names and not baseline:
            raise ValueError(f"{BASELINE} needs a baseline revision")
        self.baseline = baseline
        self.checkout: Checkout | None = None
        self.images = list(images)
        self.keep = keep
        self.base = scratch_dir("cri")
        self.runtimes: list[Runtime] = []
        self.leak_report: dict[str, list[str]] = {}
        self._crios: dict[str, CrioDaemon] = {}
        self._containerd: ContainerdDaemon | None = None
        self._netns_before = netns_entries(NETNS_DIR)

    @property
    def _crio(self) -> CrioDaemon | None:
        """The ``crio`` daemon (the working tree's, or ``$CRIO_BENCH_SRC``'s), when started."""
        return self._crios.get("crio")

    def __enter__(self) -> SideBySide:
        registry.ensure_running()
        try:
            for name in self.names:
                if name == "containerd":
                    runtime, self._containerd = _containerd_runtime(self.base / "containerd", self.images)
                else:
                    src = None
                    if name == BASELINE:
                        assert self.baseline is not None
                        self.checkout = checkout(self.baseline, self.base / "baseline-src")
                        src = self.checkout.tree
                    runtime, self._crios[name] = _crio_runtime(self.base / name, self.images, name, src)
                self.runtimes.append(runtime)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def describe(self) -> str:
        """One line per runtime: version, daemon pid, pod network, and the stored image IDs."""
        lines = []
        for rt in self.runtimes:
            stored = image_ids(rt, self.images).items()
            ids = ", ".join(f"{name.rsplit('/', 1)[-1]}={iid[:19]}" for name, iid in stored)
            lines.append(
                f"{rt.name}: {rt.version}, pid {rt.daemon_pid()}, bridge {rt.bridge}, cgroup parent "
                f"{rt.cgroup_parent}; images {ids}"
            )
            if rt.code:
                lines.append(f"{rt.name} code: {rt.code}")
        if self.checkout is not None:
            lines.append(f"{BASELINE} revision: {self.baseline} = {self.checkout.describe()}")
            lines += [f"{BASELINE} WARNING: {note}" for note in self.checkout.notes]
        if self._containerd is not None:
            lines.append(f"containerd package {containerd_version()}, scratch {self.base}")
        return "\n".join(lines)

    def clean_pods(self) -> None:
        """Remove every pod and container of every runtime (errors reported, not raised)."""
        for rt in self.runtimes:
            for error in remove_everything(rt.client):
                print(f"cleanup {rt.name}: {error}")

    def close(self) -> None:
        """Remove all pods, check for leaks, stop the daemons and remove every trace."""
        for rt in self.runtimes:
            try:
                errors = remove_everything(rt.client)
            except Exception as exc:  # a dead daemon must not stop the cleanup
                errors = [f"{type(exc).__name__}: {exc}"]
            found = errors + leaks(rt, self._netns_before)
            self.leak_report[rt.name] = found
        for daemon in self._crios.values():
            daemon_pid = daemon.proc.pid if daemon.proc is not None else 0
            leftover = conmon_pids(daemon_pid, daemon.base / "exits")
            daemon.stop()
            for pid in leftover:
                _kill(pid)
            if not self.keep:
                remove_tree(daemon.base)
        if self._containerd is not None:
            if self.keep:
                self._containerd.stop()
                self._containerd.kill_shims()
            else:
                self._containerd.remove()
        for rt in self.runtimes:
            subprocess.run(["ip", "link", "del", rt.bridge], capture_output=True)
            if left := remove_cgroup(rt.cgroup_parent):
                self.leak_report.setdefault(rt.name, []).append(f"{len(left)} cgroups {left[:3]}")
        if not self.keep:
            remove_tree(self.base)
        for name, found in self.leak_report.items():
            print(f"cleanup {name}: " + ("; ".join(found) if found else "nothing left behind"))


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)

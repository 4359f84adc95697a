"""crio and containerd started together on scratch directories, ready for the same CRI client.

Both get the same content: runc (/usr/sbin/runc, under conmon for crio, under containerd-shim-runc-v2 for
containerd), a bridge + host-local + portmap conflist of the same shape (crio: ``criobench0``
10.78.0.0/16; containerd: ``ctrbench0`` 10.77.0.0/16 — neither meets podman's cni0, crio's crio0 or the
tests' criotest0), host-local allocations in the scratch directory, Debian's plugins from /usr/lib/cni,
and the same images from the local registry: crio's pause image is set to ``registry.k8s.io/pause:3.9``
and pulled from the registry (replacing the offline-built one of that name), as containerd's
``sandbox_image`` is. Pods go to a cgroup parent per runtime (``/crio-bench-crio``,
``/crio-bench-containerd``; cgroupfs).

On exit everything is stopped and removed through CRI, then checked: no monitor process (conmon /
shim), no veth on the benchmark bridges, no network namespace, no IPAM allocation, no cgroup left; the
daemons are stopped, the bridges deleted, the scratch directory unmounted and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bench import registry
from bench.common import CriClient, CrioDaemon, remove_tree, scratch_dir
from bench.cri import PAUSE, remove_everything
from bench.peer_containerd import ContainerdDaemon, bridge_conflist, containerd_version

RUNTIMES = ("crio", "containerd")
CRIO_BRIDGE = "criobench0"
CRIO_SUBNET = "10.78.0.0/16"
CRIO_NETWORK = "crio-bench"
CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/var/run/netns")


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

    def daemon_memory(self) -> Memory:
        """The daemon and its helpers (its process tree without the monitors and their containers)."""
        return memory_of(tree_without(self.daemon_pid(), set(self.monitor_pids())))

    def monitors_memory(self) -> Memory:
        """Every per-container monitor (conmon for crio, containerd-shim-runc-v2 for containerd)."""
        return memory_of(self.monitor_pids())


def _crio_runtime(base: Path, images: Sequence[str]) -> tuple[Runtime, CrioDaemon]:
    daemon = CrioDaemon(base)
    conflist = bridge_conflist(CRIO_NETWORK, CRIO_BRIDGE, CRIO_SUBNET, base / "ipam")
    (base / "cni" / "10-crio-bench.conflist").write_text(json.dumps(conflist, indent=2) + "\n")
    (daemon.config_dir / "50-bench.conf").write_text(
        f'[crio.network]\nplugin_dirs = ["/usr/lib/cni"]\n[crio.image]\npause_image = "{PAUSE}"\n'
    )
    daemon.start()
    for image in images:  # the pause image too: the registry's content replaces the offline build
        daemon.client.pull(image)
    runtime = Runtime(
        name="crio",
        version=daemon.client.version(),
        client=daemon.client,
        daemon_pid=lambda: daemon.pid,
        monitor_pids=lambda: conmon_pids(daemon.pid, base / "exits"),
        cgroup_parent="/crio-bench-crio",
        log_root=base / "podlogs",
        bridge=CRIO_BRIDGE,
        ipam_dir=base / "ipam",
        netns_dir=base / "ns" / "netns",
    )
    return runtime, daemon


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
    """Start the named runtimes (default both) on one scratch directory, pre-pulling ``images``.

    A context manager: ``with SideBySide() as rts: ...``; ``rts.runtimes`` in the order given. On exit
    every pod and container is removed through CRI, the leak checks run (printed, and kept in
    ``leak_report``), then the daemons are stopped and all their traces removed (unless ``keep``).
    """

    def __init__(
        self, names: Sequence[str] = RUNTIMES, images: Sequence[str] = (PAUSE,), keep: bool = False
    ) -> None:
        unknown = set(names) - set(RUNTIMES)
        if unknown:
            raise ValueError(f"unknown runtimes {sorted(unknown)}; choose from {RUNTIMES}")
        self.names = list(names)
        self.images = list(images)
        self.keep = keep
        self.base = scratch_dir("cri")
        self.runtimes: list[Runtime] = []
        self.leak_report: dict[str, list[str]] = {}
        self._crio: CrioDaemon | None = None
        self._containerd: ContainerdDaemon | None = None
        self._netns_before = netns_entries(NETNS_DIR)

    def __enter__(self) -> SideBySide:
        registry.ensure_running()
        try:
            for name in self.names:
                if name == "crio":
                    runtime, self._crio = _crio_runtime(self.base / "crio", self.images)
                else:
                    runtime, self._containerd = _containerd_runtime(self.base / "containerd", self.images)
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
        if self._crio is not None:
            crio_base = self._crio.base
            daemon_pid = self._crio.proc.pid if self._crio.proc is not None else 0
            leftover = conmon_pids(daemon_pid, crio_base / "exits")
            self._crio.stop()
            for pid in leftover:
                _kill(pid)
            if not self.keep:
                remove_tree(crio_base)
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

"""Crash harness: SIGKILL the daemon at random moments of a multi-client lifecycle loop, restart it, remove
everything through CRI, and count what was lost or leaked.

Each round: ``--clients`` threads loop RunPodSandbox → CreateContainer → StartContainer → ExecSync →
StopContainer → RemoveContainer → StopPodSandbox → RemovePodSandbox (every ``--pull-every``-th pass also
PullImage), each remembering what the daemon acknowledged; after a random delay the daemon gets SIGKILL, the
RPC each client had in flight is noted, and the daemon is started again. Then:

* **lost**: an acknowledged pod or container (not acknowledged as removed) that the restarted daemon does
  not list;
* **unremovable**: anything listed that Stop/Remove through CRI cannot remove;
* **leaks**, scoped to this daemon: mounts under its directory, pinned netns files, veths on its bridge, IP
  allocations of its network, iptables rules naming its network, its libcni cache entries, runc containers
  whose bundle is under its directory, processes (conmon, pause, runc init, container processes) in its
  cgroup parent or naming its directory, cgroups under its cgroup parent, storage containers, container
  layers and overlay directories no image needs, journal entries, and names still reserved (a pod with a
  used name cannot be run again).

Leaks are counted per round and attributed to the RPCs that were in flight; the daemon's directory is
cleaned up (and the leak removed) after each round, so rounds are independent. Prints a table per kind of
leak and per interrupted RPC. Needs root, the local registry and its images (see bench/README.md).

    .venv/bin/python -m bench.crash --kills 100
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench import registry
from bench.common import CriClient, CrioDaemon, mounts_under, print_table, remove_tree, scratch_dir
from bench.cri import BUSYBOX, container_config, pod_config
from crio.core.api import api_pb2 as pb
from crio.plugins.cni import cache

NETWORK = "crio-crash"
BRIDGE = "criocrash0"
SUBNET = "10.86.0.0/16"
CGROUP_PARENT = "/crio-crash"
IPAM_DIR = Path("/var/lib/cni/networks") / NETWORK
RPC_TIMEOUT = 60.0
CGROUP_ROOT = Path("/sys/fs/cgroup")


def conflist() -> dict[str, Any]:
    """The harness's own network: bridge with masquerading, host-local, portmap."""
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


@dataclass
class Acked:
    """What the daemon acknowledged to the clients: live pods and containers, and every pod name used."""

    pods: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    removing: set[str] = field(default_factory=set)  # a removal was asked for: gone after restart is fine
    names: set[tuple[str, str]] = field(default_factory=set)  # (name, uid) of every pod asked for
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client(threading.Thread):
    """One client looping over the lifecycle until the daemon dies under it."""

    def __init__(self, socket: str, acked: Acked, pull_every: int, log_root: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.client = CriClient(socket)
        self.acked = acked
        self.pull_every = pull_every
        self.log_root = log_root
        self.rng = random.Random(seed)
        self.in_flight = ""
        self.passes = 0

    def rpc(self, method: str, request: Any) -> Any:
        """Call ``method`` (of the image service for PullImage, else of the runtime service), noting it as in
        flight until it returns."""
        service = self.client.images if method == "PullImage" else self.client.runtime
        self.in_flight = method
        reply = getattr(service, method)(request, timeout=RPC_TIMEOUT)
        self.in_flight = ""
        return reply

    def run(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            while True:
                self.one_pass()

    def note(self, group: set[str], object_id: str, add: bool = True) -> None:
        """Record (or forget) an acknowledged object in one of the shared sets."""
        with self.acked.lock:
            if add:
                group.add(object_id)
            else:
                group.discard(object_id)

    def one_pass(self) -> None:
        self.passes += 1
        if self.pull_every and self.passes % self.pull_every == 0:
            self.rpc("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)))
        name = f"crash-{uuid.uuid4().hex[:8]}"
        config = pod_config(name, CGROUP_PARENT, self.log_root)
        with self.acked.lock:
            self.acked.names.add((name, config.metadata.uid))
        pod_id = self.rpc("RunPodSandbox", pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
        self.note(self.acked.pods, pod_id)
        request = pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container_config(BUSYBOX, ("sleep", "3600")), sandbox_config=config
        )
        cid = self.rpc("CreateContainer", request).container_id
        self.note(self.acked.containers, cid)
        self.rpc("StartContainer", pb.StartContainerRequest(container_id=cid))
        self.rpc("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10))
        self.rpc("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=self.rng.choice([0, 1])))
        self.note(self.acked.removing, cid)
        self.rpc("RemoveContainer", pb.RemoveContainerRequest(container_id=cid))
        self.note(self.acked.containers, cid, add=False)
        self.rpc("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        self.note(self.acked.removing, pod_id)
        self.rpc("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
        self.note(self.acked.pods, pod_id, add=False)


# ------------------------------------------------------------------------------------------------ leaks


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def leaks(daemon: CrioDaemon, pod_names: Iterable[tuple[str, str]], client: Any) -> dict[str, list[str]]:
    """What of this daemon is left on the host after every object was removed through CRI."""
    base = str(daemon.base)
    found: dict[str, list[str]] = collections.defaultdict(list)
    found["mounts"] = [m for m in mounts_under(daemon.base) if not m.endswith(("/ns/netns", "/ns/userns"))]
    netns_dir = daemon.base / "ns" / "netns"
    found["netns files"] = sorted(p.name for p in netns_dir.iterdir()) if netns_dir.exists() else []
    veths = _run(["ip", "-o", "link", "show", "master", BRIDGE])
    found["veths"] = [line.split(":")[1].strip() for line in veths.splitlines() if line.strip()]
    if IPAM_DIR.exists():
        found["IP allocations"] = sorted(
            p.name
            for p in IPAM_DIR.iterdir()
            if re.fullmatch(r"[0-9.]+|[0-9a-f:]+", p.name) and ":" not in p.name
        )
    nat = _run(["iptables-save", "-t", "nat"])
    found["iptables rules"] = [line for line in nat.splitlines() if f'\\"{NETWORK}\\"' in line]
    runc = _run(["runc", "list", "-f", "json"]) or "[]"
    found["CNI cache entries"] = _cached(daemon)
    found["runc containers"] = [
        c["id"] for c in json.loads(runc) or [] if str(c.get("bundle", "")).startswith(base)
    ]
    found["processes"] = _processes(base)
    found["cgroups"] = _cgroups()
    found.update(_storage(daemon))
    journal = daemon.root / "crio-journal"
    found["journal entries"] = sorted(p.name for p in journal.glob("*.json")) if journal.exists() else []
    found["reserved names"] = _reserved(client, pod_names)
    return dict(found)


def _cached(daemon: CrioDaemon) -> list[str]:
    """The daemon's entries in the node's libcni cache (tagged with its graph root)."""
    owner = cache.owner_for(str(daemon.root))
    found = cache.attachments(cache.DEFAULT_CACHE_DIR)
    return [f"{a.network_name}-{a.container_id[:12]}-{a.ifname}" for a in found if a.owner == owner]


def _processes(base: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state == "Z":  # exited; this VM's PID 1 reaps orphans about a second late
            continue
        if CGROUP_PARENT + "/" in cgroup or (
            base in cmdline and "crio " not in cmdline and "/crio " not in cmdline
        ):
            found.append(f"{entry.name} {cmdline[:80]}")
    return found


def _cgroups() -> list[str]:
    found = []
    for parent in CGROUP_ROOT.glob(f"*{CGROUP_PARENT}"):
        found += [str(p) for p in parent.iterdir() if p.is_dir()]
    return found


def _storage(daemon: CrioDaemon) -> dict[str, list[str]]:
    def load(name: str) -> list[dict[str, Any]]:
        path = daemon.root / name
        return json.loads(path.read_text() or "[]") if path.exists() else []

    containers = load("overlay-containers/containers.json")
    images = load("overlay-images/images.json")
    layers = load("overlay-layers/layers.json")
    by_id = {layer["id"]: layer for layer in layers}
    needed: set[str] = set()
    for image in images:
        layer_id = image.get("layer", "")
        while layer_id and layer_id not in needed:
            needed.add(layer_id)
            layer_id = by_id.get(layer_id, {}).get("parent", "")
    overlay_dirs = (
        {p.name for p in (daemon.root / "overlay").iterdir() if p.is_dir() and p.name not in ("l",)}
        if (daemon.root / "overlay").exists()
        else set()
    )
    return {
        "storage containers": [c["id"] for c in containers],
        "container layers": sorted(set(by_id) - needed),
        "overlay dirs": sorted(overlay_dirs - set(by_id)),
        "container dirs": sorted(
            p.name
            for directory in (daemon.root / "overlay-containers", daemon.runroot / "overlay-containers")
            if directory.exists()
            for p in directory.iterdir()
            if p.is_dir()
        ),
    }


def _reserved(client: Any, pod_names: Iterable[tuple[str, str]]) -> list[str]:
    """Names a fresh RunPodSandbox is refused (ALREADY_EXISTS); the pods it makes are removed at once."""
    found = []
    for name, uid in sorted(pod_names):
        config = pod_config(name, CGROUP_PARENT)
        config.metadata.uid = uid
        config.ClearField("log_directory")
        try:
            pod_id = client.runtime.RunPodSandbox(
                pb.RunPodSandboxRequest(config=config), timeout=RPC_TIMEOUT
            ).pod_sandbox_id
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                found.append(name)
            continue
        client.runtime.RemovePodSandbox(
            pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT
        )
    return found


# ------------------------------------------------------------------------------------------------ round


def remove_everything(client: Any) -> list[str]:
    """Stop and remove every container and pod through CRI; return what could not be removed."""
    failed = []
    for container in client.runtime.ListContainers(
        pb.ListContainersRequest(), timeout=RPC_TIMEOUT
    ).containers:
        try:
            client.runtime.StopContainer(
                pb.StopContainerRequest(container_id=container.id, timeout=0), timeout=RPC_TIMEOUT
            )
            client.runtime.RemoveContainer(
                pb.RemoveContainerRequest(container_id=container.id), timeout=RPC_TIMEOUT
            )
        except grpc.RpcError as exc:
            failed.append(f"container {container.id[:12]}: {exc.code().name} {exc.details()}")
    for pod in client.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items:
        try:
            client.runtime.StopPodSandbox(
                pb.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=RPC_TIMEOUT
            )
            client.runtime.RemovePodSandbox(
                pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=RPC_TIMEOUT
            )
        except grpc.RpcError as exc:
            failed.append(f"pod {pod.id[:12]}: {exc.code().name} {exc.details()}")
    return failed


@dataclass
class RoundResult:
    interrupted: list[str]
    lost: list[str]
    unremovable: list[str]
    leaks: dict[str, list[str]]
    restart_s: float


def one_round(
    daemon: CrioDaemon, clients: int, pull_every: int, max_delay: float, rng: random.Random
) -> RoundResult:
    acked = Acked()
    log_root = daemon.base / "pod-logs"
    workers = [
        Client(daemon.socket, acked, pull_every, log_root, rng.randrange(1 << 30)) for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    time.sleep(rng.uniform(0.05, max_delay))
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    interrupted = sorted(w.in_flight or "between RPCs" for w in workers)
    for worker in workers:
        worker.join(RPC_TIMEOUT)
        worker.client.close()
    daemon.proc = None
    with contextlib.suppress(Exception):
        daemon.client.close()
    daemon._client = None
    started = time.monotonic()
    daemon.start()
    restart_s = time.monotonic() - started
    client = daemon.client
    listed_pods = {
        p.id for p in client.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=RPC_TIMEOUT).items
    }
    listed_ctrs = {
        c.id
        for c in client.runtime.ListContainers(pb.ListContainersRequest(), timeout=RPC_TIMEOUT).containers
    }
    lost = [f"pod {p[:12]}" for p in acked.pods - listed_pods - acked.removing] + [
        f"container {c[:12]}" for c in acked.containers - listed_ctrs - acked.removing
    ]
    unremovable = remove_everything(client)
    found = leaks(daemon, acked.names, client)
    return RoundResult(interrupted, lost, unremovable, found, restart_s)


def clean_up(daemon: CrioDaemon) -> None:
    """Stop the daemon and remove whatever a round leaked, so the next round starts clean."""
    daemon.stop()
    for line in _run(["iptables-save", "-t", "nat"]).splitlines():
        if f'\\"{NETWORK}\\"' in line and line.startswith("-A "):
            subprocess.run(
                ["iptables", "-t", "nat", "-D", *_split(line[3:])], capture_output=True, check=False
            )
    runc = json.loads(_run(["runc", "list", "-f", "json"]) or "[]") or []
    for container in runc:
        if str(container.get("bundle", "")).startswith(str(daemon.base)):
            subprocess.run(["runc", "delete", "--force", container["id"]], capture_output=True, check=False)
    for line in _processes(str(daemon.base)):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    time.sleep(0.2)
    for path in sorted(_cgroups(), key=len, reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(path)
    for veth in _run(["ip", "-o", "link", "show", "master", BRIDGE]).splitlines():
        subprocess.run(
            ["ip", "link", "del", veth.split(":")[1].strip().split("@")[0]], capture_output=True, check=False
        )
    if IPAM_DIR.exists():
        remove_tree(IPAM_DIR)
    owner = cache.owner_for(str(daemon.root))
    for attachment in cache.attachments(cache.DEFAULT_CACHE_DIR):
        if attachment.owner == owner:
            cache.remove(
                cache.DEFAULT_CACHE_DIR, attachment.network_name, attachment.container_id, attachment.ifname
            )
    daemon.wipe_store()
    for sub in ("ns", "exits", "att", "pod-logs"):
        remove_tree(daemon.base / sub)


def _split(rule: str) -> list[str]:
    import shlex

    return shlex.split(rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10, help="rounds (one SIGKILL each); default 10")
    parser.add_argument("--clients", type=int, default=3, help="concurrent clients; default 3")
    parser.add_argument("--pull-every", type=int, default=4, help="PullImage every Nth pass (0: never)")
    parser.add_argument("--max-delay", type=float, default=2.0, help="kill within this many seconds")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0: from the clock)")
    parser.add_argument("--json", type=Path, help="also write the per-round results here")
    args = parser.parse_args()
    seed = args.seed or int(time.time())
    rng = random.Random(seed)
    registry.ensure_running()
    base = scratch_dir("crash")
    daemon = CrioDaemon(base)
    (base / "cni" / f"10-{NETWORK}.conflist").write_text(json.dumps(conflist()))
    by_kind: collections.Counter[str] = collections.Counter()
    by_rpc: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rounds: list[dict[str, Any]] = []
    restarts: list[float] = []
    try:
        for number in range(1, args.kills + 1):
            daemon.start()
            daemon.client.pull(BUSYBOX)
            result = one_round(daemon, args.clients, args.pull_every, args.max_delay, rng)
            restarts.append(result.restart_s)
            kinds = {kind: items for kind, items in result.leaks.items() if items}
            if result.lost:
                kinds["lost objects"] = result.lost
            if result.unremovable:
                kinds["unremovable objects"] = result.unremovable
            for kind, items in kinds.items():
                by_kind[kind] += len(items)
                for rpc in set(result.interrupted):
                    by_rpc[rpc][kind] += 1
            for rpc in set(result.interrupted):
                by_rpc[rpc]["rounds"] += 1
            rounds.append({"round": number, "interrupted": result.interrupted, "found": kinds})
            summary = ", ".join(f"{k} {len(v)}" for k, v in kinds.items()) or "clean"
            print(
                f"round {number}/{args.kills}: killed during {', '.join(result.interrupted)}: {summary}",
                flush=True,
            )
            clean_up(daemon)
    finally:
        clean_up(daemon)
        remove_tree(base)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
    kind_order = [
        "lost objects",
        "unremovable objects",
        "mounts",
        "netns files",
        "veths",
        "IP allocations",
        "iptables rules",
        "CNI cache entries",
        "runc containers",
        "processes",
        "cgroups",
        "storage containers",
        "container layers",
        "overlay dirs",
        "container dirs",
        "journal entries",
        "reserved names",
    ]
    print()
    print_table(
        f"Leaks after {args.kills} kills ({args.clients} clients, seed {seed}); restart median "
        f"{sorted(restarts)[len(restarts) // 2]:.2f} s",
        ["kind", "objects left"],
        [(kind, by_kind.get(kind, 0)) for kind in kind_order],
    )
    print()
    print_table(
        "Rounds with a leak, by the RPC a client had in flight at the kill",
        ["RPC in flight", "rounds", "rounds with any leak or loss"],
        [
            (rpc, counts["rounds"], sum(1 for r in rounds if rpc in r["interrupted"] and r["found"]))
            for rpc, counts in sorted(by_rpc.items())
        ],
    )
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1))
    total = sum(by_kind.values())
    print(f"\n{'no leaks, nothing lost' if total == 0 else f'{total} objects leaked or lost'}")
    raise SystemExit(0 if total == 0 else 1)


if __name__ == "__main__":
    main()

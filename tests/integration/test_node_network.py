"""Pod networks on a shared node: two daemons with separate roots, and teardown of half-gone networks.

Both daemons use one CNI network (the same name, bridge and subnet) and the node's shared libcni cache
(``/var/lib/cni``), as two crio instances on one node do. Pods are reached by ping from another pod's
network namespace (busybox's ping, run with ``nsenter``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from crio.plugins.cni import cache

from .conftest import CrioProcess, bridge_conflist
from .test_pods import ipam_allocations, nat_rules_mentioning, pod_config, pod_status, remove, run_pod, stop

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = shutil.which("busybox")
CNI_CACHE = Path(cache.DEFAULT_CACHE_DIR)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(BUSYBOX is None, reason="needs busybox (ping)"),
]


def start_daemon(base: Path) -> CrioProcess:
    """A daemon under ``base`` (its own root, run root and state) on the tests' bridge network."""
    daemon = CrioProcess(base)
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    return daemon.start()


def netns_of(daemon: CrioProcess, pod_id: str) -> str:
    info = json.loads(pod_status(daemon, pod_id, verbose=True).info["info"])
    return str(info["netns"])


def ping(from_netns: str, ip: str) -> subprocess.CompletedProcess[str]:
    """One ping from inside a pod's network namespace."""
    return subprocess.run(
        ["nsenter", f"--net={from_netns}", str(BUSYBOX), "ping", "-c", "1", "-W", "3", ip],
        capture_output=True,
        text=True,
        timeout=20,
    )


def cache_entry(pod_id: str) -> cache.Attachment | None:
    return cache.read(cache.path_for(CNI_CACHE, "crio-test", pod_id, "eth0"))


def remove_all_pods(daemon: CrioProcess) -> None:
    """Best effort, for a test that failed half-way: remove every pod the daemon still has."""
    try:
        for pod in daemon.runtime().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
            remove(daemon, pod.id)
    except grpc.RpcError:
        pass


@pytest.fixture
def bases(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two daemon directories; at the end their namespace mount points are released."""
    subprocess.run(["bash", str(REPO / "hack" / "host-network-setup.sh")], check=True, capture_output=True)
    pair = (tmp_path / "a", tmp_path / "b")
    yield pair
    for base in pair:
        for point in ("ns/netns", "ns/userns"):
            subprocess.run(["umount", "-l", str(base / point)], capture_output=True, check=False)


def test_restarting_one_daemon_keeps_the_other_daemons_pod_networks(bases: tuple[Path, Path]) -> None:
    a = start_daemon(bases[0])
    b = start_daemon(bases[1])
    daemons = [a, b]
    try:
        a1, a2 = run_pod(a, pod_config()), run_pod(a, pod_config())
        b1 = run_pod(b, pod_config())
        ip_a2 = pod_status(a, a2).status.network.ip
        netns_a1 = netns_of(a, a1)
        result = ping(netns_a1, ip_a2)
        assert result.returncode == 0, result.stdout + result.stderr

        # B crashes and comes back: its start-up GC runs over the shared cache.
        b.signal(9)
        b.wait(10)
        b = start_daemon(bases[1])
        daemons[1] = b
        assert pod_status(b, b1).status.state == pb.SANDBOX_READY
        # And B is stopped cleanly and started again.
        b.stop()
        b = start_daemon(bases[1])
        daemons[1] = b

        assert cache_entry(a1) is not None and cache_entry(a2) is not None, "B collected A's attachments"
        result = ping(netns_a1, ip_a2)
        assert result.returncode == 0, "A's pods lost their network: " + result.stdout + result.stderr
        assert pod_status(b, b1).status.network.ip  # B's own pod kept its address too
        owners = {pod: getattr(cache_entry(pod), "owner", None) for pod in (a1, a2, b1)}
        assert owners == {
            a1: f"crio:{bases[0] / 'root'}",
            a2: f"crio:{bases[0] / 'root'}",
            b1: f"crio:{bases[1] / 'root'}",
        }

        for daemon, pods in ((a, (a1, a2)), (b, (b1,))):
            for pod in pods:
                remove(daemon, pod)
        assert all(cache_entry(pod) is None for pod in (a1, a2, b1))
    finally:
        for daemon in daemons:
            remove_all_pods(daemon)
            daemon.stop()


def masquerade_rules(pod_id: str) -> tuple[list[str], list[str]]:
    """The bridge plugin's nat rules for the pod: the POSTROUTING jumps and its own chain's name(s)."""
    jumps = [r for r in nat_rules_mentioning(pod_id) if r.startswith("-A POSTROUTING")]
    chains = sorted({r.split(" -j ")[-1].split()[0] for r in jumps})
    return jumps, chains


def test_stop_succeeds_when_the_pods_iptables_chain_is_already_gone(bases: tuple[Path, Path]) -> None:
    daemon = start_daemon(bases[0])
    try:
        pod_id = run_pod(daemon, pod_config())
        ip = pod_status(daemon, pod_id).status.network.ip
        jumps, chains = masquerade_rules(pod_id)
        assert jumps and chains, nat_rules_mentioning(pod_id)
        # Someone (a firewall reload, an operator) removes the pod's masquerading chain: the bridge
        # plugin's DEL then fails with "Chain 'CNI-…' does not exist".
        for rule in jumps:
            subprocess.run(["iptables", "-t", "nat", "-D", *shlex.split(rule)[1:]], check=True)
        for chain in chains:
            subprocess.run(["iptables", "-t", "nat", "-F", chain], check=True)
            subprocess.run(["iptables", "-t", "nat", "-X", chain], check=True)

        stop(daemon, pod_id)

        assert pod_status(daemon, pod_id).status.state == pb.SANDBOX_NOTREADY
        assert ipam_allocations(ip) == []
        assert cache_entry(pod_id) is None
        assert nat_rules_mentioning(pod_id) == []
        remove(daemon, pod_id)
        with pytest.raises(grpc.RpcError) as err:
            pod_status(daemon, pod_id)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        remove_all_pods(daemon)
        daemon.stop()

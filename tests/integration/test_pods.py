"""Pod sandboxes on a real daemon: runc under conmon, Debian's CNI plugins, pinned namespaces, leak checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb

from .conftest import CrioFactory, CrioProcess, bridge_conflist

SUBNET_PREFIX = "10.89."


def pod_config(name: str = "", **extra: Any) -> pb.PodSandboxConfig:
    name = name or f"pod-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="crio-test", uid=uuid.uuid4().hex, attempt=0),
        hostname=name,
        labels={"app": "crio-test", "name": name},
        annotations={"note": "integration"},
    )
    for key, value in extra.items():
        if key == "sysctls":
            config.linux.sysctls.update(value)
        elif key == "port_mappings":
            config.port_mappings.extend(value)
        elif key == "host_network":
            config.linux.security_context.namespace_options.network = pb.NODE
        elif key == "dns":
            config.dns_config.CopyFrom(value)
    return config


def run_pod(daemon: CrioProcess, config: pb.PodSandboxConfig) -> str:
    return str(
        daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    )


def pod_status(daemon: CrioProcess, pod_id: str, verbose: bool = False) -> pb.PodSandboxStatusResponse:
    request = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose)
    response: pb.PodSandboxStatusResponse = daemon.runtime().PodSandboxStatus(request, timeout=30)
    return response


def stop(daemon: CrioProcess, pod_id: str) -> None:
    daemon.runtime().StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def remove(daemon: CrioProcess, pod_id: str) -> None:
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=120)


def storage_containers(daemon: CrioProcess) -> list[str]:
    path = daemon.base / "root" / "overlay-containers" / "containers.json"
    return [c["id"] for c in json.loads(path.read_text() or "[]")] if path.exists() else []


def host_links() -> dict[int, str]:
    """ifindex → name of every link in the host's network namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {int(line.split(":")[0]): line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def host_veth_of(netns: str) -> str:
    """The host end of the pod's eth0 veth (named by the peer index ``eth0@ifN`` inside the pod)."""
    argv = ["nsenter", f"--net={netns}", "ip", "-o", "link", "show", "eth0"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    peer = int(out.split(":")[1].strip().split("@if")[1])
    return host_links()[peer]


def mounts_under(path: Path) -> list[str]:
    return [
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line
    ]


def nat_rules_mentioning(text: str) -> list[str]:
    out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if text in line]


def ipam_allocations(ip: str) -> list[str]:
    return [str(p) for p in Path("/var/lib/cni/networks").glob(f"*/{ip}")]


def in_netns(netns: str, code: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={netns}", "python3", "-c", code], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    subprocess.run(["bash", str(Path(__file__).parents[2] / "hack" / "host-network-setup.sh")], check=True)
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    return d.start()


def test_pod_lifecycle_leaves_nothing_behind(daemon: CrioProcess) -> None:
    pod_id = run_pod(daemon, pod_config())
    status = pod_status(daemon, pod_id, verbose=True)
    assert status.status.state == pb.SANDBOX_READY
    ip = status.status.network.ip
    assert ip.startswith(SUBNET_PREFIX)
    info = json.loads(status.info["info"])
    assert info["pid"] > 0 and os.path.exists(f"/proc/{info['pid']}")
    assert info["runtimeSpec"]["linux"]["namespaces"]
    netns = info["netns"]
    assert os.path.exists(netns)
    veth = host_veth_of(netns)
    assert veth in host_links().values()
    assert pod_id in storage_containers(daemon)
    userdata = daemon.base / "root" / "overlay-containers" / pod_id / "userdata"
    assert (userdata / "config.json").exists()
    assert (daemon.base / "runroot" / "overlay-containers" / pod_id / "userdata" / "config.json").exists()
    listed = daemon.runtime().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items
    assert [p.id for p in listed] == [pod_id]

    stop(daemon, pod_id)
    stopped = pod_status(daemon, pod_id)
    assert stopped.status.state == pb.SANDBOX_NOTREADY
    assert not os.path.exists(f"/proc/{info['pid']}") or "Z" in Path(f"/proc/{info['pid']}/stat").read_text()
    assert ipam_allocations(ip) == []
    stop(daemon, pod_id)  # idempotent

    remove(daemon, pod_id)
    with pytest.raises(grpc.RpcError) as err:
        pod_status(daemon, pod_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not os.path.exists(netns)
    assert pod_id not in storage_containers(daemon)
    assert mounts_under(daemon.base / "root" / "overlay" / "") == [] or all(
        "overlay-containers" not in m for m in mounts_under(daemon.base)
    )
    assert [m for m in mounts_under(daemon.base) if pod_id in m] == []
    assert veth not in host_links().values()  # other links may come and go: other tests, other runtimes
    assert nat_rules_mentioning(ip) == []
    remove(daemon, pod_id)  # idempotent
    stop(daemon, "0" * 64)
    remove(daemon, "0" * 64)


def test_filters_and_name_reservation(daemon: CrioProcess) -> None:
    config = pod_config()
    pod_id = run_pod(daemon, config)
    assert run_pod(daemon, config) == pod_id  # a kubelet retry gets the same pod
    other = pod_config(config.metadata.name)
    other.metadata.uid = config.metadata.uid
    other.hostname = "different"
    with pytest.raises(grpc.RpcError) as err:
        run_pod(daemon, other)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert pod_id in (err.value.details() or "")
    second = run_pod(daemon, pod_config())

    def ids(flt: pb.PodSandboxFilter) -> list[str]:
        return [p.id for p in daemon.runtime().ListPodSandbox(pb.ListPodSandboxRequest(filter=flt)).items]

    assert ids(pb.PodSandboxFilter(id=pod_id[:10])) == [pod_id]
    assert ids(pb.PodSandboxFilter(label_selector={"name": config.metadata.name})) == [pod_id]
    stop(daemon, second)
    ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    assert ids(ready) == [pod_id]
    notready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert ids(notready) == [second]
    assert pod_status(daemon, pod_id[:12]).status.id == pod_id
    for pid in (pod_id, second):
        remove(daemon, pid)


@pytest.mark.parametrize(
    ("sysctls", "extra", "message"),
    [
        ({"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/evil"}, {}, "invalid value"),
        ({"kernel.shm_rmid_forced": "1\nkernel.core_pattern=x"}, {}, "invalid value"),
        ({"net.ipv4.ip_forward": "1 ; echo"}, {}, "invalid value"),
        ({"kernel/../../core_pattern": "x"}, {}, "invalid key"),
        ({"kernel.core_pattern": "core"}, {}, "not namespaced"),
        ({"vm.overcommit_memory": "1"}, {}, "not namespaced"),
        ({"net.ipv4.ip_forward": "1"}, {"host_network": True}, "host network"),
        ({"kernel.shm_rmid_forced": "1\0"}, {}, "invalid value"),
        ({"kernel.shm_rmid_forced": "../1"}, {}, "invalid value"),
    ],
)
def test_bad_sysctls_are_refused_before_anything_exists(
    daemon: CrioProcess, sysctls: dict[str, str], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        run_pod(daemon, pod_config(sysctls=sysctls, **extra))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (err.value.details() or "")
    assert storage_containers(daemon) == []
    assert (
        list((daemon.base / "ns" / "netns").glob("*")) == []
        if (daemon.base / "ns" / "netns").exists()
        else True
    )


def test_missing_metadata_is_invalid(daemon: CrioProcess) -> None:
    with pytest.raises(grpc.RpcError) as err:
        daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=pb.PodSandboxConfig()), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata" in (err.value.details() or "")


def test_sysctls_dns_and_hostname_are_applied(daemon: CrioProcess) -> None:
    dns = pb.DNSConfig(servers=["10.10.10.10"], searches=["google.com"], options=["ndots:8"])
    pod_id = run_pod(
        daemon,
        pod_config(
            sysctls={"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "80"}, dns=dns
        ),
    )
    info = json.loads(pod_status(daemon, pod_id, verbose=True).info["info"])
    pid = info["pid"]
    ipc = subprocess.run(
        ["nsenter", f"--ipc=/proc/{pid}/ns/ipc", "cat", "/proc/sys/kernel/shm_rmid_forced"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert ipc.stdout.strip() == "1"
    net = subprocess.run(
        ["nsenter", f"--net={info['netns']}", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert net.stdout.strip() == "80"
    userdata = daemon.base / "root" / "overlay-containers" / pod_id / "userdata"
    resolv = (userdata / "resolv.conf").read_text()
    assert (
        "nameserver 10.10.10.10" in resolv and "search google.com" in resolv and "options ndots:8" in resolv
    )
    uts = subprocess.run(
        ["nsenter", f"--uts=/proc/{pid}/ns/uts", "hostname"], capture_output=True, text=True, check=True
    )
    assert uts.stdout.strip() == info["runtimeSpec"]["hostname"]
    remove(daemon, pod_id)


SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); print("ready", flush=True)
c, _ = s.accept(); c.sendall(b"hello from the pod"); c.close()
"""


def serve_in_pod(netns: str, port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen(
        ["nsenter", f"--net={netns}", "python3", "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def test_two_pods_reach_each_other_and_a_host_port_is_served(daemon: CrioProcess) -> None:
    host_port = 12500 + os.getpid() % 400
    mapping = pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=host_port)
    a = run_pod(daemon, pod_config(port_mappings=[mapping]))
    b = run_pod(daemon, pod_config())
    info_a = json.loads(pod_status(daemon, a, verbose=True).info["info"])
    info_b = json.loads(pod_status(daemon, b, verbose=True).info["info"])
    ip_a = pod_status(daemon, a).status.network.ip
    server = serve_in_pod(info_a["netns"], 8080)
    client = in_netns(
        info_b["netns"],
        f"import socket; s = socket.create_connection(('{ip_a}', 8080), 5); print(s.recv(100).decode())",
    )
    server.wait(10)
    assert client.stdout.strip() == "hello from the pod", client.stderr
    server = serve_in_pod(info_a["netns"], 8080)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", host_port), 5) as conn:
                assert conn.recv(100) == b"hello from the pod"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    server.wait(10)
    remove(daemon, a)
    remove(daemon, b)
    assert nat_rules_mentioning(ip_a) == []
    assert nat_rules_mentioning(str(host_port)) == []


def test_host_network_pod(daemon: CrioProcess) -> None:
    pod_id = run_pod(daemon, pod_config(host_network=True))
    status = pod_status(daemon, pod_id, verbose=True)
    assert status.status.state == pb.SANDBOX_READY
    info = json.loads(status.info["info"])
    assert info["netns"] == ""
    assert os.readlink(f"/proc/{info['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
    remove(daemon, pod_id)


def test_pods_survive_a_daemon_restart(crio_factory: CrioFactory, daemon: CrioProcess) -> None:
    pod_id = run_pod(daemon, pod_config())
    pid = json.loads(pod_status(daemon, pod_id, verbose=True).info["info"])["pid"]
    daemon.signal(9)
    daemon.wait(10)
    again = crio_factory().start()
    status = pod_status(again, pod_id, verbose=True)
    assert status.status.state == pb.SANDBOX_READY
    assert json.loads(status.info["info"])["pid"] == pid
    remove(again, pod_id)
    assert storage_containers(again) == []

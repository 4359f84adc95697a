"""The CNI plugin with Debian's real plugins (bridge, host-local, portmap, loopback) and pinned namespaces.

Pods are network namespaces from :mod:`crio.core.netns`; servers and clients inside them are Python run
with ``nsenter``. After every teardown the tests check that nothing is left: no namespace file or mount,
no veth, no iptables rule naming the pod, no host-local allocation, no cache file. Needs root; uses the
bridge ``crtest0`` and 10.99.0.0/16 only.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import crio.plugins.cni as cni
from crio.core import netns
from crio.core.errors import FailedPrecondition
from crio.core.types import PodNetworkRequest, PodNetworkResult
from crio.plugins.cni import cache, invoke, ops
from crio.plugins.cni.conflist import parse_bytes
from crio.plugins.cni.errors import CniPluginError, CniPluginNotFound, CniTimeout
from crio.plugins.cni.runtimeconf import RuntimeConf

REPO = Path(__file__).resolve().parents[2]
DEBIAN_PLUGINS = "/usr/lib/cni"
BRIDGE = "crtest0"
SUBNET = "10.99.0.0/16"
PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
    pytest.mark.skipif(not os.path.exists(f"{DEBIAN_PLUGINS}/bridge"), reason="containernetworking-plugins"),
]

SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[1])))
server.listen(8)
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    conn, peer = server.accept()
    conn.sendall(sys.argv[3].encode() + b" to " + peer[0].encode())
    conn.close()
"""
CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as conn:
    print(conn.recv(100).decode())
"""


def conflist(
    name: str, ipam_dir: Path, subnet: str = SUBNET, *extra: dict[str, Any], masquerade: bool = True
) -> dict[str, Any]:
    """bridge (+ host-local in a private data dir) and portmap, then ``extra`` plugins."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": masquerade,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(ipam_dir),
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": subnet}]],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            *extra,
        ],
    }


@pytest.fixture(scope="module", autouse=True)
def host_network() -> Iterator[None]:
    """The hostPort host set-up (idempotent script); the test bridge is deleted at the end."""
    subprocess.run([str(REPO / "hack" / "host-network-setup.sh")], check=True, capture_output=True)
    yield
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


@dataclass
class Env:
    """One test's directories: network config, plugin dirs, cache, IPAM data, namespaces."""

    base: Path
    net_dir: Path
    fake_bin: Path
    cache_dir: Path
    ipam_dir: Path
    ns_dir: Path
    pods: list[Pod] = field(default_factory=list)

    def write(self, data: dict[str, Any]) -> bytes:
        """Make ``data`` the only network list in the config directory; return its bytes."""
        for old in self.net_dir.iterdir():
            old.unlink()
        raw = json.dumps(data, indent=1).encode()
        (self.net_dir / f"10-{data['name']}.conflist").write_bytes(raw)
        return raw

    def fake_plugin(self, name: str, body: str) -> None:
        """A shell-script plugin in the private plugin dir (searched before Debian's)."""
        path = self.fake_bin / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(stat.S_IRWXU)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(
        tmp_path, tmp_path / "net.d", tmp_path / "bin", tmp_path / "cache", tmp_path / "ipam", tmp_path / "ns"
    )
    for directory in (e.net_dir, e.fake_bin):
        directory.mkdir()
    e.write(conflist("crtest", e.ipam_dir))
    cni.STATE.readiness.configure(str(e.net_dir), (str(e.fake_bin), DEBIAN_PLUGINS))
    cni._set_cache_dir(str(e.cache_dir))
    yield e
    for pod in e.pods:  # a failed test must not leak: DEL whatever is still cached
        asyncio.run(cni.crio_network_teardown(pod.request))
    cni.STATE.readiness.configure("/etc/cni/net.d/", ())
    cni._set_cache_dir(cache.DEFAULT_CACHE_DIR)
    if e.ns_dir.exists():
        for entry in e.ns_dir.iterdir():
            netns.remove(entry)
        subprocess.run(["umount", "-l", str(e.ns_dir)], capture_output=True)
        netns._prepared.discard(os.path.realpath(e.ns_dir))


@dataclass
class Pod:
    """A pod for these tests: its request and, once attached, its result."""

    request: PodNetworkRequest
    result: PodNetworkResult | None = None

    @property
    def id(self) -> str:
        return self.request.pod_id

    @property
    def ip(self) -> str:
        assert self.result is not None
        return self.result.ips[0]

    @property
    def path(self) -> str:
        return self.request.netns_path


_counter = iter(range(1_000_000))


def new_pod(e: Env, **changes: Any) -> Pod:
    """A fresh pinned namespace and a request for it (pod IDs are unique across the session)."""
    pod_id = f"crtest{os.getpid()}x{next(_counter)}" + "0" * 40
    path = netns.create(e.ns_dir, pod_id)
    request = PodNetworkRequest(
        pod_id, f"pod-{pod_id[:12]}", "crtest", f"uid-{pod_id[:12]}", str(path), **changes
    )
    e.pods.append(Pod(request))
    return e.pods[-1]


def setup(pod: Pod) -> Pod:
    pod.result = asyncio.run(cni.crio_network_setup(pod.request))
    return pod


def teardown(pod: Pod) -> None:
    asyncio.run(cni.crio_network_teardown(pod.request))


def host_veths(result: PodNetworkResult | None) -> list[str]:
    """The host-side veth names of an ADD result (interfaces without a sandbox, bridge excluded)."""
    if result is None:
        return []
    interfaces = result.details["result"]["interfaces"]
    return [i["name"] for i in interfaces if not i.get("sandbox") and i["name"] != BRIDGE]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve(pod: Pod, port: int, connections: int, reply: str) -> subprocess.Popen[str]:
    """A TCP server inside the pod answering ``connections`` clients with ``reply``."""
    server = subprocess.Popen(
        ["nsenter", f"--net={pod.path}", PYTHON, "-c", SERVER, str(port), str(connections), reply],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return server


def fetch(address: str, port: int, inside: Pod | None = None) -> str:
    """Connect to ``address:port`` from the host (or from inside a pod) and return what is sent."""
    prefix = ["nsenter", f"--net={inside.path}"] if inside else []
    done = subprocess.run(
        [*prefix, PYTHON, "-c", CLIENT, address, str(port)], capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def in_pod(pod: Pod, *argv: str) -> str:
    return subprocess.run(
        ["nsenter", f"--net={pod.path}", *argv], capture_output=True, text=True, check=True
    ).stdout


def links(pod: Pod) -> list[str]:
    """The names of the pod's network interfaces."""
    return [line.split(": ")[1].split("@")[0] for line in in_pod(pod, "ip", "-o", "link").splitlines()]


def assert_nothing_left(e: Env, pods: list[Pod], veths: list[str], ips: list[str]) -> None:
    """No namespace, veth, iptables rule, IPAM allocation or cache entry of ``pods`` is left."""
    for pod in pods:
        assert not os.path.exists(pod.path), pod.path
        assert pod.path not in Path("/proc/self/mountinfo").read_text()
    for veth in veths:
        shown = subprocess.run(["ip", "link", "show", veth], capture_output=True)
        assert shown.returncode != 0, f"veth {veth} is left"
    enslaved = subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True)
    assert enslaved.stdout.strip() == "", enslaved.stdout
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    for text in [*ips, *(pod.id for pod in pods)]:
        assert text not in rules, f"iptables still mentions {text}"
    allocated = [p.name for p in e.ipam_dir.rglob("*") if p.is_file() and p.name[0].isdigit()]
    assert allocated == [], f"IPAM allocations left: {allocated}"
    assert not any(p.is_file() for p in (e.cache_dir / "results").glob("*")), "cache entries left"


def finish(e: Env, pods: list[Pod]) -> None:
    """Tear every pod down, unpin its namespace, then check that nothing is left."""
    veths = [v for pod in pods for v in host_veths(pod.result)]
    ips = [pod.ip for pod in pods if pod.result is not None]
    for pod in pods:
        teardown(pod)
        netns.remove(pod.path)
    assert_nothing_left(e, pods, veths, ips)


def test_two_pods_talk_and_a_host_port_is_served(env: Env) -> None:
    host_port = free_port()
    a = setup(
        new_pod(env, port_mappings=[{"container_port": 8080, "host_port": host_port}, {"container_port": 9}])
    )
    b = setup(new_pod(env))
    assert a.ip != b.ip and a.ip.startswith("10.99.") and b.ip.startswith("10.99.")
    assert "<LOOPBACK,UP," in in_pod(a, "ip", "-o", "link", "show", "lo")  # the loopback plugin ran
    assert f"{a.ip}/16" in in_pod(a, "ip", "-o", "addr", "show", "eth0")
    assert asyncio.run(cni.crio_network_pod_status(a.request)).ips == (a.ip,)

    server_a = serve(a, 8080, 3, "hello from a")
    server_b = serve(b, 8081, 1, "hello from b")
    try:
        assert fetch(a.ip, 8080, inside=b) == f"hello from a to {b.ip}"
        assert fetch(b.ip, 8081, inside=a) == f"hello from b to {a.ip}"
        assert fetch(a.ip, 8080).startswith("hello from a")  # host → pod over the bridge
        assert fetch("127.0.0.1", host_port).startswith("hello from a")  # hostPort through DNAT
    finally:
        for server in (server_a, server_b):
            server.kill()
            server.wait()
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True).stdout
    assert f"--dport {host_port}" in rules and a.id in rules
    finish(env, [a, b])


def test_teardown_after_the_namespace_is_gone(env: Env) -> None:
    # Debian's bridge (1.1.1) removes its ipMasq rules only while the namespace exists, since it learns the
    # addresses from eth0 (containernetworking/plugins#810): the core DELs before unpinning; here: no ipMasq.
    env.write(conflist("crtest", env.ipam_dir, masquerade=False))
    pod = setup(new_pod(env, port_mappings=[{"container_port": 80, "host_port": free_port()}]))
    veths, ip = host_veths(pod.result), pod.ip
    netns.remove(pod.path)
    teardown(pod)
    teardown(pod)  # idempotent
    assert_nothing_left(env, [pod], veths, [ip])


def test_teardown_uses_the_config_the_pod_was_set_up_with(env: Env) -> None:
    pod = setup(new_pod(env))
    env.write(conflist("crtest-new", env.base / "ipam-new", "10.99.128.0/17"))
    assert cni.crio_network_status().message.startswith("CNI network 'crtest-new'")
    assert [p.name for p in (env.ipam_dir / "crtest").iterdir() if p.name == pod.ip]
    finish(env, [pod])


def test_check_sees_a_broken_attachment(env: Env) -> None:
    env.write(
        {**conflist("crtest", env.ipam_dir), "plugins": conflist("crtest", env.ipam_dir)["plugins"][:1]}
    )
    pod = setup(new_pod(env))
    asyncio.run(cni.check(pod.request))
    in_pod(pod, "ip", "link", "set", "eth0", "address", "02:00:00:00:00:99")
    with pytest.raises(CniPluginError, match=r"bridge \(CHECK\).*Mac"):
        asyncio.run(cni.check(pod.request))
    finish(env, [pod])


def test_missing_plugin_binary(env: Env) -> None:
    env.write(conflist("crtest", env.ipam_dir, SUBNET, {"type": "nosuch-plugin"}))
    pod = new_pod(env)
    with pytest.raises(FailedPrecondition, match="nosuch-plugin not found"):
        setup(pod)
    # the binary vanishing after the network was selected: bridge and portmap are deleted again
    network = parse_bytes(
        json.dumps(conflist("crtest", env.ipam_dir, SUBNET, {"type": "gone"})).encode(), "t"
    )
    rt = RuntimeConf(pod.id, pod.path)
    with pytest.raises(CniPluginNotFound, match="plugin 'gone' not found"):
        asyncio.run(ops.add_network_list(network, rt, [DEBIAN_PLUGINS], env.cache_dir))
    assert links(pod) == ["lo"]  # only lo: the veth is gone
    finish(env, [pod])


def test_hanging_plugin(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invoke, "PLUGIN_TIMEOUT", 2.0)
    env.fake_plugin("hang", '[ "$CNI_COMMAND" = ADD ] && exec sleep 60\nexit 0')
    env.write(conflist("crtest", env.ipam_dir, SUBNET, {"type": "hang"}))
    pod = new_pod(env, port_mappings=[{"container_port": 80, "host_port": free_port()}])
    started = time.monotonic()
    with pytest.raises(CniTimeout, match=r"hang \(ADD\)"):
        setup(pod)
    assert time.monotonic() - started < 15
    assert links(pod) == ["lo"]
    finish(env, [pod])
    assert subprocess.run(["pgrep", "-f", "^sleep 60$"], capture_output=True).stdout == b""


def test_plugin_error_reply(env: Env) -> None:
    reply = json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "no capacity", "details": "try later"})
    env.fake_plugin("refuse", f"[ \"$CNI_COMMAND\" = ADD ] || exit 0\necho '{reply}'\nexit 1")
    env.write(conflist("crtest", env.ipam_dir, SUBNET, {"type": "refuse"}))
    pod = new_pod(env)
    with pytest.raises(CniPluginError, match=r"refuse \(ADD\).*no capacity \(try later\)") as info:
        setup(pod)
    assert info.value.plugin == "refuse" and info.value.cni_code == 7
    finish(env, [pod])


def test_gc_deletes_attachments_of_gone_pods(env: Env) -> None:
    keep, stale = setup(new_pod(env)), setup(new_pod(env))
    report = asyncio.run(cni.gc([keep.id]))
    assert set(report.deleted) == {stale.id} and not report.failed
    assert not (env.cache_dir / "results" / f"crtest-{stale.id}-eth0").exists()
    assert (env.cache_dir / "results" / f"crtest-{keep.id}-eth0").exists()
    assert links(stale) == ["lo"]
    stale_veths = host_veths(stale.result)
    netns.remove(stale.path)
    finish(env, [keep])
    assert_nothing_left(env, [stale], stale_veths, [stale.ip])


def test_pods_in_parallel(env: Env) -> None:
    pods = [new_pod(env) for _ in range(6)]

    async def attach_all() -> list[PodNetworkResult]:
        return list(await asyncio.gather(*(cni.crio_network_setup(p.request) for p in pods)))

    for pod, result in zip(pods, asyncio.run(attach_all()), strict=True):
        pod.result = result
    assert len({p.ip for p in pods}) == len(pods)
    finish(env, pods)


def test_host_network_setup_is_idempotent() -> None:
    script = str(REPO / "hack" / "host-network-setup.sh")
    for _ in range(2):
        subprocess.run([script], check=True, capture_output=True)
    rules = subprocess.run(
        ["iptables", "-t", "nat", "-S", "POSTROUTING"], capture_output=True, text=True
    ).stdout
    assert rules.count("-s 127.0.0.0/8 ! -d 127.0.0.0/8 -j MASQUERADE") == 1
    assert Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text().strip() == "1"
    assert shutil.which("iptables") is not None

"""The CNI plugin's hooks against fake plugin binaries: chaining, cache, clean-up, DEL, CHECK and GC.

The fake plugins are small Python scripts that log each call (command, CNI_* variables, stdin) and behave
according to their name; no root and no real networking are needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import crio.plugins.cni as cni
from crio.core.errors import FailedPrecondition, NotFound
from crio.core.types import PodNetworkRequest
from crio.plugins.cni import cache, invoke, ops
from crio.plugins.cni.conflist import parse_bytes
from crio.plugins.cni.errors import CniPluginError, CniPluginNotFound, CniTimeout
from crio.plugins.cni.runtimeconf import RuntimeConf

FAKE_PLUGIN = r"""
import json, os, sys, time
me = os.path.basename(sys.argv[0])
command = os.environ["CNI_COMMAND"]
stdin = json.loads(sys.stdin.read() or "null")
env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
with open(os.path.join(os.environ["FAKE_CNI_LOG"], "calls.jsonl"), "a") as log:
    log.write(json.dumps({"cmd": command, "plugin": me, "env": env, "stdin": stdin}) + "\n")
if me == "fhang" and command == "ADD":
    os.execvp("sleep", ["sleep", "30"])
if (me == "ferr" and command == "ADD") or (me == "fdelerr" and command == "DEL"):
    print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "boom from " + me, "details": "more"}))
    sys.exit(1)
if me == "fgone" and command == "DEL":
    sys.stderr.write("running [iptables -t nat -D POSTROUTING -j CNI-0a1b]: exit status 1: "
                     "iptables v1.8.9 (nf_tables): Chain 'CNI-0a1b' does not exist\n")
    sys.exit(1)
if me == "fonce" and command == "DEL":
    marker = os.path.join(os.environ["FAKE_CNI_LOG"], "fonce-failed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        print(json.dumps({"cniVersion": "1.0.0", "code": 999, "msg": "stopped half-way"}))
        sys.exit(1)
if me == "fstderr" and command == "ADD":
    sys.stderr.write("plain failure text\n")
    sys.exit(2)
if command != "ADD" or me == "fnoout":
    sys.exit(0)
prev = stdin.get("prevResult")
if prev is not None:
    prev.setdefault("ips", []).append({"address": "10.2.0.1/24", "interface": 0})
    print(json.dumps(prev))
else:
    cid = env["CNI_CONTAINERID"]
    last = sum(map(ord, cid)) % 250 + 2
    print(json.dumps({
        "cniVersion": stdin["cniVersion"],
        "interfaces": [{"name": env["CNI_IFNAME"], "sandbox": env["CNI_NETNS"] or "x"}],
        "ips": [{"address": f"10.1.0.{last}/24", "interface": 0}],
    }))
"""
PLUGINS = ("fa", "fb", "ferr", "fhang", "fdelerr", "fgone", "fonce", "fstderr", "fnoout", "loopback")


class FakeCni:
    """A plugin directory of fake plugins, a network directory, a cache directory and the call log."""

    def __init__(self, base: Path) -> None:
        self.bin = base / "bin"
        self.net = base / "net.d"
        self.cache = base / "cache"
        self.log = base / "log"
        for directory in (self.bin, self.net, self.log):
            directory.mkdir()
        for name in PLUGINS:
            path = self.bin / name
            path.write_text(f"#!{sys.executable}\n{FAKE_PLUGIN}")
            path.chmod(stat.S_IRWXU)

    def conflist(
        self, *plugins: str | dict[str, Any], version: str = "1.0.0", name: str = "fake", **extra: Any
    ) -> bytes:
        """Write the network list (as the only file) and return its bytes."""
        for old in self.net.iterdir():
            old.unlink()
        entries = [p if isinstance(p, dict) else {"type": p} for p in plugins]
        data = json.dumps({"cniVersion": version, "name": name, "plugins": entries, **extra}).encode()
        (self.net / f"10-{name}.conflist").write_bytes(data)
        return data

    def calls(self) -> list[dict[str, Any]]:
        path = self.log / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def sequence(self) -> list[str]:
        return [f"{c['cmd']} {c['plugin']}" for c in self.calls()]

    def cached(self) -> list[str]:
        """The names of the cache files."""
        results = self.cache / "results"
        return sorted(p.name for p in results.iterdir()) if results.exists() else []

    def reset(self) -> None:
        (self.log / "calls.jsonl").unlink(missing_ok=True)


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCni]:
    env = FakeCni(tmp_path)
    monkeypatch.setenv("FAKE_CNI_LOG", str(env.log))
    monkeypatch.setenv("CNI_COMMAND", "stray")  # must not leak into plugin runs
    cni.STATE.readiness.configure(str(env.net), (str(env.bin),))
    cni._set_cache_dir(str(env.cache))
    yield env
    cni.STATE.readiness.configure("/etc/cni/net.d/", ())
    cni._set_cache_dir(cache.DEFAULT_CACHE_DIR)


def pod(pod_id: str = "pod1", netns_path: str = "", **changes: Any) -> PodNetworkRequest:
    return PodNetworkRequest(pod_id, "web", "default", "uid-1", netns_path or "/proc/self/ns/net", **changes)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_add_chains_results_injects_capabilities_and_caches(fake: FakeCni) -> None:
    data = fake.conflist("fa", {"type": "fb", "capabilities": {"portMappings": True}})
    request = pod(port_mappings=[{"container_port": 80, "host_port": 8080}, {"container_port": 81}])
    result = run(cni.crio_network_setup(request))
    assert fake.sequence() == ["ADD loopback", "ADD fa", "ADD fb"]
    lo, first, second = fake.calls()
    assert lo["env"]["CNI_IFNAME"] == "lo" and lo["stdin"]["name"] == "cni-loopback"
    assert first["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "pod1",
        "CNI_NETNS": "/proc/self/ns/net",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
        "K8S_POD_INFRA_CONTAINER_ID=pod1;K8S_POD_UID=uid-1",
        "CNI_PATH": str(fake.bin),
    }
    assert first["stdin"] == {"type": "fa", "name": "fake", "cniVersion": "1.0.0"}
    assert second["stdin"]["prevResult"]["ips"][0]["address"].startswith("10.1.0.")
    assert second["stdin"]["runtimeConfig"] == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
    }
    assert result.ips[1] == "10.2.0.1" and len(result.ips) == 2
    entry = json.loads((fake.cache / "results" / "fake-pod1-eth0").read_text())
    assert entry["kind"] == "cniCacheV1" and base64.b64decode(entry["config"]) == data
    assert entry["networkName"] == "fake" and entry["ifName"] == "eth0" and entry["containerId"] == "pod1"
    assert entry["cniArgs"][0] == ["IgnoreUnknown", "1"]
    assert entry["capabilityArgs"]["portMappings"][0]["hostPort"] == 8080
    assert entry["result"]["ips"][1]["address"] == "10.2.0.1/24"
    assert entry["owner"] == "crio"
    assert (fake.cache / "results" / "cni-loopback-pod1-lo").exists()
    status = run(cni.crio_network_pod_status(request))
    assert status.ips == result.ips and status.details["network"] == "fake"


def test_loopback_not_added_twice(fake: FakeCni) -> None:
    fake.conflist("fa", "loopback")
    run(cni.crio_network_setup(pod()))
    assert fake.sequence() == ["ADD fa", "ADD loopback"]


def test_plugin_error_json_cleans_up(fake: FakeCni) -> None:
    fake.conflist("fa", "ferr", "fb")
    with pytest.raises(CniPluginError, match=r"ferr.*boom from ferr \(more\) \[code 11\]") as info:
        run(cni.crio_network_setup(pod()))
    assert (info.value.plugin, info.value.cni_code, info.value.msg) == ("ferr", 11, "boom from ferr")
    assert fake.sequence() == ["ADD loopback", "ADD fa", "ADD ferr", "DEL ferr", "DEL fa", "DEL loopback"]
    assert fake.cached() == []


def test_plugin_failure_without_json_quotes_stderr(fake: FakeCni) -> None:
    fake.conflist("fstderr")
    with pytest.raises(CniPluginError, match="exit code 2: plain failure text"):
        run(cni.crio_network_setup(pod()))
    fake.conflist("fnoout")
    with pytest.raises(CniPluginError, match="returned no result object"):
        run(cni.crio_network_setup(pod()))
    assert fake.cached() == []


def test_hanging_plugin_is_killed_and_cleaned_up(fake: FakeCni, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(invoke, "PLUGIN_TIMEOUT", 1.0)
    fake.conflist("fa", "fhang")
    started = time.monotonic()
    with pytest.raises(CniTimeout, match=r"fhang \(ADD\).*did not finish within 1s") as info:
        run(cni.crio_network_setup(pod()))
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 10
    assert fake.sequence()[-3:] == ["DEL fhang", "DEL fa", "DEL loopback"]
    assert fake.cached() == []


def test_missing_plugin_binary(fake: FakeCni) -> None:
    fake.conflist("fa", "nosuch")
    with pytest.raises(FailedPrecondition, match="nosuch not found"):
        run(cni.crio_network_setup(pod()))
    assert fake.calls() == []
    # the binary vanishing between selection and ADD: the plugins that ran are deleted, the missing one not
    network = parse_bytes(fake.conflist("fa", "nosuch"), "test")
    rt = RuntimeConf("pod1", "/proc/self/ns/net")
    with pytest.raises(CniPluginNotFound, match="plugin 'nosuch' not found in"):
        run(ops.add_network_list(network, rt, [str(fake.bin)], fake.cache))
    assert fake.sequence() == ["ADD fa", "DEL fa"]
    assert fake.cached() == []


def test_failed_cleanup_keeps_an_entry_for_later(fake: FakeCni) -> None:
    fake.conflist("fdelerr", "ferr")
    with pytest.raises(
        CniPluginError, match=r"boom from ferr.*clean-up \(DEL\) failed too.*boom from fdelerr"
    ):
        run(cni.crio_network_setup(pod()))
    entry = cache.read(fake.cache / "results" / "fake-pod1-eth0")
    assert entry is not None and entry.result is None
    assert not (fake.cache / "results" / "cni-loopback-pod1-lo").exists()


def test_teardown_uses_cached_config_and_prev_result(fake: FakeCni, tmp_path: Path) -> None:
    fake.conflist("fa", "fb", version="0.4.0")
    request = pod(netns_path=str(tmp_path / "gone"))
    run(cni.crio_network_setup(request))
    fake.conflist("fdelerr", name="changed")  # what teardown must not use
    fake.reset()
    run(cni.crio_network_teardown(request))
    assert fake.sequence() == ["DEL fb", "DEL fa", "DEL loopback"]
    fb = fake.calls()[0]
    assert fb["stdin"]["name"] == "fake" and fb["stdin"]["cniVersion"] == "0.4.0"
    assert fb["stdin"]["prevResult"]["ips"][0]["version"] == "4"
    assert fb["env"]["CNI_NETNS"] == ""  # the namespace is gone
    assert fake.cached() == []
    assert run(cni.crio_network_pod_status(request)).ips == ()


def test_teardown_is_idempotent(fake: FakeCni) -> None:
    fake.conflist("fa", version="0.3.1")
    run(cni.crio_network_setup(pod()))
    run(cni.crio_network_teardown(pod()))
    assert "prevResult" not in fake.calls()[-2]["stdin"]  # DEL before 0.4.0 gets no prevResult
    fake.reset()
    run(cni.crio_network_teardown(pod()))  # no cache: DEL with today's config, best effort
    assert fake.sequence() == ["DEL fa", "DEL loopback"]
    fake.conflist("fdelerr")
    run(cni.crio_network_teardown(pod()))  # failures without a cached attachment are only logged


def test_teardown_failure_keeps_the_cache(fake: FakeCni) -> None:
    fake.conflist("fdelerr")
    run(cni.crio_network_setup(pod()))
    fake.reset()
    with pytest.raises(CniPluginError, match="boom from fdelerr") as info:
        run(cni.crio_network_teardown(pod()))
    assert info.value.code == "INTERNAL"  # a plugin's failure is never UNKNOWN
    assert fake.sequence() == ["DEL fdelerr", "DEL fdelerr", "DEL loopback"]  # retried once
    assert (fake.cache / "results" / "fake-pod1-eth0").exists()
    assert not (fake.cache / "results" / "cni-loopback-pod1-lo").exists()


def test_del_that_fails_once_is_retried(fake: FakeCni) -> None:
    fake.conflist("fa", "fonce")
    run(cni.crio_network_setup(pod()))
    fake.reset()
    run(cni.crio_network_teardown(pod()))
    assert fake.sequence() == ["DEL fonce", "DEL fonce", "DEL fa", "DEL loopback"]
    assert fake.cached() == []


def test_del_of_something_already_gone_counts_as_done(fake: FakeCni) -> None:
    fake.conflist("fa", "fgone")
    run(cni.crio_network_setup(pod()))
    fake.reset()
    run(cni.crio_network_teardown(pod()))
    assert fake.sequence() == ["DEL fgone", "DEL fgone", "DEL fa", "DEL loopback"]
    assert fake.cached() == []


def test_already_gone_reads_the_plugin_message() -> None:
    gone = [
        "Chain 'CNI-0a1b' does not exist",
        "iptables: Bad rule (does a matching rule exist in that chain?).",
        "iptables: No chain/target/match by that name.",
        'Cannot find device "veth1234"',
    ]
    for text in gone:
        assert ops.already_gone(CniPluginError(f"CNI plugin x (DEL) failed: {text}", "x", 999, text))
    assert ops.already_gone(CniPluginError("CNI plugin x (DEL) failed", "x", 999, "teardown", text))
    for text in ("no IP addresses available in range set", "permission denied", ""):
        assert not ops.already_gone(CniPluginError(f"CNI plugin x (DEL) failed: {text}", "x", 999, text))


def test_missing_plugin_is_a_failed_precondition() -> None:
    assert CniPluginNotFound("plugin 'x' not found", "x").code == "FAILED_PRECONDITION"
    assert CniTimeout("x did not finish").code == "DEADLINE_EXCEEDED"


def test_not_ready_without_network(fake: FakeCni) -> None:
    with pytest.raises(FailedPrecondition, match="NetworkPluginNotReady"):
        run(cni.crio_network_setup(pod()))
    run(cni.crio_network_teardown(pod()))  # nothing to do
    assert run(cni.crio_network_pod_status(pod())).ips == ()


def test_check(fake: FakeCni) -> None:
    with pytest.raises(NotFound):
        run(cni.check(pod()))
    fake.conflist("fa", "fb")
    run(cni.crio_network_setup(pod()))
    fake.reset()
    run(cni.crio_network_check(pod()))
    assert fake.sequence() == ["CHECK fa", "CHECK fb"]
    assert fake.calls()[0]["stdin"]["prevResult"]["ips"][1]["address"] == "10.2.0.1/24"
    for version, extra in (("0.3.1", {}), ("1.0.0", {"disableCheck": True})):
        fake.conflist("fa", version=version, name=f"v{version[0]}", **extra)
        run(cni.crio_network_setup(pod(f"p{version[0]}")))
        fake.reset()
        run(cni.check(pod(f"p{version[0]}")))
        assert fake.calls() == []


def test_gc_deletes_stale_attachments_only(fake: FakeCni) -> None:
    fake.conflist("fa", version="1.1.0")
    for pod_id in ("keep", "stale"):
        run(cni.crio_network_setup(pod(pod_id)))
    # other runtimes' entries (no owner), even on the same network, are not crio's to collect
    cache.write(fake.cache, cache.Attachment("other", "someone-elses", "eth0", b"{}"))
    cache.write(fake.cache, cache.Attachment("ctrd", "fake", "eth0", b"{}"))
    fake.reset()
    report = run(cni.gc(["keep"]))
    assert report.deleted == ("stale", "stale") and report.failed == {}
    assert fake.sequence() == ["DEL loopback", "DEL fa", "GC fa"]
    gc_call = fake.calls()[-1]
    assert gc_call["stdin"]["cni.dev/valid-attachments"] == [
        {"containerID": "keep", "ifname": "eth0"},
        {"containerID": "ctrd", "ifname": "eth0"},
    ]
    assert gc_call["env"]["CNI_CONTAINERID"] == ""
    assert fake.cached() == [
        "cni-loopback-keep-lo",
        "fake-ctrd-eth0",
        "fake-keep-eth0",
        "someone-elses-other-eth0",
    ]
    run(cni.crio_network_gc(["keep"]))  # the hook: nothing stale left


def test_gc_keeps_the_entries_of_a_daemon_with_another_root(fake: FakeCni) -> None:
    fake.conflist("fa", version="1.1.0")
    cni.STATE.owner = cache.owner_for("/var/lib/crio-b")
    try:
        run(cni.crio_network_setup(pod("theirs")))
        assert cache.read(fake.cache / "results" / "fake-theirs-eth0").owner == "crio:/var/lib/crio-b"  # type: ignore[union-attr]
    finally:
        cni.STATE.owner = cache.owner_for(cache.DEFAULT_ROOT)
    run(cni.crio_network_setup(pod("mine")))
    fake.reset()
    report = run(cni.gc([]))  # this daemon has no pods left: only its own entries go
    assert set(report.deleted) == {"mine"}
    assert fake.cached() == ["cni-loopback-theirs-lo", "fake-theirs-eth0"]
    gc_call = fake.calls()[-1]
    assert gc_call["stdin"]["cni.dev/valid-attachments"] == [{"containerID": "theirs", "ifname": "eth0"}]


def test_owner_tags_tell_roots_apart() -> None:
    assert cache.owner_for("/var/lib/containers/storage") == "crio"
    assert cache.owner_for("/var/lib/containers/storage/") == "crio"
    assert cache.owner_for("") == "crio"
    assert cache.owner_for("/tmp/a/../b/root") == "crio:/tmp/b/root"


def test_parallel_pods(fake: FakeCni) -> None:
    fake.conflist("fa", "fb")

    async def many() -> list[Any]:
        ids = [f"pod{i}" for i in range(6)]
        results = await asyncio.gather(*(cni.crio_network_setup(pod(i)) for i in ids))
        await asyncio.gather(*(cni.crio_network_teardown(pod(i)) for i in ids))
        return list(results)

    results = run(many())
    assert all(len(r.ips) == 2 for r in results)
    assert fake.cached() == []
    assert cni.STATE.locks == {}


def test_network_follows_the_directory(fake: FakeCni) -> None:
    assert not cni.crio_network_status().ready
    fake.conflist("fa")
    assert cni.crio_network_status().ready
    os.chmod(fake.bin / "fa", 0o644)  # no longer executable
    fake.conflist("fa")
    assert not cni.crio_network_status().ready

"""libcni's result cache: file name, JSON layout (cniCacheV1), atomic writes and listing."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

from crio.plugins.cni import cache

CONFLIST = b'{"cniVersion": "1.0.0", "name": "crtest", "plugins": [{"type": "bridge"}]}'
RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.2/16"}]}


def attachment(container_id: str = "abc123", **changes: object) -> cache.Attachment:
    fields: dict[str, object] = {
        "container_id": container_id,
        "network_name": "crtest",
        "ifname": "eth0",
        "config": CONFLIST,
        "netns": f"/var/run/netns/{container_id}",
        "cni_args": (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
        "capability_args": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        "result": RESULT,
    }
    fields.update(changes)
    return cache.Attachment(**fields)  # type: ignore[arg-type]


def test_path_is_libcnis() -> None:
    path = cache.path_for("/var/lib/cni", "crtest", "abc123", "eth0")
    assert path == Path("/var/lib/cni/results/crtest-abc123-eth0")


def test_encoding_has_libcnis_keys_in_order() -> None:
    data = json.loads(cache.encode(attachment()))
    assert list(data) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]
    assert data["kind"] == "cniCacheV1"
    assert base64.b64decode(data["config"]) == CONFLIST
    assert data["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]]
    assert data["result"] == RESULT


def test_owner_key_after_libcnis() -> None:
    data = json.loads(cache.encode(attachment(owner="crio")))
    assert list(data)[-1] == "owner" and data["owner"] == "crio"
    assert cache.decode(cache.encode(attachment(owner="crio"))).owner == "crio"


def test_empty_fields_are_left_out_and_round_trip() -> None:
    bare = attachment(netns="", cni_args=(), capability_args={}, result=None)
    data = json.loads(cache.encode(bare))
    assert set(data) == {"kind", "containerId", "config", "ifName", "networkName"}
    assert cache.decode(cache.encode(bare)) == bare
    assert cache.decode(cache.encode(attachment())) == attachment()


def test_write_read_remove(tmp_path: Path) -> None:
    path = cache.write(tmp_path, attachment())
    assert path == tmp_path / "results" / "crtest-abc123-eth0"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert cache.read(path) == attachment()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    cache.remove(tmp_path, "crtest", "abc123", "eth0")
    cache.remove(tmp_path, "crtest", "abc123", "eth0")  # absent is fine
    assert cache.read(path) is None


def test_attachments_filter_and_skip_unusable(tmp_path: Path) -> None:
    cache.write(tmp_path, attachment("abc123"))
    cache.write(tmp_path, attachment("abc123", ifname="lo", network_name="cni-loopback"))
    cache.write(tmp_path, attachment("abc1234"))
    results = tmp_path / "results"
    (results / "legacy-abc123-eth1").write_text(json.dumps(RESULT))  # pre-cniCacheV1 format
    (results / "broken-abc123-eth2").write_text("{")
    (results / "other-abc123-eth3").write_text(json.dumps({"kind": "cniCacheV1", "config": "!!"}))
    assert {(a.network_name, a.ifname) for a in cache.attachments(tmp_path, "abc123")} == {
        ("crtest", "eth0"),
        ("cni-loopback", "lo"),
    }
    assert len(cache.attachments(tmp_path)) == 3
    assert cache.attachments(tmp_path / "absent") == []

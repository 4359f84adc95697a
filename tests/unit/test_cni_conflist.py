"""CNI configuration parsing and network selection, with libcni's file rules."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from crio.plugins.cni.conflist import ConflistError, parse_file, select_network


def put(directory: Path, name: str, content: Any) -> str:
    path = directory / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> str:
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("bridge", "host-local", "portmap", "loopback"):
        (d / name).write_text("#!/bin/sh\n")
        os.chmod(d / name, stat.S_IRWXU)
    return str(d)


BRIDGE = {"cniVersion": "1.0.0", "name": "crio", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("a.conflist", "{not json", "cannot parse"),
        ("a.conflist", [1, 2], "expected a JSON object"),
        ("a.conflist", {"name": "n", "plugins": []}, "'plugins' must be a non-empty list"),
        ("a.conflist", {"name": "n", "plugins": [{"x": 1}]}, "plugin #0 has no 'type'"),
        ("a.conflist", {"name": "n", "plugins": [{"type": "../../bin/sh"}]}, "is not a plugin name"),
        ("a.conflist", {"plugins": [{"type": "bridge"}]}, "missing network 'name'"),
        ("a.conf", {"name": "n"}, "needs a 'type'"),
        ("a.conf", {"name": "n", "type": "bridge", "cniVersion": 1}, "'cniVersion' must be a string"),
    ],
)
def test_parse_rejects(tmp_path: Path, name: str, content: Any, error: str) -> None:
    with pytest.raises(ConflistError, match=error):
        parse_file(put(tmp_path, name, content))


def test_single_conf_becomes_a_list(tmp_path: Path) -> None:
    net = parse_file(put(tmp_path, "10.conf", {"cniVersion": "0.4.0", "name": "one", "type": "bridge"}))
    assert net.name == "one"
    assert [p["type"] for p in net.plugins] == ["bridge"]


def test_select_first_usable_by_name(tmp_path: Path, plugin_dir: str) -> None:
    conf = tmp_path / "net.d"
    conf.mkdir()
    put(conf, "05-broken.conflist", "{")
    put(conf, "07-missing.conflist", {"name": "m", "plugins": [{"type": "flannel"}]})
    put(conf, "10-crio.conflist", BRIDGE)
    put(conf, "20-other.conflist", {**BRIDGE, "name": "other"})
    put(conf, "README", "not a config")
    network, problems = select_network(str(conf), [str(tmp_path / "nowhere"), plugin_dir])
    assert network is not None and network.name == "crio"
    assert len(problems) == 2
    assert "flannel not found" in problems[1]
    wanted, _ = select_network(str(conf), [plugin_dir], "other")
    assert wanted is not None and wanted.path.endswith("20-other.conflist")


def test_select_none(tmp_path: Path, plugin_dir: str) -> None:
    network, problems = select_network(str(tmp_path / "absent"), [plugin_dir])
    assert network is None and problems == []

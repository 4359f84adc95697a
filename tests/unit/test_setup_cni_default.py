"""hack/setup.sh's default network step (hack/lib/cni-default.sh), run by bash on temporary directories.

Whatever order the node's packages arrived in, crio's default network (crio0 on 10.85.0.0/16) is installed
unless the node has a network of its own; podman's packaged default does not count.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "hack" / "lib" / "cni-default.sh"
SOURCE = REPO / "contrib" / "cni"
PODMAN_DEFAULT = (
    '{"cniVersion": "0.4.0", "name": "podman", "plugins": [{"type": "bridge", "bridge": "cni0"}]}'
)


def install(conf_dir: Path) -> str:
    """Run the step; return the line it prints."""
    script = f'source "{LIB}"; cni_default_network "$1" "$2"'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(conf_dir), str(SOURCE)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def names(conf_dir: Path) -> list[str]:
    return sorted(p.name for p in conf_dir.iterdir())


def test_contrib_network_is_crios_own_subnet() -> None:
    conflist = json.loads((SOURCE / "10-crio-bridge.conflist").read_text())
    bridge = conflist["plugins"][0]
    assert bridge["bridge"] == "crio0"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.85.0.0/16", "gateway": "10.85.0.1"}]]


def test_empty_or_missing_directory_gets_the_default(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    assert install(conf_dir).startswith("CNI: installed crio's default network")
    assert names(conf_dir) == ["10-crio-bridge.conflist", "99-loopback.conf"]
    assert (conf_dir / "10-crio-bridge.conflist").read_bytes() == (
        SOURCE / "10-crio-bridge.conflist"
    ).read_bytes()
    assert install(conf_dir) == f"CNI: crio's default network is in {conf_dir}"


def test_podmans_packaged_default_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "87-podman-bridge.conflist").write_text(PODMAN_DEFAULT)
    assert install(tmp_path).startswith("CNI: installed")
    assert names(tmp_path) == ["10-crio-bridge.conflist", "87-podman-bridge.conflist", "99-loopback.conf"]
    assert (tmp_path / "87-podman-bridge.conflist").read_text() == PODMAN_DEFAULT


def test_the_nodes_own_network_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "05-cluster.conflist").write_text('{"name": "cluster"}')
    assert "node's own network configuration (05-cluster.conflist)" in install(tmp_path)
    assert names(tmp_path) == ["05-cluster.conflist"]


def test_our_earlier_default_on_podmans_subnet_is_replaced_an_edited_one_kept(tmp_path: Path) -> None:
    current = (SOURCE / "10-crio-bridge.conflist").read_text()
    earlier = current.replace("10.85.0.0/16", "10.88.0.0/16").replace("10.85.0.1", "10.88.0.1")
    (tmp_path / "10-crio-bridge.conflist").write_text(earlier)
    printed = install(tmp_path)
    assert printed.startswith("CNI: installed") and "10-crio-bridge.conflist" in printed
    assert (tmp_path / "10-crio-bridge.conflist").read_text() == current
    edited = current.replace("10.85.0.0/16", "10.42.0.0/16")
    (tmp_path / "10-crio-bridge.conflist").write_text(edited)
    install(tmp_path)
    assert (tmp_path / "10-crio-bridge.conflist").read_text() == edited

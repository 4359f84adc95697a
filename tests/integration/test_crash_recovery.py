"""A daemon killed (SIGKILL) in the middle of RunPodSandbox or RemovePodSandbox: the restart undoes or
finishes the operation from its journal, and nothing of the pod is left on the host.

The moment is chosen with a CNI plugin chained after Debian's bridge and portmap that, once, blocks in ADD
or DEL (it records its pid and sleeps) until the test has killed the daemon: by then the storage container,
the pinned network namespace, the veth, the IP allocation and the iptables rules exist, and the CNI cache
has no entry (ADD did not finish), which is the case start-up GC alone cannot clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from crio.plugins.cni import cache

from .conftest import CNI_PLUGIN_DIR, CrioFactory, CrioProcess, bridge_conflist
from .test_pods import nat_rules_mentioning, pod_config, pod_status, remove, run_pod

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, iptables)"),
]

# Blocks once in the command named by a file "block-<COMMAND>" next to it; otherwise a well-behaved chained
# plugin (ADD passes prevResult on).
BLOCKER = """#!/bin/sh
here=$(dirname "$0")
if [ -e "$here/block-$CNI_COMMAND" ]; then
    rm -f "$here/block-$CNI_COMMAND"
    echo $$ > "$here/blocked"
    exec sleep 600
fi
if [ "$CNI_COMMAND" = ADD ]; then
    exec /usr/bin/python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))'
fi
exit 0
"""


class Blocker:
    """The blocking plugin's directory and its controls."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir()
        plugin = directory / "crash-blocker"
        plugin.write_text(BLOCKER)
        plugin.chmod(stat.S_IRWXU)

    def arm(self, command: str) -> None:
        (self.dir / f"block-{command}").touch()

    def wait_blocked(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        marker = self.dir / "blocked"
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text().strip():
                return int(marker.read_text())
            time.sleep(0.05)
        raise AssertionError("the CNI plugin never blocked")

    def release(self) -> None:
        marker = self.dir / "blocked"
        if marker.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
            marker.unlink()


@pytest.fixture
def blocker(tmp_path: Path) -> Iterator[Blocker]:
    subprocess.run(["bash", str(REPO / "hack" / "host-network-setup.sh")], check=True, capture_output=True)
    found = Blocker(tmp_path / "cni-bin")
    yield found
    found.release()


def start(crio_factory: CrioFactory, blocker: Blocker) -> CrioProcess:
    """A daemon whose network is bridge + portmap + the blocking plugin."""
    daemon = crio_factory()
    conflist: dict[str, Any] = bridge_conflist()
    conflist["plugins"].append({"type": "crash-blocker"})
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(conflist))
    (daemon.config_dir / "10-plugins.conf").write_text(
        f'[crio.network]\nplugin_dirs = ["{blocker.dir}", "{CNI_PLUGIN_DIR}"]\n'
    )
    return daemon.start()


def journal(daemon: CrioProcess) -> list[dict[str, Any]]:
    directory = daemon.base / "root" / "crio-journal"
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))] if directory.exists() else []


def storage_ids(daemon: CrioProcess) -> list[str]:
    path = daemon.base / "root" / "overlay-containers" / "containers.json"
    return [c["id"] for c in json.loads(path.read_text() or "[]")] if path.exists() else []


def allocations_of(pod_id: str) -> list[str]:
    """host-local's files naming the pod (an allocation holds the container ID)."""
    found = []
    for path in Path("/var/lib/cni/networks").glob("*/*"):
        try:
            if pod_id in path.read_text():
                found.append(str(path))
        except OSError:
            continue
    return found


def crash(daemon: CrioProcess) -> None:
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    daemon.stop()


def assert_nothing_left(daemon: CrioProcess, pod_id: str) -> None:
    assert journal(daemon) == []
    assert pod_id not in storage_ids(daemon)
    assert allocations_of(pod_id) == []
    assert nat_rules_mentioning(pod_id) == []
    assert not (daemon.base / "ns" / "netns" / f"crio-{pod_id}").exists()
    assert cache.attachments(cache.DEFAULT_CACHE_DIR, pod_id) == []
    assert pod_id not in Path("/proc/self/mountinfo").read_text()
    out = subprocess.run(["pgrep", "-f", pod_id], capture_output=True, text=True).stdout
    assert out == "", f"processes of the pod are left: {out}"


def test_a_run_interrupted_in_cni_add_is_undone_at_restart(
    crio_factory: CrioFactory, blocker: Blocker
) -> None:
    daemon = start(crio_factory, blocker)
    blocker.arm("ADD")
    config = pod_config(port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=80, host_port=18080)])
    call = threading.Thread(target=_ignore_errors, args=(run_pod, daemon, config), daemon=True)
    call.start()
    blocker.wait_blocked()
    [entry] = journal(daemon)
    pod_id = entry["object_id"]
    assert entry["op"] == "run_pod" and "network" in entry["steps"]
    assert allocations_of(pod_id) and nat_rules_mentioning(pod_id)  # what a crash now would leak
    crash(daemon)
    blocker.release()
    call.join(30)

    again = start(crio_factory, blocker)
    assert_nothing_left(again, pod_id)
    assert f"interrupted run of pod {pod_id}" in again.log()
    again_id = run_pod(again, config)  # the name is free again
    remove(again, again_id)
    assert_nothing_left(again, again_id)


def test_a_removal_interrupted_in_cni_del_is_finished_at_restart(
    crio_factory: CrioFactory, blocker: Blocker
) -> None:
    daemon = start(crio_factory, blocker)
    pod_id = run_pod(daemon, pod_config())
    assert pod_status(daemon, pod_id).status.state == pb.SANDBOX_READY
    blocker.arm("DEL")
    call = threading.Thread(target=_ignore_errors, args=(remove, daemon, pod_id), daemon=True)
    call.start()
    blocker.wait_blocked()
    assert [e["op"] for e in journal(daemon)] == ["remove_pod"]
    crash(daemon)
    blocker.release()
    call.join(30)

    again = start(crio_factory, blocker)
    with pytest.raises(grpc.RpcError) as err:
        pod_status(again, pod_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert_nothing_left(again, pod_id)
    assert f"interrupted removal of pod {pod_id}" in again.log()


def _ignore_errors(call: Any, *args: Any) -> None:
    with contextlib.suppress(grpc.RpcError):
        call(*args)

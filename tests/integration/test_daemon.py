"""The daemon over its real socket: runtime info RPCs, UNIMPLEMENTED answers, socket rules, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2 as pb

from .conftest import CRIO, CrioFactory, CrioProcess, bridge_conflist


def conditions(daemon: CrioProcess) -> dict[str, pb.RuntimeCondition]:
    response = daemon.runtime().Status(pb.StatusRequest(), timeout=10)
    return {c.type: c for c in response.status.conditions}


def test_version(crio_daemon: CrioProcess) -> None:
    response = crio_daemon.runtime().Version(pb.VersionRequest(version="v1"), timeout=10)
    assert response.runtime_name == "crio"
    assert response.runtime_api_version == "v1"
    assert (
        response.runtime_version
        == subprocess.run([CRIO, "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    )


def test_status_and_runtime_config(crio_daemon: CrioProcess) -> None:
    response = crio_daemon.runtime().Status(pb.StatusRequest(verbose=True), timeout=10)
    conds = {c.type: c for c in response.status.conditions}
    assert conds["RuntimeReady"].status is True
    assert conds["NetworkReady"].status is True
    assert [h.name for h in response.runtime_handlers] == ["", "runc"]
    config = json.loads(response.info["config"])
    assert config["crio"]["api"]["listen"] == crio_daemon.socket
    plugins = {p["name"]: p["state"] for p in json.loads(response.info["plugins"])}
    assert plugins["runc"] == "loaded" and plugins["cni"] == "loaded"
    assert "ociVersionMax" in json.loads(response.info["runtimeHandlers"])["runc"]
    rc = crio_daemon.runtime().RuntimeConfig(pb.RuntimeConfigRequest(), timeout=10)
    assert rc.linux.cgroup_driver == pb.CGROUPFS


def test_unimplemented_rpcs_name_themselves(crio_daemon: CrioProcess) -> None:
    with pytest.raises(grpc.RpcError) as err:
        crio_daemon.runtime().CheckpointContainer(pb.CheckpointContainerRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CheckpointContainer" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        crio_daemon.runtime().RestorePod(pb.RestorePodRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "RestorePod" in (err.value.details() or "")
    with pytest.raises(grpc.RpcError) as err:
        list(crio_daemon.runtime().StreamContainers(pb.StreamContainersRequest(), timeout=10))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "StreamContainers" in (err.value.details() or "")


def test_network_ready_follows_the_cni_directory(crio_factory: CrioFactory) -> None:
    daemon = crio_factory().start()
    network = conditions(daemon)["NetworkReady"]
    assert network.status is False
    assert network.reason == "NetworkPluginNotReady"
    assert str(daemon.cni_dir) in network.message
    missing = {**bridge_conflist(), "plugins": [{"type": "no-such-cni-plugin"}]}
    (daemon.cni_dir / "05-missing.conflist").write_text(json.dumps(missing))
    assert "no-such-cni-plugin not found" in conditions(daemon)["NetworkReady"].message
    (daemon.cni_dir / "10-good.conflist").write_text(json.dumps(bridge_conflist()))
    assert conditions(daemon)["NetworkReady"].status is True  # no restart needed
    assert conditions(daemon)["RuntimeReady"].status is True


def test_socket_is_0660_root(crio_daemon: CrioProcess) -> None:
    st = os.stat(crio_daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_second_daemon_on_a_live_socket_exits_1(crio_daemon: CrioProcess) -> None:
    second = subprocess.run(crio_daemon.args(), capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert f"another daemon is already serving on {crio_daemon.socket}" in second.stderr
    assert crio_daemon.runtime().Version(pb.VersionRequest(), timeout=10).runtime_name == "crio"


def test_stale_socket_is_replaced(crio_factory: CrioFactory) -> None:
    daemon = crio_factory()
    os.makedirs(os.path.dirname(daemon.socket), exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(daemon.socket)
    stale.close()  # the file stays, nobody listens
    daemon.start()
    assert daemon.runtime().Version(pb.VersionRequest(), timeout=10).runtime_name == "crio"


def test_a_regular_file_in_the_socket_path_is_not_replaced(crio_factory: CrioFactory) -> None:
    daemon = crio_factory()
    os.makedirs(os.path.dirname(daemon.socket), exist_ok=True)
    Path(daemon.socket).write_text("precious")
    result = subprocess.run(daemon.args(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "is not a socket" in result.stderr
    assert Path(daemon.socket).read_text() == "precious"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop(crio_daemon: CrioProcess, signum: int) -> None:
    marker = crio_daemon.base / "lib" / "clean.shutdown"
    assert not marker.exists()  # consumed at start
    started = time.monotonic()
    crio_daemon.signal(signum)
    assert crio_daemon.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert not os.path.exists(crio_daemon.socket)
    assert marker.exists()
    assert "stopped cleanly" in crio_daemon.log()


def test_unclean_stop_is_noticed(crio_factory: CrioFactory) -> None:
    daemon = crio_factory().start()
    daemon.signal(signal.SIGKILL)
    daemon.wait(timeout=5)
    assert os.path.exists(daemon.socket)  # left behind, stale
    again = crio_factory().start()
    assert "did not shut down cleanly" in again.log()


def test_sighup_reloads_log_level(crio_factory: CrioFactory) -> None:
    daemon = crio_factory()
    daemon.start()
    daemon.runtime().Version(pb.VersionRequest(), timeout=10)
    assert "rpc method=Version" not in daemon.log()  # info level: no per-RPC lines
    (daemon.config_dir / "50-debug.conf").write_text(
        '[crio.runtime]\nlog_level = "debug"\n[crio]\nroot = "/elsewhere"\n'
    )
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded crio.runtime.log_level" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon.runtime().Version(pb.VersionRequest(), timeout=10)
    log = daemon.log()
    assert "reloaded crio.runtime.log_level = 'debug'" in log
    assert "crio.root changed but takes effect only after a restart" in log
    assert "rpc method=Version code=OK" in log
    (daemon.config_dir / "60-broken.conf").write_text("[crio.api]\nbogus = 1\n")
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reload failed" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "60-broken.conf: unknown key crio.api.bogus" in daemon.log()
    assert daemon.runtime().Version(pb.VersionRequest(), timeout=10).runtime_name == "crio"


def test_out_of_tree_plugin_hook_is_called(crio_factory: CrioFactory, hello_plugin_path: str) -> None:
    daemon = crio_factory(env={"PYTHONPATH": hello_plugin_path}).start()
    response = daemon.runtime().Status(pb.StatusRequest(verbose=True), timeout=10)
    features = json.loads(response.info["securityFeatures"])
    assert features["hello"] == {"greeting": "hello from an out-of-tree plugin", "default_runtime": "runc"}

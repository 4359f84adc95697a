"""Fixtures that run the real crio daemon as a separate process on a private socket and state dirs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[2]
CRIO = str(Path(sys.executable).with_name("crio"))
CNI_PLUGIN_DIR = "/usr/lib/cni"

pytestmark = pytest.mark.integration


def bridge_conflist(name: str = "crio-test") -> dict[str, object]:
    """A CNI network list using Debian's bridge, host-local, portmap and loopback plugins."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "criotest0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/16"}]]},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


class CrioProcess:
    """A crio daemon started for one test, with every path under a temporary directory."""

    def __init__(
        self, base: Path, extra_args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.base = base
        self.socket = str(base / "run" / "crio.sock")
        self.cni_dir = base / "cni"
        self.cni_dir.mkdir(parents=True, exist_ok=True)
        self.registries_conf = base / "registries.conf"
        self.registries_conf.write_text((REPO / "tests" / "testdata" / "registries.conf").read_text())
        # Image trust: a private policy, drop-in directory and registries.d, never the host's /etc/containers.
        self.registries_conf_dir = base / "registries.conf.d"
        self.registries_conf_dir.mkdir(exist_ok=True)
        self.registries_d = base / "registries.d"
        self.registries_d.mkdir(exist_ok=True)
        self.policy = base / "policy.json"
        if not self.policy.exists():
            self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.policy_dir = base / "policies"
        self.config_file = base / "crio.conf"
        self.config_dir = base / "crio.conf.d"
        self.config_dir.mkdir(exist_ok=True)
        self.config_file.write_text(
            f'[crio]\nroot = "{base}/root"\nrunroot = "{base}/runroot"\nlog_dir = "{base}/logs"\n'
            f'version_file = "{base}/run/version"\nversion_file_persist = "{base}/lib/version"\n'
            f'clean_shutdown_file = "{base}/lib/clean.shutdown"\n'
            f'[crio.api]\nlisten = "{self.socket}"\n'
            f'[crio.runtime]\ncontainer_exits_dir = "{base}/exits"\n'
            f'container_attach_socket_dir = "{base}/att"\n'
            f'namespaces_dir = "{base}/ns"\n'
            f'[crio.network]\nnetwork_dir = "{self.cni_dir}"\nplugin_dirs = ["{CNI_PLUGIN_DIR}"]\n'
            f'[crio.image]\nregistries_conf = "{self.registries_conf}"\n'
            f'registries_conf_dir = "{self.registries_conf_dir}"\nregistries_d = "{self.registries_d}"\n'
            f'signature_policy = "{self.policy}"\nsignature_policy_dir = "{self.policy_dir}"\n'
        )
        self.log_path = base / "crio.log"
        self.extra_args = extra_args or []
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None

    def args(self) -> list[str]:
        """The daemon's command line."""
        return [
            CRIO,
            "--config",
            str(self.config_file),
            "--config-dir",
            str(self.config_dir),
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> CrioProcess:
        """Start the daemon and wait until its socket answers."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - the daemon owns it until it exits
        self.proc = subprocess.Popen(self.args(), stdout=log, stderr=log, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"crio exited with {self.proc.returncode}:\n{self.log()}")
            if os.path.exists(self.socket):
                try:
                    self.runtime().Version(_version_request(), timeout=2)
                    return self
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"crio did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """The daemon's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def channel(self) -> grpc.Channel:
        """A gRPC channel to the daemon's socket."""
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{self.socket}")
        return self._channel

    def runtime(self) -> pb_grpc.RuntimeServiceStub:
        """A RuntimeService client."""
        return pb_grpc.RuntimeServiceStub(self.channel())  # type: ignore[no-untyped-call]

    def images(self) -> pb_grpc.ImageServiceStub:
        """An ImageService client."""
        return pb_grpc.ImageServiceStub(self.channel())  # type: ignore[no-untyped-call]

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the daemon."""
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the daemon to exit and return its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and close the channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _version_request() -> object:
    from crio.core.api import api_pb2

    return api_pb2.VersionRequest(version="v1")


CrioFactory = Callable[..., CrioProcess]


@pytest.fixture
def crio_factory(tmp_path: Path) -> Iterator[CrioFactory]:
    """Build daemons under ``tmp_path``; every daemon built is stopped at the end of the test."""
    built: list[CrioProcess] = []

    def make(extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> CrioProcess:
        built.append(CrioProcess(tmp_path, extra_args, env))
        return built[-1]

    yield make
    for daemon in built:
        daemon.stop()
    # netns.create makes the namespace directories mount points of their own (as `ip netns` does), and
    # skopeo, given crio's store, bind-mounts the overlay home onto itself and leaves it mounted.
    for point in ("ns/netns", "ns/userns", "root/overlay"):
        subprocess.run(["umount", "-l", str(tmp_path / point)], capture_output=True, check=False)


@pytest.fixture
def crio_daemon(crio_factory: CrioFactory) -> CrioProcess:
    """A running daemon with a usable CNI network configuration."""
    daemon = crio_factory()
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    return daemon.start()


@pytest.fixture(scope="session")
def hello_plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Install the out-of-tree test plugin distribution into a private directory; return that directory."""
    target = tmp_path_factory.mktemp("hello-plugin")
    source = REPO / "tests" / "plugins" / "crio-hello-plugin"
    build = tmp_path_factory.mktemp("hello-build")
    shutil.copytree(source, build / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(build / "src"),
        ],
        check=True,
    )
    return str(target)


REGISTRY = "127.0.0.1:5000"


@pytest.fixture(scope="session")
def local_registry() -> str:
    """The fixture registry on 127.0.0.1:5000 with the test images (started and built if needed)."""
    subprocess.run(["bash", str(REPO / "hack" / "registry.sh"), "start"], check=True, capture_output=True)
    probe = subprocess.run(
        ["curl", "-sf", f"http://{REGISTRY}/v2/crio-test/multilayer/tags/list"], capture_output=True
    )
    if probe.returncode != 0:
        subprocess.run(["bash", str(REPO / "hack" / "images" / "build.sh")], check=True)
    return REGISTRY

"""Debian's containerd (1.6, CRI plugin) run by hand as the side-by-side peer of crio in the benchmarks.

Everything lives under one scratch directory: the config file, root and state directories, the gRPC and
ttrpc sockets, the CNI conflist directory and the registry ``hosts.toml`` files. The settings this host needs
(../shared/reference/peer-containerd.md):

* ``restrict_oom_score_adj = true``: root lacks CAP_SYS_RESOURCE, so the sandbox's -998 would make runc fail;
* runc (the same ``/usr/sbin/runc`` crio uses) with ``SystemdCgroup = false`` (cgroupfs), snapshotter
  ``overlayfs``;
* CNI: Debian's plugins in ``/usr/lib/cni`` and a private conf_dir holding a bridge + host-local + portmap
  conflist (see :func:`bridge_conflist`, the same shape crio's benchmarks use) on the bridge ``ctrbench0`` and
  10.77.0.0/16, so it never meets the other networks (podman's cni0 10.88/16, crio's crio0 10.85/16, the
  tests' criotest0 10.89/16); the loopback interface comes from containerd's built-in ``loopback`` network,
  as crio adds its own;
* registry: ``config_path`` with one ``hosts.toml`` per registry host sending ``registry.k8s.io`` (and the
  other names tests/testdata/registries.conf maps) to ``http://127.0.0.1:5000`` — the older
  ``registry.mirrors`` table falls back to the real upstream host, unreachable here;
* ``sandbox_image = registry.k8s.io/pause:3.9``, served by the local registry (pre-pull it with PullImage).

Shims: ``containerd-shim-runc-v2 -namespace k8s.io -id ID -address SOCKET`` with their ttrpc sockets under
``/run/containerd/s/`` (a hash of address + namespace + id, so they never collide with another containerd).
They outlive the daemon; :meth:`ContainerdDaemon.kill_shims` ends the ones this daemon started (by pid).

Run by hand (prints the socket, serves until Ctrl-C, then stops it and removes the scratch directory)::

    .venv/bin/python -m bench.peer_containerd run [--base DIR] [--keep]
    .venv/bin/python -m bench.peer_containerd config     # the config.toml it would use
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import grpc

from bench.common import CriClient, ServedDaemon, remove_tree, scratch_dir
from bench.cri import remove_everything

CONTAINERD = "containerd"
SHIM = "containerd-shim-runc-v2"
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
LOCAL_REGISTRY = "127.0.0.1:5000"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
BRIDGE = "ctrbench0"
SUBNET = "10.77.0.0/16"
NETWORK_NAME = "ctr-bench"
K8S_NAMESPACE = "k8s.io"
# Registry host → server, as tests/testdata/registries.conf maps the public names onto the local registry.
REGISTRY_HOSTS = {
    "registry.k8s.io": f"http://{LOCAL_REGISTRY}",
    "k8s.gcr.io": f"http://{LOCAL_REGISTRY}",
    "public.ecr.aws": f"http://{LOCAL_REGISTRY}",
    LOCAL_REGISTRY: f"http://{LOCAL_REGISTRY}",
}


def ensure_installed() -> str:
    """The containerd binary's path; ``apt-get install containerd`` first when it is missing."""
    found = shutil.which(CONTAINERD)
    if found is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "containerd"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
            subprocess.run(install, env=env, capture_output=True, check=True)
        found = shutil.which(CONTAINERD)
        if found is None:
            raise RuntimeError("apt-get installed containerd but it is not on PATH")
    return found


def containerd_version() -> str:
    """``containerd --version``'s version field."""
    out = subprocess.run([ensure_installed(), "--version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def bridge_conflist(name: str, bridge: str, subnet: str, ipam_dir: Path | None = None) -> dict[str, object]:
    """The benchmarks' CNI network: bridge (gateway, masquerade, hairpin) + host-local + portmap.

    Both runtimes get this shape, each with its own name, bridge and subnet; ``ipam_dir`` keeps host-local's
    allocations out of the shared /var/lib/cni/networks.
    """
    ipam: dict[str, object] = {
        "type": "host-local",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": subnet}]],
    }
    if ipam_dir is not None:
        ipam["dataDir"] = str(ipam_dir)
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _toml_str(value: str) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    return json.dumps(value)


class ContainerdDaemon(ServedDaemon):
    """A containerd with the CRI plugin whose every path lives under ``base`` (see the module docstring)."""

    NAME = "containerd"

    def __init__(
        self,
        base: Path,
        bridge: str = BRIDGE,
        subnet: str = SUBNET,
        sandbox_image: str = SANDBOX_IMAGE,
        log_level: str = "info",  # its default, as crio runs at its default ("info")
    ) -> None:
        self.base = base
        self.root = base / "root"
        self.state = base / "state"
        self.socket = str(base / "containerd.sock")
        self.config_file = base / "config.toml"
        self.cni_conf_dir = base / "cni"
        self.ipam_dir = base / "ipam"
        self.certs_dir = base / "certs.d"
        self.log_path = base / "containerd.log"
        self.bridge = bridge
        self.subnet = subnet
        self.sandbox_image = sandbox_image
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: CriClient | None = None
        self._write_files()

    # ------------------------------------------------------------------------------------------ config

    def config_toml(self) -> str:
        """containerd's config.toml (version 2) for this daemon."""
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = f"{cri[:-1]}.containerd.runtimes.runc]"
        return "\n".join(
            [
                "version = 2",
                f"root = {_toml_str(str(self.root))}",
                f"state = {_toml_str(str(self.state))}",
                "oom_score = 0",
                "",
                "[grpc]",
                f"  address = {_toml_str(self.socket)}",
                "",
                "[ttrpc]",
                f"  address = {_toml_str(self.socket + '.ttrpc')}",
                "",
                "[debug]",
                '  address = ""',
                f"  level = {_toml_str(self.log_level)}",
                "",
                "[metrics]",
                '  address = ""',
                "",
                '[plugins."io.containerd.internal.v1.opt"]',
                f"  path = {_toml_str(str(self.base / 'opt'))}",
                "",
                cri,
                f"  sandbox_image = {_toml_str(self.sandbox_image)}",
                "  restrict_oom_score_adj = true",
                '  stream_server_address = "127.0.0.1"',
                '  stream_server_port = "0"',
                "  enable_selinux = false",
                "",
                f"{cri[:-1]}.containerd]",
                '  snapshotter = "overlayfs"',
                '  default_runtime_name = "runc"',
                "",
                runc,
                '  runtime_type = "io.containerd.runc.v2"',
                "",
                f"{runc[:-1]}.options]",
                "  SystemdCgroup = false",
                f"  BinaryName = {_toml_str(RUNC)}",
                "",
                f"{cri[:-1]}.cni]",
                f"  bin_dir = {_toml_str(CNI_BIN_DIR)}",
                f"  conf_dir = {_toml_str(str(self.cni_conf_dir))}",
                "  max_conf_num = 1",
                "",
                f"{cri[:-1]}.registry]",
                f"  config_path = {_toml_str(str(self.certs_dir))}",
                "",
            ]
        )

    def _write_files(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_toml())
        self.cni_conf_dir.mkdir(exist_ok=True)
        conflist = bridge_conflist(NETWORK_NAME, self.bridge, self.subnet, self.ipam_dir)
        (self.cni_conf_dir / "10-ctr-bench.conflist").write_text(json.dumps(conflist, indent=2) + "\n")
        for host, server in REGISTRY_HOSTS.items():
            folder = self.certs_dir / host
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts.toml").write_text(
                f"server = {_toml_str(server)}\n\n"
                f"[host.{_toml_str(server)}]\n"
                '  capabilities = ["pull", "resolve"]\n'
                "  skip_verify = true\n"
            )

    # ------------------------------------------------------------------------------------------ process

    def start(self, timeout: float = 60.0) -> ContainerdDaemon:
        """Start containerd and wait until its socket exists and the CRI Version RPC answers."""
        binary = ensure_installed()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "--config", str(self.config_file)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the benchmark's terminal goes to the benchmark only
            )
        self._wait_serving(timeout)
        return self

    def shim_pids(self) -> list[int]:
        """Pids of the ``containerd-shim-runc-v2`` processes serving this daemon (``-address SOCKET``)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if not argv or os.path.basename(argv[0].decode(errors="replace")) != SHIM:
                continue
            try:
                address = argv[argv.index(b"-address") + 1].decode()
            except (ValueError, IndexError):
                continue
            if address == self.socket:
                found.append(int(entry))
        return sorted(found)

    def kill_shims(self) -> int:
        """SIGKILL this daemon's shims (after a failed run); return how many there were."""
        pids = self.shim_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def remove(self) -> list[str]:
        """Remove every pod and container through CRI (while it runs), stop the daemon, end leftover shims,
        delete the bridge and the scratch directory (unmounting); return the CRI errors met, if any."""
        errors: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                errors = remove_everything(self.client)
            except grpc.RpcError as exc:
                errors = [f"{exc.code().name}: {exc.details()}"]
        self.stop()
        self.kill_shims()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        remove_tree(self.base)
        return errors

    def __enter__(self) -> ContainerdDaemon:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------- command


def main(argv: Sequence[str] | None = None) -> int:
    """``run``: start containerd on a scratch directory and serve until Ctrl-C; ``config``: print it."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.peer_containerd", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=("run", "config"))
    parser.add_argument("--base", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory after stopping")
    parser.add_argument("--pull", action="store_true", help=f"pull {SANDBOX_IMAGE} once it answers")
    args = parser.parse_args(argv)
    base = args.base or scratch_dir("containerd")
    daemon = ContainerdDaemon(base)
    if args.command == "config":
        print(daemon.config_toml())
        if args.base is None:
            shutil.rmtree(base)
        return 0
    daemon.start()
    print(f"{daemon.client.version()} pid {daemon.pid}")
    if args.pull:
        print(f"pulled {SANDBOX_IMAGE}: {daemon.client.pull(SANDBOX_IMAGE)}")
    print(f"CONTAINER_RUNTIME_ENDPOINT=unix://{daemon.socket}   (Ctrl-C stops it)", flush=True)
    try:
        while daemon.proc is not None and daemon.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    if args.keep:
        daemon.stop()
        print(f"stopped; kept {base}")
    else:
        for error in daemon.remove():
            print(f"cleanup: {error}")
        print(f"pods removed, stopped; removed {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

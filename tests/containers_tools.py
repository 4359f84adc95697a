"""podman and skopeo run with test-owned configuration only.

Every podman and skopeo call of the tests goes through :class:`ContainersTools`, so nothing the host has in
``/etc/containers``, ``/usr/share/containers``, ``~/.config/containers`` or its environment changes what
they do: the network backend (CNI, with a private network config directory: Debian's podman picks netavark
by default and fails when it is not installed), ``containers.conf`` (cgroupfs, file events), ``storage.conf``
(no host mount program or driver options), ``registries.conf``, ``registries.d``, the signature policy and
the credentials file are the test's own files. The one thing these versions (podman 4.3, skopeo 1.9) cannot
redirect is the ``registries.conf.d`` drop-in directory; the tests only use fully qualified names, which no
drop-in's short-name aliases affect.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PODMAN = shutil.which("podman")
SKOPEO = shutil.which("skopeo")
CNI_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
ACCEPT_ANYTHING: dict[str, Any] = {"default": [{"type": "insecureAcceptAnything"}]}
# Environment variables through which a host could steer podman or skopeo; replaced or dropped.
_HOST_KNOBS = ("CONTAINERS_", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")


def run(
    argv: list[str], timeout: float = 120, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a host tool; fail the test with its output when it fails."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=None if env is None else dict(env),
    )
    assert result.returncode == 0, (
        f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}{result.stdout}"
    )
    return result


class ContainersTools:
    """A private configuration for podman and skopeo under ``directory`` (created when missing)."""

    def __init__(self, directory: Path, policy: Mapping[str, Any] | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("net.d", "registries.d", "home", "tmp"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.policy = self.dir / "policy.json"
        self.set_policy(policy or ACCEPT_ANYTHING)
        self.registries_conf = self.dir / "registries.conf"
        self.registries_conf.write_text('unqualified-search-registries = []\nshort-name-mode = "enforcing"\n')
        self.auth_file = self.dir / "auth.json"
        self.auth_file.write_text('{"auths": {}}\n')
        self.storage_conf = self.dir / "storage.conf"
        self.storage_conf.write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{self.dir}/graph"\nrunroot = "{self.dir}/run"\n'
        )
        self.containers_conf = self.dir / "containers.conf"
        plugin_dirs = ", ".join(f'"{d}"' for d in CNI_PLUGIN_DIRS)
        self.containers_conf.write_text(
            "[network]\n"
            'network_backend = "cni"\n'
            f"cni_plugin_dirs = [{plugin_dirs}]\n"
            f'network_config_dir = "{self.dir}/net.d"\n'
            'default_subnet = "10.87.254.0/24"\n'
            "[engine]\n"
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n'
            f'events_logfile_path = "{self.dir}/events.log"\n'
            'runtime = "runc"\n'
            f'tmp_dir = "{self.dir}/tmp"\n'
        )

    def set_policy(self, policy: Mapping[str, Any]) -> None:
        """Replace the signature policy the tools use."""
        self.policy.write_text(json.dumps(policy))

    def env(self) -> dict[str, str]:
        """The process environment: the caller's, without the host's knobs, pointing at the private files."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_HOST_KNOBS)}
        env.update(
            CONTAINERS_CONF=str(self.containers_conf),
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            REGISTRY_AUTH_FILE=str(self.auth_file),
            HOME=str(self.dir / "home"),
            XDG_CONFIG_HOME=str(self.dir / "home" / ".config"),
            TMPDIR=str(self.dir / "tmp"),
        )
        return env

    def skopeo_argv(self, *args: str) -> list[str]:
        """skopeo's command line with the private policy, registries.conf and registries.d."""
        assert SKOPEO is not None, "skopeo is not installed"
        return [
            SKOPEO,
            "--policy",
            str(self.policy),
            "--registries-conf",
            str(self.registries_conf),
            "--registries.d",
            str(self.dir / "registries.d"),
            *args,
        ]

    def podman_argv(self, graph: Path, run_root: Path, *args: str) -> list[str]:
        """podman's command line on the store ``graph`` + ``run_root`` with the CNI backend."""
        assert PODMAN is not None, "podman is not installed"
        return [
            PODMAN,
            "--root",
            str(graph),
            "--runroot",
            str(run_root),
            "--storage-driver",
            "overlay",
            "--tmpdir",
            str(self.dir / "tmp"),
            "--events-backend",
            "file",
            "--cgroup-manager",
            "cgroupfs",
            "--network-backend",
            "cni",
            "--network-config-dir",
            str(self.dir / "net.d"),
            *args,
        ]

    def skopeo(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run skopeo ``args``; fails the test when it fails."""
        return run(self.skopeo_argv(*args), timeout, self.env())

    def podman(
        self, graph: Path, run_root: Path, *args: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run podman ``args`` on the given store; fails the test when it fails."""
        return run(self.podman_argv(graph, run_root, *args), timeout, self.env())

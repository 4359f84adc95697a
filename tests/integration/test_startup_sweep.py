"""The start-up sweep on a real daemon: what a crio without a journal left after a kill -9 is removed at the
next start, and nothing of podman, of a foreign runc container or of another daemon's pinned namespace is
touched.

Two pods with a running container each, then SIGKILL, then the leftovers an older crio would leave:

* pod 1 and its container lose their storage records (``Store.delete_container``, as a removal that went
  storage-first and died before the runtime): their runc containers, monitors, pinned network namespace,
  cgroups and the pod's mounted /dev/shm (in a run directory that is otherwise gone) are owned by nothing;
* pod 2 and its container keep their records, but the metadata names no pod (the restores skip them), and
  the container's runc state is already deleted with two empty cgroup directories left behind.

Meanwhile podman runs a container on the same store (its bundle is under our run root, its runc state in the
same /run/runc), a plain runc container runs from a bundle elsewhere with a ``crio-<id>`` cgroup under
``/crio``, and another daemon's ``crio-<id>`` network namespace is pinned in our namespaces directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crio.core import netns
from crio.core.api import api_pb2 as pb
from crio.core.storage.layerid import random_id
from crio.core.storage.store import Store
from tests.containers_tools import PODMAN, ContainersTools
from tests.integration.test_runc_handler import RUNC, build_rootfs, make_spec
from tests.integration.test_storage_store import plugin_hook

from .conftest import CrioProcess, bridge_conflist
from .test_containers import BUSYBOX, create, new_pod
from .test_crash_recovery import allocations_of

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runc, namespaces, cgroups)"),
    pytest.mark.skipif(PODMAN is None, reason="needs podman (a foreign tool sharing the store)"),
]


def runc_list() -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [RUNC, "list", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    return {c["id"]: c for c in json.loads(out or "null") or []}


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 10) -> list[int]:
    """The pids still running after ``timeout`` (orphans are reaped by PID 1 a little late)."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if running(p)]
    return alive


def cgroups_of(container_id: str) -> list[Path]:
    return sorted(CGROUP_ROOT.glob(f"*/crio/crio-{container_id}"))


def monitor_pid(daemon: CrioProcess, container_id: str) -> int:
    path = daemon.base / "runroot" / "overlay-containers" / container_id / "userdata" / "conmon-pidfile"
    return int(path.read_text())


def records(daemon: CrioProcess) -> dict[str, dict[str, Any]]:
    path = daemon.base / "root" / "overlay-containers" / "containers.json"
    return {c["id"]: c for c in json.loads(path.read_text() or "[]")}


def layer_ids(daemon: CrioProcess) -> set[str]:
    path = daemon.base / "root" / "overlay-layers" / "layers.json"
    return {layer["id"] for layer in json.loads(path.read_text() or "[]")}


def mounts_mentioning(text: str) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if text in line]


def sweep_lines(log: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in log.splitlines() if "crio.core.sweep" in line]


class Foreign:
    """A plain runc container from a bundle outside the daemon's directories, in /run/runc, with a
    ``crio-<id>`` cgroup under /crio: another daemon's or a user's, never ours."""

    def __init__(self, directory: Path) -> None:
        self.id = random_id()
        self.bundle = directory
        rootfs = build_rootfs(directory / "rootfs")
        spec = make_spec(rootfs, ["sleep", "600"], f"/crio/crio-{self.id}")
        (directory / "config.json").write_text(json.dumps(spec))
        with open(directory / "runc.log", "wb") as output:  # the container inherits it: never a pipe
            subprocess.run(
                [RUNC, "run", "--detach", "--bundle", str(directory), self.id],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                check=True,
            )


def scrub(base: Path, ids: list[str]) -> None:
    """Leave nothing of the test on the host, whatever failed: runc containers from bundles under ``base``,
    processes naming it, mounts under it, and the cgroups of those containers and of ``ids`` (``base``
    itself goes with its fixture)."""
    for container in runc_list().values():
        if container["bundle"].startswith(f"{base}/"):
            ids.append(container["id"])
            subprocess.run([RUNC, "delete", "--force", container["id"]], capture_output=True, check=False)
    for line in subprocess.run(["pgrep", "-f", str(base)], capture_output=True, text=True).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(line), signal.SIGKILL)
    for point in sorted(mounts_mentioning(str(base)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    for directory in CGROUP_ROOT.glob("*/crio/crio-*"):
        if directory.name.removeprefix("crio-") in ids:
            with contextlib.suppress(OSError):
                directory.rmdir()


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory (podman refuses a run root over 50 characters) removed with its mounts."""
    path = Path(tempfile.mkdtemp(prefix="crio-sweep-", dir="/tmp"))
    yield path
    for _ in range(3):  # a mount hidden under podman's bind of the overlay home shows once that goes
        for point in sorted(mounts_mentioning(f"{path}/"), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_the_sweep_removes_what_no_record_owns_and_nothing_else(base: Path, local_registry: str) -> None:
    subprocess.run(["bash", str(REPO / "hack" / "host-network-setup.sh")], check=True, capture_output=True)
    daemon = CrioProcess(base)
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    tools = ContainersTools(base / "tools")
    podman_id = ""
    ours: list[str] = []
    foreign_netns = netns.directory_for(base / "ns") / f"crio-{random_id()}"
    try:
        daemon.start()
        daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
        # podman first: it bind-mounts the overlay home onto itself, which would hide crio's mounts.
        podman_id = tools.podman(
            base / "root",
            base / "runroot",
            "run",
            "--detach",
            "--pull=never",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            BUSYBOX,
            "sleep",
            "600",
        ).stdout.strip()
        inspect = tools.podman(base / "root", base / "runroot", "inspect", podman_id).stdout
        podman_state = json.loads(inspect)[0]["State"]
        pod1, pod2 = new_pod(daemon), new_pod(daemon)
        ctr1 = create(daemon, pod1, "one", ["sleep", "3600"])
        ctr2 = create(daemon, pod2, "two", ["sleep", "3600"])
        for cid in (ctr1, ctr2):
            daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        ours += [pod1[0], ctr1, pod2[0], ctr2]
        monitors = [monitor_pid(daemon, i) for i in ours]
        layers = {i: records(daemon)[i]["layer"] for i in ours}

        foreign = Foreign(base / "foreign")
        netns.create(foreign_netns.parent, foreign_netns.name)

        listed = runc_list()
        assert all(i in listed for i in ours)
        assert all(cgroups_of(i) for i in ours)
        # podman's container shares our runtime root and store; its bundle is its ContainerDirectory.
        assert listed[podman_id]["bundle"] == str(
            base / "root" / "overlay-containers" / podman_id / "userdata"
        )

        daemon.signal(signal.SIGKILL)
        daemon.wait(10)
        daemon.stop()

        # What a crio without a journal leaves: records gone under running containers (pod 1) ...
        store = Store(base / "root", base / "runroot", "overlay", (), plugin_hook())
        store.open()
        store.delete_container(ctr1)
        store.delete_container(pod1[0])
        assert mounts_mentioning(f"{pod1[0]}/userdata/shm")  # a removal without a journal stopped here
        # ... and records the restores cannot place (pod 2), whose container's runtime state is already gone
        # but not all of its cgroup.
        path = base / "root" / "overlay-containers" / "containers.json"
        table = json.loads(path.read_text())
        for record in table:
            if record["id"] in (pod2[0], ctr2):
                record["metadata"] = json.dumps({**json.loads(record["metadata"]), "pod-id": ""})
        path.write_text(json.dumps(table))
        subprocess.run([RUNC, "delete", "--force", ctr2], check=True, capture_output=True)
        leftover = [
            CGROUP_ROOT / "pids" / "crio" / f"crio-{ctr2}",
            CGROUP_ROOT / "memory" / "crio" / f"crio-{ctr2}",
        ]
        for directory in leftover:
            directory.mkdir()

        started = len(daemon.log())
        daemon.start()
        lines = sweep_lines(daemon.log()[started:])
        summary = lines[-1]
        assert summary.startswith("start-up sweep (") and "failed" not in summary, "\n".join(lines)
        for removed in (
            "3 runtime container(s)",  # pod 1, its container, pod 2 (the runtime state of pod 2's is gone)
            "2 pinned namespace(s)",
            "2 storage container(s)",  # pod 2 and its container
            "1 container directory(s)",  # pod 1's run directory, kept by its /dev/shm mount
        ):
            assert removed in summary, "\n".join(lines)
        assert any(line.startswith(f"start-up sweep: removed cgroup crio-{ctr2} ") for line in lines), (
            "\n".join(lines)
        )

        # Ours: gone.
        listed = runc_list()
        assert not [i for i in ours if i in listed]
        assert wait_gone(monitors) == []
        for pod_id in (pod1[0], pod2[0]):
            assert not (base / "ns" / "netns" / f"crio-{pod_id}").exists()
            assert allocations_of(pod_id) == []
        assert [cgroups_of(i) for i in ours] == [[], [], [], []]
        assert not [i for i in ours if i in records(daemon)]
        assert not set(layers.values()) & layer_ids(daemon)
        for root in ("root", "runroot"):
            assert not [i for i in ours if (base / root / "overlay-containers" / i).exists()]
        assert not [m for i in ours for m in mounts_mentioning(i)]
        assert not [i for i in ours if (base / "exits" / i).exists() or (base / "att" / i).is_symlink()]
        assert not daemon.runtime().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items

        # Not ours: untouched.
        assert foreign.id in listed and listed[foreign.id]["status"] == "running"
        assert cgroups_of(foreign.id)
        assert netns.exists(foreign_netns)
        assert podman_id in records(daemon)
        assert running(podman_state["ConmonPid"]) and running(podman_state["Pid"])
        inspect = tools.podman(base / "root", base / "runroot", "inspect", podman_id).stdout
        assert json.loads(inspect)[0]["State"]["Status"] == "running"

        # Idempotent: the next start finds nothing.
        daemon.stop()
        started = len(daemon.log())
        daemon.start()
        assert sweep_lines(daemon.log()[started:])[-1].endswith("nothing to remove")
    finally:
        daemon.stop()
        if podman_id:
            argv = tools.podman_argv(
                base / "root", base / "runroot", "rm", "--force", "--time", "0", podman_id
            )
            subprocess.run(argv, env=tools.env(), capture_output=True, check=False)
        scrub(base, ours)
        netns.remove(foreign_netns)

"""Containers on a real daemon: runc under conmon, CRI logs, exit codes, stop, OOM, restart, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb

from .conftest import CrioFactory, CrioProcess, bridge_conflist

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
LOG_LINE = re.compile(r"^\S+ (stdout|stderr) (P|F) (.*)$")


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    return d


def new_pod(daemon: CrioProcess) -> tuple[str, pb.PodSandboxConfig]:
    name = f"pod-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="crio-test", uid=uuid.uuid4().hex),
        log_directory=str(daemon.base / "logs" / name),
    )
    pod_id = (
        daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120).pod_sandbox_id
    )
    return str(pod_id), config


def create(
    daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], name: str, command: list[str], **kw: Any
) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=BUSYBOX),
        command=command,
        log_path=f"{name}.log",
        labels={"name": name},
    )
    for key, value in kw.items():
        if key == "memory":
            config.linux.resources.memory_limit_in_bytes = value
            config.linux.resources.memory_swap_limit_in_bytes = value
        elif key == "mounts":
            config.mounts.extend(value)
        elif key == "log_path":
            config.log_path = value
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    return str(daemon.runtime().CreateContainer(request, timeout=120).container_id)


def status(daemon: CrioProcess, container_id: str) -> pb.ContainerStatus:
    response = daemon.runtime().ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id), timeout=30
    )
    result: pb.ContainerStatus = response.status
    return result


def wait_state(daemon: CrioProcess, container_id: str, state: int, timeout: float = 30) -> pb.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        current = status(daemon, container_id)
        if current.state == state or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


def log_records(path: str) -> list[tuple[str, str, str]]:
    records = []
    for line in Path(path).read_text().splitlines():
        match = LOG_LINE.match(line)
        assert match, f"not a CRI log line: {line!r}"
        records.append((match.group(1), match.group(2), match.group(3)))
    return records


def test_lifecycle_exit_code_and_logs(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    cid = create(daemon, pod, "echo", ["sh", "-c", "echo out; echo err >&2; exit 7"])
    created = status(daemon, cid)
    assert created.state == pb.CONTAINER_CREATED
    assert created.image_id == created.image_ref and created.image_id
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    exited = wait_state(daemon, cid, pb.CONTAINER_EXITED)
    assert exited.state == pb.CONTAINER_EXITED
    assert exited.exit_code == 7
    assert exited.reason == "Error"
    assert exited.finished_at >= exited.started_at > exited.created_at > 0
    records = log_records(exited.log_path)
    assert ("stdout", "F", "out") in records and ("stderr", "F", "err") in records
    listed = daemon.runtime().ListContainers(
        pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod[0])), timeout=30
    )
    assert [c.id for c in listed.containers] == [cid]
    daemon.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        status(daemon, cid)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    daemon.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)  # idempotent
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_stop_timeout_and_a_shorter_second_stop(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    cid = create(daemon, pod, "stubborn", ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"])
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    started = time.monotonic()
    slow = daemon.runtime().StopContainer.future(
        pb.StopContainerRequest(container_id=cid, timeout=60), timeout=90
    )
    time.sleep(0.5)
    daemon.runtime().StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1), timeout=30)
    slow.result()
    assert time.monotonic() - started < 15
    stopped = status(daemon, cid)
    assert stopped.state == pb.CONTAINER_EXITED and stopped.exit_code == 137
    daemon.runtime().StopContainer(
        pb.StopContainerRequest(container_id=cid, timeout=1), timeout=30
    )  # again: fine
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_oom_killed(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    cid = create(
        daemon, pod, "oom", ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=40M"], memory=15 * 1024 * 1024
    )
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    exited = wait_state(daemon, cid, pb.CONTAINER_EXITED)
    assert exited.exit_code == 137
    assert exited.reason == "OOMKilled"
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_exec_sync_and_host_path_volume(daemon: CrioProcess, tmp_path: Path) -> None:
    pod = new_pod(daemon)
    missing_source = tmp_path / "created-as-a-directory"
    mount = pb.Mount(container_path="/data", host_path=str(missing_source))
    cid = create(daemon, pod, "sleeper", ["sleep", "300"], mounts=[mount])
    assert missing_source.is_dir()
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    result = daemon.runtime().ExecSync(
        pb.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "echo hi > /data/f; cat /data/f; exit 3"], timeout=10
        )
    )
    assert (result.stdout, result.exit_code) == (b"hi\n", 3)
    assert (missing_source / "f").read_text() == "hi\n"
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    listed = daemon.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers
    assert cid not in [c.id for c in listed]


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (lambda c: c.ClearField("metadata"), grpc.StatusCode.INVALID_ARGUMENT, "metadata.name"),
        (lambda c: setattr(c.image, "image", "quay.io/none/absent:1"), grpc.StatusCode.NOT_FOUND, "absent"),
        (lambda c: setattr(c, "log_path", "../escape.log"), grpc.StatusCode.INVALID_ARGUMENT, "log_path"),
        (lambda c: setattr(c, "log_path", "/var/log/x.log"), grpc.StatusCode.INVALID_ARGUMENT, "log_path"),
        (lambda c: c.envs.add(key="HOME", value=b"/root\nevil"), grpc.StatusCode.INVALID_ARGUMENT, "HOME"),
    ],
)
def test_bad_create_requests_leave_nothing(
    daemon: CrioProcess, mutate: Any, code: grpc.StatusCode, message: str
) -> None:
    pod = new_pod(daemon)
    config = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="bad"), image=pb.ImageSpec(image=BUSYBOX))
    mutate(config)
    before = json.loads((daemon.base / "root" / "overlay-containers" / "containers.json").read_text())
    with pytest.raises(grpc.RpcError) as err:
        daemon.runtime().CreateContainer(
            pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1]), timeout=60
        )
    assert err.value.code() == code, err.value.details()
    assert message in (err.value.details() or "")
    after = json.loads((daemon.base / "root" / "overlay-containers" / "containers.json").read_text())
    assert after == before
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_unknown_pod_and_name_in_use(daemon: CrioProcess) -> None:
    config = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="x"), image=pb.ImageSpec(image=BUSYBOX))
    with pytest.raises(grpc.RpcError) as err:
        daemon.runtime().CreateContainer(pb.CreateContainerRequest(pod_sandbox_id="f" * 64, config=config))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    pod = new_pod(daemon)
    first = create(daemon, pod, "same", ["sleep", "60"])
    with pytest.raises(grpc.RpcError) as err:
        create(daemon, pod, "same", ["sleep", "60"])
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first in (err.value.details() or "")
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_containers_survive_a_daemon_restart(crio_factory: CrioFactory, daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    running = create(daemon, pod, "running", ["sleep", "300"])
    done = create(daemon, pod, "done", ["sh", "-c", "exit 5"])
    for cid in (running, done):
        daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert wait_state(daemon, done, pb.CONTAINER_EXITED).exit_code == 5
    daemon.signal(9)
    daemon.wait(10)
    again = crio_factory().start()
    assert status(again, running).state == pb.CONTAINER_RUNNING
    after = status(again, done)
    assert (after.state, after.exit_code) == (pb.CONTAINER_EXITED, 5)
    again.runtime().StopContainer(pb.StopContainerRequest(container_id=running, timeout=1), timeout=30)
    assert status(again, running).state == pb.CONTAINER_EXITED
    again.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    assert os.listdir(again.base / "root" / "overlay-containers") == [
        "containers.json",
        "containers.lock",
    ] or all(len(n) != 64 for n in os.listdir(again.base / "root" / "overlay-containers"))


def test_container_stats(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    cid = create(daemon, pod, "busy", ["sh", "-c", "head -c 20000000 /dev/zero > /tmp/f; sleep 300"])
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    time.sleep(1)
    one = daemon.runtime().ContainerStats(pb.ContainerStatsRequest(container_id=cid), timeout=30).stats
    assert one.attributes.id == cid
    assert one.cpu.usage_core_nano_seconds.value > 0
    assert one.memory.working_set_bytes.value > 0
    assert one.writable_layer.used_bytes.value >= 20_000_000
    listed = (
        daemon.runtime()
        .ListContainerStats(
            pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(label_selector={"name": "busy"})),
            timeout=30,
        )
        .stats
    )
    assert [s.attributes.id for s in listed] == [cid]
    assert listed[0].cpu.usage_nano_cores.value >= 0
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_long_lines_are_split_and_the_log_reopens(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    script = "yes x | head -c 80000 | tr -d '\\n'; echo; sleep 2; echo after-rotation; sleep 300"
    cid = create(daemon, pod, "long", ["sh", "-c", script])
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    log_path = status(daemon, cid).log_path
    deadline = time.monotonic() + 10
    while not Path(log_path).exists() or "F" not in {r[1] for r in log_records(log_path)}:
        assert time.monotonic() < deadline, "no full line in the log"
        time.sleep(0.1)
    records = log_records(log_path)
    partial = [r for r in records if r[1] == "P"]
    assert partial, "a 40000-byte line must be split into partial records"
    assert "".join(r[2] for r in records if r[0] == "stdout") == "x" * 40000
    os.rename(log_path, log_path + ".1")
    daemon.runtime().ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid), timeout=30)
    deadline = time.monotonic() + 10
    while not (Path(log_path).exists() and "after-rotation" in Path(log_path).read_text()):
        assert time.monotonic() < deadline, "nothing written to the reopened log"
        time.sleep(0.1)
    assert ("stdout", "F", "after-rotation") in log_records(log_path)
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def memory_limit_file(pod_id: str, cid: str, daemon: CrioProcess) -> Path:
    info = json.loads(
        daemon.runtime()
        .ContainerStatus(pb.ContainerStatusRequest(container_id=cid, verbose=True))
        .info["info"]
    )
    cgroup = str(info["runtimeSpec"]["linux"]["cgroupsPath"]).lstrip("/")
    v1 = Path("/sys/fs/cgroup/memory") / cgroup / "memory.limit_in_bytes"
    return v1 if v1.exists() else Path("/sys/fs/cgroup") / cgroup / "memory.max"


def test_resources_reach_the_cgroup_and_update_live(daemon: CrioProcess) -> None:
    pod = new_pod(daemon)
    cid = create(daemon, pod, "limited", ["sleep", "300"], memory=64 * 1024 * 1024)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    limit = memory_limit_file(pod[0], cid, daemon)
    assert int(limit.read_text()) == 64 * 1024 * 1024
    update = pb.LinuxContainerResources(
        memory_limit_in_bytes=128 * 1024 * 1024, memory_swap_limit_in_bytes=128 * 1024 * 1024
    )
    daemon.runtime().UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(container_id=cid, linux=update), timeout=30
    )
    assert int(limit.read_text()) == 128 * 1024 * 1024
    assert status(daemon, cid).resources.linux.memory_limit_in_bytes == 128 * 1024 * 1024
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_workloads_killed_while_the_daemon_is_down(crio_factory: CrioFactory, daemon: CrioProcess) -> None:
    """20 running containers; SIGKILL the daemon; 5 workloads are killed meanwhile; after the restart all 20
    are listed, 15 running (exec works in them) and 5 exited with 137."""
    pod = new_pod(daemon)
    containers = [create(daemon, pod, f"w{i}", ["sleep", "600"]) for i in range(20)]
    pids = {}
    for cid in containers:
        daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        verbose = daemon.runtime().ContainerStatus(
            pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=30
        )
        pids[cid] = int(json.loads(verbose.info["info"])["pid"])
    daemon.signal(9)
    daemon.wait(10)
    victims = containers[:5]
    for cid in victims:
        os.kill(pids[cid], 9)
    again = crio_factory().start()
    listed = again.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers
    assert sorted(c.id for c in listed) == sorted(containers)
    for cid in victims:
        exited = wait_state(again, cid, pb.CONTAINER_EXITED)
        assert (exited.state, exited.exit_code) == (pb.CONTAINER_EXITED, 137)
    for cid in containers[5:]:
        assert status(again, cid).state == pb.CONTAINER_RUNNING
        reply = again.runtime().ExecSync(
            pb.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=10), timeout=30
        )
        assert reply.exit_code == 0
    again.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=120)
    assert again.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers == []


def test_every_transition_is_published_once(crio_factory: CrioFactory, local_registry: str) -> None:
    """The event bus sees each pod and container transition, in order (the debug log is its one consumer)."""
    d = crio_factory(["--log-level", "debug"])
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    pod = new_pod(d)
    cid = create(d, pod, "short", ["true"])
    d.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert wait_state(d, cid, pb.CONTAINER_EXITED).state == pb.CONTAINER_EXITED
    d.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    d.runtime().StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    d.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    events = [line.split("event: ", 1)[1] for line in d.log().splitlines() if " event: " in line]
    assert events == [
        f"pod {pod[0]} (new) -> creating",
        f"pod {pod[0]} creating -> ready",
        f"container {cid} (new) -> creating",
        f"container {cid} creating -> created",
        f"container {cid} created -> running",
        f"container {cid} running -> exited",
        f"container {cid} exited -> removing",
        f"container {cid} removing -> removed",
        f"pod {pod[0]} ready -> notready",
        f"pod {pod[0]} notready -> removing",
        f"pod {pod[0]} removing -> removed",
    ]


def conmon_pid(daemon: CrioProcess, object_id: str) -> int:
    """The pid of the monitor of a container or pod (from its pid file in the ContainerRunDirectory)."""
    rundir = daemon.base / "runroot" / "overlay-containers" / object_id / "userdata"
    return int((rundir / "conmon-pidfile").read_text())


def test_monitors_killed_while_the_daemon_is_down(crio_factory: CrioFactory, daemon: CrioProcess) -> None:
    """SIGKILL the daemon, then the monitors of a pod and its two containers (nobody writes their exit files
    any more): after the restart the containers and the pod are still stoppable and removable, and nothing
    of them is left (processes, storage, names)."""
    pod = new_pod(daemon)
    containers = [create(daemon, pod, f"m{i}", ["sleep", "600"]) for i in range(2)]
    for cid in containers:
        daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    monitors = [conmon_pid(daemon, object_id) for object_id in [pod[0], *containers]]
    workloads = []
    for cid in containers:
        verbose = daemon.runtime().ContainerStatus(
            pb.ContainerStatusRequest(container_id=cid, verbose=True), timeout=30
        )
        workloads.append(int(json.loads(verbose.info["info"])["pid"]))
    daemon.signal(9)
    daemon.wait(10)
    for pid in monitors:
        os.kill(pid, 9)
    again = crio_factory().start()
    assert sorted(
        c.id for c in again.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers
    ) == sorted(containers)
    again.runtime().StopContainer(pb.StopContainerRequest(container_id=containers[0], timeout=1), timeout=60)
    assert status(again, containers[0]).state == pb.CONTAINER_EXITED
    again.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=containers[0]), timeout=60)
    again.runtime().StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    again.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    assert again.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers == []
    assert again.runtime().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items == []
    for object_id in [pod[0], *containers]:
        left = subprocess.run(["pgrep", "-f", object_id], capture_output=True, text=True).stdout
        assert left == "", f"processes of {object_id} are left: {left}"
        assert not (daemon.base / "root" / "overlay-containers" / object_id).exists()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/*/crio-{object_id}"))
    for pid in workloads:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    # The names are free again: the same pod and container can be created anew.
    second = again.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=pod[1]), timeout=120).pod_sandbox_id
    create(again, (second, pod[1]), "m0", ["sleep", "600"])
    again.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=second), timeout=60)


def test_records_unreadable_after_a_crash_are_purged_at_restart(
    crio_factory: CrioFactory, daemon: CrioProcess
) -> None:
    """A pod and a container whose record files are garbage (a crio without the journal, a disk error) are
    removed at the restart, processes and storage included, through journaled removals that leave nothing."""
    pod = new_pod(daemon)
    cid = create(daemon, pod, "garbled", ["sleep", "600"])
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    daemon.signal(9)
    daemon.wait(10)
    for object_id, record in ((pod[0], "sandbox.json"), (cid, "container.json")):
        (daemon.base / "root" / "overlay-containers" / object_id / "userdata" / record).write_text("{garbage")
    again = crio_factory().start()
    assert again.runtime().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items == []
    assert again.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers == []
    assert list((again.base / "root" / "crio-journal").glob("*.json")) == []
    for object_id in (pod[0], cid):
        assert not (again.base / "root" / "overlay-containers" / object_id).exists()
        left = subprocess.run(["pgrep", "-f", object_id], capture_output=True, text=True).stdout
        assert left == "", f"processes of {object_id} are left: {left}"
    log = again.log()
    assert f"pod {pod[0]} has no usable state" in log and f"container {cid} has no usable state" in log

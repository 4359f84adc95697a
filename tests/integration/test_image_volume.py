"""Image volumes (CRI ``Mount.image``): the store's read-only image mounts on overlay and vfs, then the real
daemon: mounted read-only but executable, sub paths, refusals that leave nothing behind, ContainerStatus's
``image_ref``, RemoveImage refused while mounted, and unmounting on removal, also after a daemon restart."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from crio.core.errors import FailedPrecondition, NotFound
from crio.core.storage.store import Store

from .conftest import CrioFactory, CrioProcess, bridge_conflist
from .test_containers import BUSYBOX, new_pod, status
from .test_security import run_pod
from .test_storage_store import BASE, Entry, make_tar, mountinfo_mentions, open_store, put_image

# busybox-based, two layers: /bin/sh, /bin/ls and /etc/passwd (the image critest mounts).
VOLUME_IMAGE = "gcr.io/k8s-staging-cri-tools/test-image-tag:test"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")


def mount_points_under(path: Path) -> list[str]:
    """Mount points in this process's mount table at or below ``path``."""
    text = Path("/proc/self/mountinfo").read_text()
    return [line.split()[4] for line in text.splitlines() if line.split()[4].startswith(str(path))]


# ------------------------------------------------------------------------------------------ the store


@pytest.fixture(params=["overlay", "vfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(tmp_path, request.param)


def put_single_layer_image(store: Store) -> str:
    """An image of one base layer (a read-only overlay then needs the layer's empty/ as second lower)."""
    layer = store.put_layer(None, io.BytesIO(make_tar(BASE)))
    return store.create_image("e" * 64, layer.id, ["localhost/single:1"], None, []).id


def test_store_image_mounts_are_read_only_owned_and_protect_the_image(store: Store, tmp_path: Path) -> None:
    two_layers, _ = put_image(store)
    single = put_single_layer_image(store)
    container = store.create_container(
        "c" * 64, ["ctr"], two_layers, "{}", volume_images=[two_layers, single]
    )
    directory = tmp_path / f"run/{store.driver}-containers/{container.id}/image-volumes"

    top = store.mount_image(container.id, two_layers, "0", options=["nodev", "nosuid"])
    base = store.mount_image(container.id, single, "1")
    assert (top, base) == (directory / "0", directory / "1")
    assert (top / "etc/motd").read_text() == "hello from the top layer\n"
    assert not (top / "etc/hostname").exists(), "whiteouts apply"
    assert (base / "etc/hostname").read_text() == "base\n"
    for point in (top, base):
        with pytest.raises(OSError) as err:
            (point / "new-file").write_text("x")
        assert err.value.errno == errno.EROFS
    assert mount_points_under(directory) == [str(top), str(base)]
    assert store.mounted_count() == 0, "image mounts are not counted layer mounts"

    with pytest.raises(FailedPrecondition, match=f"image volume by container.*{container.id}"):
        store.delete_image(single)
    other = store.create_container("d" * 64, [], two_layers, "{}")
    with pytest.raises(FailedPrecondition, match="not created with image"):
        store.mount_image(other.id, single, "0")
    assert not (tmp_path / f"run/{store.driver}-containers/{other.id}/image-volumes/0").exists()
    with pytest.raises(NotFound):
        store.create_container("a" * 64, [], two_layers, "{}", volume_images=["f" * 64])

    store.unmount_image(container.id, "1")
    assert not (directory / "1").exists() and mount_points_under(directory) == [str(top)]
    store.delete_container(container.id)
    assert not mountinfo_mentions(tmp_path)
    assert not directory.exists()
    store.delete_container(other.id)
    store.delete_image(single)
    store.delete_image(two_layers)
    assert store.images() == [] and store.layers() == []


def test_store_image_mount_of_a_deep_overlay_chain(tmp_path: Path) -> None:
    """Lower directories over a page of options: the read-only mount passes them as descriptors."""
    store = open_store(tmp_path, "overlay")
    parent: str | None = None
    for index in range(200):
        blob = make_tar([Entry(f"f{index:03d}", str(index).encode())], compress=False)
        parent = store.put_layer(parent, io.BytesIO(blob)).id
    assert parent is not None
    image = store.create_image("a" * 64, parent, ["localhost/deep:1"], None, [])
    container = store.create_container("b" * 64, [], image.id, "{}", volume_images=[image.id])
    point = store.mount_image(container.id, image.id, "0")
    assert len(os.listdir(point)) == 200 and (point / "f000").read_text() == "0"
    store.delete_container(container.id)
    store.delete_image(image.id)
    assert not mountinfo_mentions(tmp_path)


# ----------------------------------------------------------------------------------------- the daemon


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    for image in (BUSYBOX, VOLUME_IMAGE):
        d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300)
    return d


def volume_ref(daemon: CrioProcess) -> str:
    """The volume image's ID, as PullImage returns it (and the kubelet puts into ``Mount.image``)."""
    response = daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=VOLUME_IMAGE)))
    return str(response.image_ref)


def image_mount(ref: str, path: str = "/mnt/image", **fields: Any) -> pb.Mount:
    fields.setdefault("readonly", True)
    spec = pb.ImageSpec(image=ref, user_specified_image=VOLUME_IMAGE)
    return pb.Mount(container_path=path, image=spec, **fields)


def create(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], mounts: list[pb.Mount]) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="volumes"),
        image=pb.ImageSpec(image=BUSYBOX),
        command=["sleep", "600"],
        mounts=mounts,
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    return str(daemon.runtime().CreateContainer(request, timeout=120).container_id)


def run(daemon: CrioProcess, cid: str, *cmd: str) -> pb.ExecSyncResponse:
    response: pb.ExecSyncResponse = daemon.runtime().ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=30), timeout=60
    )
    return response


def volumes_dir(daemon: CrioProcess, cid: str) -> Path:
    return daemon.base / "runroot" / "overlay-containers" / cid / "image-volumes"


def image_volume_mounts(daemon: CrioProcess) -> list[str]:
    """Every image volume mount point of the daemon's containers (the pods' /dev/shm mounts left out)."""
    containers = daemon.base / "runroot" / "overlay-containers"
    return [p for p in mount_points_under(containers) if "/image-volumes/" in p]


def remove_image(daemon: CrioProcess, ref: str) -> None:
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=60)


def test_image_volume_read_only_executable_sub_path_status_and_removal(daemon: CrioProcess) -> None:
    ref = volume_ref(daemon)
    pod = new_pod(daemon)
    cid = create(daemon, pod, [image_mount(ref), image_mount(ref, "/mnt/etc", image_sub_path="etc")])
    points = mount_points_under(volumes_dir(daemon, cid))
    assert points == [str(volumes_dir(daemon, cid) / "0"), str(volumes_dir(daemon, cid) / "1")]

    reported = {m.container_path: m for m in status(daemon, cid).mounts}
    assert reported["/mnt/image"].image.image_ref == ref
    assert reported["/mnt/image"].image.user_specified_image == VOLUME_IMAGE
    assert (reported["/mnt/etc"].image.image_ref, reported["/mnt/etc"].image_sub_path) == (ref, "etc")
    assert reported["/mnt/image"].readonly and not reported["/mnt/image"].host_path

    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert run(daemon, cid, "ls", "-A", "/mnt/image/bin/sh").exit_code == 0
    assert run(daemon, cid, "cat", "/mnt/image/etc/passwd").stdout.startswith(b"root:")
    listed = run(daemon, cid, "/mnt/image/bin/ls", "/mnt/image")  # a program of the volume runs
    assert listed.exit_code == 0 and b"etc" in listed.stdout.split()
    assert run(daemon, cid, "ls", "/mnt/etc/passwd").exit_code == 0
    assert run(daemon, cid, "ls", "/mnt/etc/etc").exit_code != 0, "the sub path, not the image's root"
    write = run(daemon, cid, "touch", "/mnt/image/written")
    assert write.exit_code != 0 and b"Read-only file system" in write.stderr
    table = run(daemon, cid, "cat", "/proc/self/mountinfo").stdout.decode().splitlines()
    options = next(line.split()[5] for line in table if line.split()[4] == "/mnt/image").split(",")
    assert "ro" in options and "nosuid" in options and "nodev" in options and "noexec" not in options

    with pytest.raises(grpc.RpcError) as err:
        remove_image(daemon, ref)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert cid in (err.value.details() or "")

    daemon.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    assert image_volume_mounts(daemon) == [] and mount_points_under(volumes_dir(daemon, cid).parent) == []
    assert not volumes_dir(daemon, cid).parent.exists()
    remove_image(daemon, ref)  # no container mounts it any more
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


@pytest.mark.parametrize(
    ("mount", "code", "message"),
    [
        (
            dict(readonly=False),
            grpc.StatusCode.INVALID_ARGUMENT,
            "/mnt/image: an image volume must be read-only",
        ),
        (dict(image_sub_path="not-existing"), grpc.StatusCode.NOT_FOUND, "'not-existing' does not exist"),
        (dict(image_sub_path="../etc"), grpc.StatusCode.INVALID_ARGUMENT, "must not contain '..'"),
        (dict(image_sub_path="/etc"), grpc.StatusCode.INVALID_ARGUMENT, "relative"),
        (dict(host_path="/srv"), grpc.StatusCode.INVALID_ARGUMENT, "mutually exclusive"),
        (dict(image="quay.io/none/absent:1"), grpc.StatusCode.NOT_FOUND, "image quay.io/none/absent:1"),
    ],
)
def test_bad_image_volumes_are_refused_and_leave_nothing(
    daemon: CrioProcess, mount: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    ref = str(mount.pop("image", "")) or volume_ref(daemon)
    pod = new_pod(daemon)
    containers_json = daemon.base / "root" / "overlay-containers" / "containers.json"
    run_dirs = daemon.base / "runroot" / "overlay-containers"
    before = (json.loads(containers_json.read_text()), sorted(os.listdir(run_dirs)))
    host_mount = pb.Mount(container_path="/data", host_path=str(daemon.base / "d"))
    with pytest.raises(grpc.RpcError) as err:
        create(daemon, pod, [host_mount, image_mount(ref, **mount)])
    assert err.value.code() == code, err.value.details()
    assert message in (err.value.details() or "")
    assert (json.loads(containers_json.read_text()), sorted(os.listdir(run_dirs))) == before
    assert image_volume_mounts(daemon) == []
    cid = create(daemon, pod, [])  # the name was released
    daemon.runtime().RemoveContainer(pb.RemoveContainerRequest(container_id=cid), timeout=60)
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def pod_in(daemon: CrioProcess, namespace: str) -> tuple[str, pb.PodSandboxConfig]:
    """A ready pod in Kubernetes namespace ``namespace``."""
    name = f"pod-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uuid.uuid4().hex),
        log_directory=str(daemon.base / "logs" / name),
    )
    response = daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return str(response.pod_sandbox_id), config


def pull_in(daemon: CrioProcess, image: str, pod: tuple[str, pb.PodSandboxConfig]) -> str:
    """PullImage of ``image`` for ``pod`` (so under its namespace's signature policy)."""
    request = pb.PullImageRequest(image=pb.ImageSpec(image=image), sandbox_config=pod[1])
    return str(daemon.images().PullImage(request, timeout=300).image_ref)


def test_a_namespace_policy_that_rejects_the_volume_image_refuses_the_create(daemon: CrioProcess) -> None:
    """Namespace "allowing" accepts the volume image and pulls it; namespace "refusing" rejects it, so a pod
    there can neither pull it nor mount the stored copy as an image volume (by ID or by name)."""
    daemon.policy_dir.mkdir()
    accept = {"default": [{"type": "insecureAcceptAnything"}]}
    (daemon.policy_dir / "allowing.json").write_text(json.dumps(accept))
    scope = VOLUME_IMAGE.rsplit(":", 1)[0]
    refuse = {**accept, "transports": {"docker": {scope: [{"type": "reject"}]}}}
    (daemon.policy_dir / "refusing.json").write_text(json.dumps(refuse))
    allowing, refusing = pod_in(daemon, "allowing"), pod_in(daemon, "refusing")
    ref = pull_in(daemon, VOLUME_IMAGE, allowing)
    with pytest.raises(grpc.RpcError) as err:
        pull_in(daemon, VOLUME_IMAGE, refusing)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()

    containers_json = daemon.base / "root" / "overlay-containers" / "containers.json"
    run_dirs = daemon.base / "runroot" / "overlay-containers"
    before = (json.loads(containers_json.read_text()), sorted(os.listdir(run_dirs)))
    for volume in (image_mount(ref), image_mount(VOLUME_IMAGE, "/mnt/by-name")):
        with pytest.raises(grpc.RpcError) as err:
            create(daemon, refusing, [volume])
        details = err.value.details() or ""
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, details
        assert f"image volume {volume.container_path}" in details and "reject" in details, details
        assert (json.loads(containers_json.read_text()), sorted(os.listdir(run_dirs))) == before
        assert image_volume_mounts(daemon) == []
    cid = create(daemon, refusing, [])  # the container's own image is accepted there; the name was released
    assert status(daemon, cid).mounts == []

    allowed = create(daemon, allowing, [image_mount(ref)])
    assert [m.image.image_ref for m in status(daemon, allowed).mounts] == [ref]
    for pod in (allowing, refusing):
        daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    assert image_volume_mounts(daemon) == []


def test_image_volumes_survive_a_daemon_restart(crio_factory: CrioFactory, daemon: CrioProcess) -> None:
    ref = volume_ref(daemon)
    pod = new_pod(daemon)
    cid = create(daemon, pod, [image_mount(ref, image_sub_path="bin")])
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    again = crio_factory().start()
    assert mount_points_under(volumes_dir(again, cid)) == [str(volumes_dir(again, cid) / "0")]
    assert [m.image.image_ref for m in status(again, cid).mounts] == [ref]
    assert run(again, cid, "/mnt/image/ls", "/mnt/image/sh").exit_code == 0
    with pytest.raises(grpc.RpcError) as err:
        remove_image(again, ref)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    again.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    assert image_volume_mounts(again) == []
    assert not volumes_dir(again, cid).parent.exists()
    remove_image(again, ref)


def test_image_volume_in_a_pod_user_namespace(crio_factory: CrioFactory, local_registry: str) -> None:
    """The volume is id-mapped like the root filesystem: the pod's root owns the image's root files."""
    daemon = crio_factory()
    for directory in [daemon.base, *daemon.base.parents]:  # pod user namespaces need a traversable root
        directory.chmod(directory.stat().st_mode | 0o001)
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    daemon.start()
    for image in (BUSYBOX, VOLUME_IMAGE):
        daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=300)
    ref = volume_ref(daemon)
    mapping = [pb.IDMapping(container_id=0, host_id=200000, length=65536)]
    userns = pb.UserNamespace(mode=pb.POD, uids=mapping, gids=mapping)
    pod_id, pod_config = run_pod(daemon, namespace_options=pb.NamespaceOption(userns_options=userns))
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="volumes"),
        image=pb.ImageSpec(image=BUSYBOX),
        command=["sleep", "600"],
        mounts=[image_mount(ref)],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(userns_options=userns)
            )
        ),
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)
    cid = str(daemon.runtime().CreateContainer(request, timeout=120).container_id)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert run(daemon, cid, "stat", "-c", "%u:%g", "/mnt/image/bin/sh").stdout == b"0:0\n"
    assert run(daemon, cid, "/mnt/image/bin/ls", "/mnt/image/etc/passwd").exit_code == 0
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
    assert image_volume_mounts(daemon) == []

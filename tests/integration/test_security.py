"""Security contexts on a real daemon with runc: seccomp (RuntimeDefault, Unconfined, Localhost, privileged),
pods' own profiles, the refusal of confinement no loaded plugin serves, and generated passwd entries."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from tests.containers_tools import ContainersTools

from .conftest import REGISTRY, CrioFactory, CrioProcess, bridge_conflist

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
BLOCK_CHMOD = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}],
}


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    return d


@pytest.fixture
def traversable_daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    """A daemon whose graph root's parents others may traverse (pytest's base temp dir is 0700), which pod
    user namespaces need."""
    d = crio_factory()
    for directory in [d.base, *d.base.parents]:
        directory.chmod(directory.stat().st_mode | 0o001)
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    return d


@pytest.fixture
def chmod_profile(tmp_path: Path) -> str:
    path = tmp_path / "block-chmod.json"
    path.write_text(json.dumps(BLOCK_CHMOD))
    return str(path)


def pod_config(daemon: CrioProcess, **security: Any) -> pb.PodSandboxConfig:
    name = f"pod-{uuid.uuid4().hex[:8]}"
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="crio-test", uid=uuid.uuid4().hex),
        log_directory=str(daemon.base / "logs" / name),
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(**security)),
    )


def run_pod(daemon: CrioProcess, **security: Any) -> tuple[str, pb.PodSandboxConfig]:
    config = pod_config(daemon, **security)
    response = daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return str(response.pod_sandbox_id), config


def create(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], **security: Any) -> str:
    """A sleeping busybox container in its own PID namespace (so /proc/1 is its own process)."""
    security.setdefault("namespace_options", pb.NamespaceOption(pid=pb.CONTAINER))
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:6]}"),
        image=pb.ImageSpec(image=BUSYBOX),
        command=["sleep", "300"],
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(**security)),
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    return str(daemon.runtime().CreateContainer(request, timeout=120).container_id)


def started(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], **security: Any) -> str:
    cid = create(daemon, pod, **security)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    return cid


def exec_sync(daemon: CrioProcess, cid: str, *cmd: str) -> pb.ExecSyncResponse:
    response: pb.ExecSyncResponse = daemon.runtime().ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=20), timeout=60
    )
    return response


def seccomp_mode(daemon: CrioProcess, cid: str) -> str:
    out = exec_sync(daemon, cid, "grep", "Seccomp:", "/proc/1/status").stdout.decode()
    return out.split()[1]


def remove_pod(daemon: CrioProcess, pod_id: str) -> None:
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def stored_containers(daemon: CrioProcess) -> Any:
    return json.loads((daemon.base / "root" / "overlay-containers" / "containers.json").read_text())


def test_seccomp_modes(daemon: CrioProcess, chmod_profile: str) -> None:
    pod = run_pod(daemon)
    default = started(daemon, pod, seccomp=pb.SecurityProfile())
    assert seccomp_mode(daemon, default) == "2"
    chmod = exec_sync(daemon, default, "chmod", "700", "/tmp")
    assert chmod.exit_code == 0, chmod.stderr  # RuntimeDefault allows chmod
    unshare = exec_sync(daemon, default, "unshare", "-n", "true")  # CLONE_NEWNET without CAP_SYS_ADMIN
    assert unshare.exit_code != 0
    unconfined = started(daemon, pod, seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))
    assert seccomp_mode(daemon, unconfined) == "0"
    nil = started(daemon, pod)  # seccomp_use_default_when_empty is true by default, as in CRI-O
    assert seccomp_mode(daemon, nil) == "2"
    local = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=chmod_profile)
    blocked = started(daemon, pod, seccomp=local)
    assert seccomp_mode(daemon, blocked) == "2"
    result = exec_sync(daemon, blocked, "chmod", "400", "/")
    assert result.exit_code != 0 and b"Operation not permitted" in result.stderr
    remove_pod(daemon, pod[0])


def test_privileged_ignores_the_profile(daemon: CrioProcess, chmod_profile: str) -> None:
    pod = run_pod(daemon, privileged=True)
    local = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=chmod_profile)
    cid = started(daemon, pod, seccomp=local, privileged=True)
    assert seccomp_mode(daemon, cid) == "0"
    assert exec_sync(daemon, cid, "chmod", "755", "/tmp").exit_code == 0
    remove_pod(daemon, pod[0])


def oci_config(daemon: CrioProcess, cid: str) -> dict[str, Any]:
    """The OCI config.json crio stored in the container's ContainerDirectory."""
    path = daemon.base / "root" / "overlay-containers" / cid / "userdata" / "config.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("when_empty", [True, False])
def test_seccomp_use_default_when_empty(
    crio_factory: CrioFactory, local_registry: str, when_empty: bool
) -> None:
    """``[crio.runtime] seccomp_use_default_when_empty`` (a drop-in file): a container asking for no seccomp
    profile gets RuntimeDefault (a seccomp section in its config.json, mode 2) when true, none when false; an
    explicit Unconfined stays unconfined either way."""
    daemon = crio_factory()
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    value = "true" if when_empty else "false"
    (daemon.config_dir / "50-seccomp.conf").write_text(
        f"[crio.runtime]\nseccomp_use_default_when_empty = {value}\n"
    )
    daemon.start()
    daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    pod = run_pod(daemon)
    nil = started(daemon, pod)
    seccomp = oci_config(daemon, nil)["linux"].get("seccomp")
    if when_empty:
        assert seccomp is not None and seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
        assert seccomp_mode(daemon, nil) == "2"
    else:
        assert seccomp is None
        assert seccomp_mode(daemon, nil) == "0"
    unconfined = create(daemon, pod, seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined))
    assert "seccomp" not in oci_config(daemon, unconfined)["linux"]
    remove_pod(daemon, pod[0])


def test_pod_infra_container_gets_the_pods_profile(daemon: CrioProcess) -> None:
    pod_id, _ = run_pod(daemon, seccomp=pb.SecurityProfile())
    status = daemon.runtime().PodSandboxStatus(
        pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True), timeout=30
    )
    info = json.loads(status.info["info"]) if "info" in status.info else {}
    spec = info.get("runtimeSpec") or {}
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    pid = int(info["pid"])
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Seccomp:"))
    assert line.split()[1] == "2"
    remove_pod(daemon, pod_id)


@pytest.mark.parametrize(
    ("profile", "code"),
    [
        ("absent.json", grpc.StatusCode.NOT_FOUND),
        ("malformed.json", grpc.StatusCode.INVALID_ARGUMENT),
        ("relative.json", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_localhost_profiles_leave_nothing(
    daemon: CrioProcess, tmp_path: Path, profile: str, code: grpc.StatusCode
) -> None:
    malformed = '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": 1}]}'
    (tmp_path / "malformed.json").write_text(malformed)
    ref = "relative.json" if profile == "relative.json" else str(tmp_path / profile)
    pod = run_pod(daemon)
    before = stored_containers(daemon)
    local = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=ref)
    with pytest.raises(grpc.RpcError) as err:
        create(daemon, pod, seccomp=local)
    assert err.value.code() == code, err.value.details()
    assert stored_containers(daemon) == before
    with pytest.raises(grpc.RpcError) as pod_err:
        run_pod(daemon, seccomp=local)
    assert pod_err.value.code() == code
    remove_pod(daemon, pod[0])


def test_confinement_no_plugin_serves_is_refused(daemon: CrioProcess) -> None:
    # Neither AppArmor nor SELinux is enabled on the test hosts: their plugins are skipped.
    apparmor = pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="deny-write")
    with pytest.raises(grpc.RpcError) as err:
        run_pod(daemon, apparmor=apparmor)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "plugin apparmor is skipped" in (err.value.details() or "")
    pod = run_pod(daemon)
    for security in (
        {"apparmor_profile": "localhost/deny-write"},
        {"selinux_options": pb.SELinuxOption(level="s0:c1,c2")},
    ):
        with pytest.raises(grpc.RpcError) as err:
            create(daemon, pod, **security)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, security
        assert "refusing to run it unconfined" in (err.value.details() or "")
    # runtime/default AppArmor where the kernel has none: nothing to apply, the container runs.
    cid = started(daemon, pod, apparmor=pb.SecurityProfile())
    assert exec_sync(daemon, cid, "true").exit_code == 0
    remove_pod(daemon, pod[0])


def test_passwd_entry_for_a_user_missing_from_the_image(daemon: CrioProcess) -> None:
    host_passwd = Path("/etc/passwd").read_bytes()
    pod = run_pod(daemon)
    cid = started(daemon, pod, run_as_user=pb.Int64Value(value=4321))
    assert exec_sync(daemon, cid, "id", "-un").stdout == b"default\n"
    entry = exec_sync(daemon, cid, "grep", "^default:", "/etc/passwd").stdout
    assert entry == b"default:x:4321:0:default user:/:/sbin/nologin\n"
    known = started(daemon, pod, run_as_username="nobody")
    assert exec_sync(daemon, known, "grep", "-c", "^default:", "/etc/passwd").stdout == b"0\n"
    assert Path("/etc/passwd").read_bytes() == host_passwd
    remove_pod(daemon, pod[0])


def test_status_features(daemon: CrioProcess) -> None:
    status = daemon.runtime().Status(pb.StatusRequest(), timeout=30)
    assert status.features.supplemental_groups_policy is True
    handler = next(h for h in status.runtime_handlers if h.name == "")
    assert handler.features.recursive_read_only_mounts is True  # runc 1.1 lists rro; the kernel has it
    # pytest's base temp dir (0700) keeps the pod's user namespace root from reaching the graph root:
    assert handler.features.user_namespaces is False
    mapping = [pb.IDMapping(container_id=0, host_id=1000, length=100000)]
    userns = pb.UserNamespace(mode=pb.POD, uids=mapping, gids=mapping)
    with pytest.raises(grpc.RpcError) as err:
        run_pod(daemon, namespace_options=pb.NamespaceOption(userns_options=userns))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "does not let others traverse it" in (err.value.details() or "")


def test_user_namespace_requests(daemon: CrioProcess) -> None:
    mapping = [pb.IDMapping(container_id=0, host_id=1000, length=100000)]
    cases = [
        pb.UserNamespace(mode=pb.CONTAINER),
        pb.UserNamespace(mode=pb.TARGET),
        pb.UserNamespace(mode=pb.POD, uids=mapping * 2, gids=mapping * 2),
        pb.UserNamespace(mode=pb.POD, uids=[pb.IDMapping(container_id=1, host_id=9, length=9)], gids=mapping),
    ]
    for userns in cases:
        with pytest.raises(grpc.RpcError) as err:
            run_pod(daemon, namespace_options=pb.NamespaceOption(userns_options=userns))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, userns
    node = pb.NamespaceOption(userns_options=pb.UserNamespace(mode=pb.NODE))
    pod_id, _ = run_pod(daemon, namespace_options=node)
    remove_pod(daemon, pod_id)


def test_pod_user_namespace(crio_factory: CrioFactory, traversable_daemon: CrioProcess) -> None:
    """POD mode: the pod's processes run in its own user namespace and see their image's files owned by
    their own root through the id-mapped root filesystem; what they write lands with the mapped host IDs."""
    daemon = traversable_daemon
    status = daemon.runtime().Status(pb.StatusRequest(), timeout=30)
    assert next(h for h in status.runtime_handlers if h.name == "").features.user_namespaces is True
    mapping = [pb.IDMapping(container_id=0, host_id=200000, length=65536)]
    options = pb.NamespaceOption(userns_options=pb.UserNamespace(mode=pb.POD, uids=mapping, gids=mapping))
    pod = run_pod(daemon, namespace_options=options)
    cid = started(daemon, pod, namespace_options=options)
    assert exec_sync(daemon, cid, "cat", "/proc/self/uid_map").stdout.split() == [b"0", b"200000", b"65536"]
    assert exec_sync(daemon, cid, "stat", "-c", "%u:%g", "/bin/sh", "/etc").stdout == b"0:0\n0:0\n"
    assert exec_sync(daemon, cid, "sh", "-c", "echo hi > /made-here && chmod 600 /etc/passwd").exit_code == 0
    assert exec_sync(daemon, cid, "stat", "-c", "%u", "/made-here").stdout == b"0\n"
    assert (
        seccomp_mode(daemon, cid) == "2"
    )  # no profile asked: RuntimeDefault (seccomp_use_default_when_empty)
    upper = next((daemon.base / "root" / "overlay").glob("*/diff/made-here"))
    assert (upper.stat().st_uid, upper.stat().st_gid) == (200000, 200000)
    userns_file = daemon.base / "ns" / "userns" / f"crio-{pod[0]}"
    assert userns_file.exists()
    host_view = exec_sync(daemon, cid, "cat", "/proc/1/uid_map").stdout.split()
    assert host_view == [b"0", b"200000", b"65536"]  # the pod's PID 1 (its own) is in the same namespace
    daemon.signal(9)  # a restarted daemon finds the pod's user namespace again
    daemon.wait(10)
    again = crio_factory().start()
    second = started(again, pod, namespace_options=options)
    assert exec_sync(again, second, "cat", "/proc/self/uid_map").stdout.split() == [b"0", b"200000", b"65536"]
    remove_pod(again, pod[0])
    assert not userns_file.exists()


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _put(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob(layout, digest).write_bytes(data)
    return digest, len(data)


def image_with_etc_symlink(layout: Path, target: str) -> str:
    """The busybox test image plus a top layer that turns /etc into a symlink to the host path ``target``
    (the CVE-2024-5154 image), as an OCI layout; returns its ``oci:`` reference."""
    source = f"docker://{REGISTRY}/e2e-test-images/busybox:1.29-2"
    ContainersTools(layout.parent / "skopeo-config").skopeo(
        "copy", "--src-tls-verify=false", source, f"oci:{layout}:base"
    )
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]).read_bytes())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_bytes())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, target
        tar.addfile(link)
    layer_digest, layer_size = _put(layout, buffer.getvalue())
    manifest["layers"].append(
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}
    )
    config["rootfs"]["diff_ids"].append(layer_digest)
    config_digest, config_size = _put(layout, json.dumps(config).encode())
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": config_size}
    manifest_digest, manifest_size = _put(layout, json.dumps(manifest).encode())
    descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest,
        "size": manifest_size,
        "annotations": {"org.opencontainers.image.ref.name": "escape"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return f"oci:{layout}:escape"


def test_etc_symlink_out_of_the_rootfs_never_touches_the_host(daemon: CrioProcess, tmp_path: Path) -> None:
    """CVE-2024-5154: an image whose /etc points at a host directory; crio reads /etc/passwd inside the
    rootfs only and writes the files it generates into the container's own directory."""
    host_etc = tmp_path / "host" / "etc"
    host_etc.mkdir(parents=True)
    (host_etc / "passwd").write_text("hostuser:x:4321:4321::/root:/bin/sh\n")
    reference = image_with_etc_symlink(tmp_path / "layout", str(host_etc))
    image = daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=reference)), timeout=300)
    pod = run_pod(daemon)
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="escape"),
        image=pb.ImageSpec(image=image.image_ref),
        command=["sleep", "300"],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(run_as_user=pb.Int64Value(value=4321))
        ),
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    cid = str(daemon.runtime().CreateContainer(request, timeout=120).container_id)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    assert exec_sync(daemon, cid, "id", "-u").stdout == b"4321\n"
    assert exec_sync(daemon, cid, "cat", "/etc/passwd").exit_code != 0  # not the host's file
    assert sorted(p.name for p in host_etc.iterdir()) == ["passwd"]
    assert (host_etc / "passwd").read_text() == "hostuser:x:4321:4321::/root:/bin/sh\n"
    remove_pod(daemon, pod[0])

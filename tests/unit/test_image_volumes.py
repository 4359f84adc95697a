"""Image volumes without a daemon: their OCI bind mounts, request checks, sub path resolution inside the
image (symbolic links cannot leave it), the container record flag, and ContainerStatus's image_ref."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.containers import imagevolumes
from crio.core.containers.model import Container
from crio.core.crirecords import Mount
from crio.core.errors import Internal, InvalidArgument, NotFound, PermissionDenied, Unimplemented
from crio.core.server.containers import _mounts
from crio.core.spec.mounts import check_image_mount, cri_mount, cri_mounts, host_mount_requirements
from crio.core.storage.imagemounts import (
    IMAGE_VOLUMES_FLAG,
    check_sub_path,
    resolve_in_root,
    volume_images,
    with_volume_images,
)
from tests.unit.test_spec_builders import container_config

IMAGE = api.ImageSpec(image="a" * 64, user_specified_image="busybox")


def image_mount(**fields: Any) -> Mount:
    fields.setdefault("container_path", "/mnt/image")
    fields.setdefault("readonly", True)
    fields.setdefault("image", IMAGE)
    return Mount.from_message(api.Mount(**fields))


# ------------------------------------------------------------------------------------ OCI mounts


@pytest.mark.parametrize(
    ("cri", "options"),
    [
        (image_mount(), ["rbind", "rprivate", "ro", "nosuid", "nodev"]),
        (
            image_mount(propagation=api.PROPAGATION_HOST_TO_CONTAINER),
            ["rbind", "rslave", "ro", "nosuid", "nodev"],
        ),
        (image_mount(recursive_read_only=True), ["rbind", "rprivate", "rro", "nosuid", "nodev"]),
    ],
)
def test_an_image_volume_binds_its_source_read_only_and_never_noexec(cri: Mount, options: list[str]) -> None:
    oci = cri_mount(cri, image_source="/run/x/image-volumes/0/etc")
    assert oci == {
        "destination": "/mnt/image",
        "type": "bind",
        "source": "/run/x/image-volumes/0/etc",
        "options": options,
    }
    assert "noexec" not in oci["options"]


@pytest.mark.parametrize(
    ("cri", "error", "message"),
    [
        (image_mount(readonly=False), InvalidArgument, "/mnt/image: an image volume must be read-only"),
        (image_mount(host_path="/srv"), InvalidArgument, "mutually exclusive"),
        (
            image_mount(uidMappings=[api.IDMapping(host_id=1000, container_id=0, length=1)]),
            Unimplemented,
            "id-mapped",
        ),
        (image_mount(container_path="mnt"), InvalidArgument, "not an absolute path"),
    ],
)
def test_bad_image_volumes_are_refused(cri: Mount, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        check_image_mount(cri)
    with pytest.raises(error, match=message):
        cri_mount(cri, image_source="/somewhere")


def test_an_image_volume_that_was_not_mounted_is_a_bug() -> None:
    with pytest.raises(Internal, match="not mounted"):
        cri_mount(image_mount())


def test_sources_are_matched_by_canonical_container_path() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/mnt//image/", readonly=True, image=IMAGE),
            api.Mount(container_path="/data", host_path="/srv/data"),
        ]
    )
    mounts = cri_mounts(config, image_sources={"/mnt/image": "/run/v/0"})
    assert [(m["destination"], m["source"]) for m in mounts] == [
        ("/mnt/image", "/run/v/0"),
        ("/data", "/srv/data"),
    ]


def test_image_volumes_need_nothing_from_the_host_propagation() -> None:
    config = container_config(
        mounts=[
            api.Mount(
                container_path="/i", readonly=True, image=IMAGE, propagation=api.PROPAGATION_BIDIRECTIONAL
            )
        ]
    )
    assert host_mount_requirements(config) == []


# ------------------------------------------------------------------------------------ sub paths


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An image-like tree with links that try to leave it."""
    root = tmp_path / "image"
    (root / "etc" / "ssl").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "usr" / "lib").mkdir(parents=True)
    os.symlink("usr/lib", root / "lib")
    os.symlink("/etc", root / "usr" / "etc-absolute")
    os.symlink("../../../../../../etc", root / "usr" / "climb")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    (tmp_path / "outside").mkdir()
    os.symlink(str(tmp_path / "outside"), root / "escape")
    return root


@pytest.mark.parametrize(
    ("sub_path", "expected"),
    [
        ("", ""),
        (".", ""),
        ("etc", "etc"),
        ("./etc/ssl/", "etc/ssl"),
        ("etc/passwd", "etc/passwd"),
        ("lib", "usr/lib"),
        ("usr/etc-absolute/ssl", "etc/ssl"),  # an absolute link starts again at the image's root
        ("usr/climb", "etc"),  # ".." stops at the image's root
    ],
)
def test_sub_paths_resolve_inside_the_image(tree: Path, sub_path: str, expected: str) -> None:
    assert resolve_in_root(tree, sub_path) == (tree / expected if expected else tree)


def test_a_link_to_a_host_path_resolves_inside_the_image(tree: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        resolve_in_root(tree, "escape")  # <tmp>/outside does not exist inside the image


@pytest.mark.parametrize(
    ("sub_path", "error", "message"),
    [
        ("not-existing", NotFound, "'not-existing' does not exist in the image"),
        ("etc/passwd/x", NotFound, "does not exist"),
        ("../etc", InvalidArgument, "'..'"),
        ("etc/../../x", InvalidArgument, "'..'"),
        ("/etc", InvalidArgument, "relative"),
        ("loop-a", InvalidArgument, "symbolic links"),
    ],
)
def test_bad_sub_paths(tree: Path, sub_path: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        resolve_in_root(tree, sub_path)


def test_check_sub_path_accepts_dots_inside_names() -> None:
    check_sub_path("a..b/..c/")


# ----------------------------------------------------------------------------- records and status


def test_the_record_flag_lists_each_image_once() -> None:
    flags = with_volume_images({"MountLabel": ""}, ["b" * 64, "c" * 64, "b" * 64])
    assert flags == {"MountLabel": "", IMAGE_VOLUMES_FLAG: ["b" * 64, "c" * 64]}
    assert volume_images(flags) == ("b" * 64, "c" * 64)
    assert with_volume_images(flags, []) == {"MountLabel": ""}
    assert volume_images({IMAGE_VOLUMES_FLAG: "not a list"}) == ()


def test_status_reports_the_image_id_as_image_ref() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/data", host_path="/srv"),
            api.Mount(container_path="/mnt/image", readonly=True, image=IMAGE, image_sub_path="etc"),
        ]
    )
    container = Container(
        id="f" * 64,
        name="k8s_ctr",
        pod_id="e" * 64,
        config=config,
        image="busybox",
        image_id="d" * 64,
        image_name="busybox",
        runtime_handler="",
        log_path="",
        created_at=1,
        image_volumes=[{"index": 1, "container_path": "/mnt/image", "image_id": "a" * 64}],
    )
    data, image = _mounts(container)
    assert data.host_path == "/srv" and not data.HasField("image")
    assert (image.image.image, image.image.image_ref, image.image_sub_path) == ("a" * 64, "a" * 64, "etc")
    assert image.image.user_specified_image == "busybox" and image.readonly
    restored = Container.from_json(container.to_json())
    assert restored.image_volumes == container.image_volumes


# ------------------------------------------------------------------------------------ signature policy


class PolicyImages:
    """The two ImageService methods :func:`imagevolumes.plan` uses: every name resolves to an image of that
    ID; the policy of namespace "refusing" rejects image "bad", and every judgement is recorded."""

    def __init__(self) -> None:
        self.judged: list[tuple[str, str, str]] = []

    async def resolve(self, image: str) -> Any:
        return SimpleNamespace(id=image)

    async def verify_for_container(self, img: Any, requested: str, namespace: str) -> None:
        self.judged.append((img.id, requested, namespace))
        if namespace == "refusing" and requested == "bad":
            raise PermissionDenied(f"{requested}: the policy for {namespace} rejects it")


def volume(path: str, image: str) -> api.Mount:
    return api.Mount(container_path=path, readonly=True, image=api.ImageSpec(image=image))


def test_plan_judges_each_volume_image_by_the_pod_namespace_policy() -> None:
    images = PolicyImages()
    config = container_config(mounts=[volume("/a", "good"), volume("/b", "bad"), volume("/c", "good")])
    planned = asyncio.run(imagevolumes.plan(images, config, "allowing"))  # type: ignore[arg-type]
    assert [v.image_id for v in planned] == ["good", "bad", "good"]
    assert images.judged == [("good", "good", "allowing"), ("bad", "bad", "allowing")], "once per image"

    with pytest.raises(PermissionDenied, match=r"^image volume /b: bad: the policy for refusing rejects it$"):
        asyncio.run(imagevolumes.plan(images, config, "refusing"))  # type: ignore[arg-type]

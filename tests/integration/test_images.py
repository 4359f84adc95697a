"""The ImageService of a real daemon against the local fixture registry and a misbehaving fake registry."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2 as pb

from .conftest import CrioFactory, CrioProcess
from .fake_registry import PRESIGNED_SECRET, FakeRegistry

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
TAGS = "gcr.io/k8s-staging-cri-tools/test-image-tags"
MULTILAYER = "quay.io/crio-test/multilayer:latest"


def spec(name: str) -> pb.ImageSpec:
    return pb.ImageSpec(image=name)


def pull(daemon: CrioProcess, name: str, timeout: float = 300) -> str:
    return str(daemon.images().PullImage(pb.PullImageRequest(image=spec(name)), timeout=timeout).image_ref)


def status(daemon: CrioProcess, name: str) -> pb.Image | None:
    response = daemon.images().ImageStatus(pb.ImageStatusRequest(image=spec(name)), timeout=30)
    return response.image if response.HasField("image") else None


def layer_records(daemon: CrioProcess) -> list[str]:
    path = daemon.base / "root" / "overlay-layers" / "layers.json"
    return sorted(layer["id"] for layer in json.loads(path.read_text() or "[]")) if path.exists() else []


def leftovers(daemon: CrioProcess) -> list[str]:
    """Temporary pull files and overlay layer directories that are not recorded layers."""
    root = daemon.base / "root"
    found = [str(p) for p in (root / "tmp").glob("pull-*")] if (root / "tmp").exists() else []
    recorded = set(layer_records(daemon))
    overlay = root / "overlay"
    for entry in overlay.iterdir() if overlay.exists() else []:
        if entry.is_dir() and len(entry.name) == 64 and entry.name not in recorded:
            found.append(str(entry))
    return found


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    return crio_factory().start()


def test_pause_image_is_built_offline(daemon: CrioProcess) -> None:
    image = status(daemon, "registry.k8s.io/pause:3.10")
    assert image is not None
    assert list(image.repo_tags) == ["registry.k8s.io/pause:3.10"]
    verbose = daemon.images().ImageStatus(
        pb.ImageStatusRequest(image=spec(image.id), verbose=True), timeout=30
    )
    config = json.loads(verbose.info["info"])["imageSpec"]
    assert config["config"]["Entrypoint"] == ["/pause", "-P"]


def test_pull_status_list_remove(daemon: CrioProcess) -> None:
    image_id = pull(daemon, BUSYBOX)
    image = status(daemon, BUSYBOX)
    assert image is not None and image.id == image_id
    assert list(image.repo_tags) == [BUSYBOX]
    assert len(image.repo_digests) == 1
    assert image.repo_digests[0].startswith("registry.k8s.io/e2e-test-images/busybox@sha256:")
    assert image.size > 1_000_000
    for reference in (image_id, image_id[:12], f"sha256:{image_id}", image.repo_digests[0]):
        same = status(daemon, reference)
        assert same is not None and same.id == image_id, reference
    listed = daemon.images().ListImages(pb.ListImagesRequest(), timeout=30).images
    assert image_id in [i.id for i in listed]
    only = daemon.images().ListImages(
        pb.ListImagesRequest(filter=pb.ImageFilter(image=spec(BUSYBOX))), timeout=30
    )
    assert [i.id for i in only.images] == [image_id]
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=spec(BUSYBOX)), timeout=30)
    assert status(daemon, BUSYBOX) is None
    assert status(daemon, image_id) is None
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=spec(BUSYBOX)), timeout=30)  # absent: fine


def test_pull_by_digest_records_the_digest_not_a_tag(daemon: CrioProcess) -> None:
    pull(daemon, BUSYBOX)
    image = status(daemon, BUSYBOX)
    assert image is not None
    by_digest = image.repo_digests[0]
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=spec(image.id)), timeout=30)
    assert pull(daemon, by_digest) == image.id
    again = status(daemon, by_digest)
    assert again is not None
    assert list(again.repo_tags) == []
    assert list(again.repo_digests) == [by_digest]


def test_one_image_many_tags_removed_by_one(daemon: CrioProcess) -> None:
    ids = {pull(daemon, f"{TAGS}:{n}") for n in (1, 2, 3)}
    assert len(ids) == 1
    image = status(daemon, f"{TAGS}:2")
    assert image is not None and sorted(image.repo_tags) == [f"{TAGS}:1", f"{TAGS}:2", f"{TAGS}:3"]
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=spec(f"{TAGS}:2")), timeout=30)
    assert all(status(daemon, f"{TAGS}:{n}") is None for n in (1, 2, 3))


@pytest.mark.parametrize(
    ("name", "uid", "username"),
    [
        ("gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest", 1002, ""),
        ("gcr.io/k8s-staging-cri-tools/test-image-user-username:latest", None, "www-data"),
        ("gcr.io/k8s-staging-cri-tools/test-image-user-uid-group:latest", 1003, ""),
        ("gcr.io/k8s-staging-cri-tools/test-image-user-username-group:latest", None, "www-data"),
    ],
)
def test_user_from_config(daemon: CrioProcess, name: str, uid: int | None, username: str) -> None:
    pull(daemon, name)
    image = status(daemon, name)
    assert image is not None
    assert (image.uid.value if image.HasField("uid") else None) == uid
    assert image.username == username


@pytest.mark.parametrize(
    "name",
    [
        "quay.io/crio-test/index:latest",
        "quay.io/crio-test/zstd:latest",
        "quay.io/crio-test/uncompressed:latest",
    ],
)
def test_index_zstd_and_plain_layers(daemon: CrioProcess, name: str) -> None:
    image_id = pull(daemon, name)
    verbose = daemon.images().ImageStatus(pb.ImageStatusRequest(image=spec(name), verbose=True), timeout=30)
    assert verbose.image.id == image_id
    assert json.loads(verbose.info["info"])["imageSpec"]["architecture"] == "amd64"


def test_concurrent_pulls_share_one_download(daemon: CrioProcess) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(pull(daemon, MULTILAYER))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    assert daemon.log().count(f"pulled {MULTILAYER} as") == 1
    assert leftovers(daemon) == []
    fs = daemon.images().ImageFsInfo(pb.ImageFsInfoRequest(), timeout=60)
    assert fs.image_filesystems[0].used_bytes.value > 200_000_000
    assert fs.image_filesystems[0].fs_id.mountpoint.endswith("overlay-images")
    assert fs.container_filesystems[0].fs_id.mountpoint.endswith("overlay-containers")


def test_deadline_cancels_the_pull_and_leaves_nothing(daemon: CrioProcess) -> None:
    before = layer_records(daemon)
    with pytest.raises(grpc.RpcError) as err:
        pull(daemon, MULTILAYER, timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 30
    while (layer_records(daemon) != before or leftovers(daemon)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert layer_records(daemon) == before
    assert leftovers(daemon) == []
    assert status(daemon, MULTILAYER) is None


def fake_daemon(crio_factory: CrioFactory, registry: FakeRegistry, *args: str) -> CrioProcess:
    """A started daemon (command line ``args``) that pulls ``fake.test/...`` from ``registry``."""
    daemon = crio_factory(list(args))
    with open(daemon.registries_conf, "a") as conf:
        location = f"127.0.0.1:{registry.port}"
        conf.write(f'\n[[registry]]\nprefix = "fake.test"\nlocation = "{location}"\ninsecure = true\n')
    return daemon.start()


@pytest.fixture
def fake(crio_factory: CrioFactory, local_registry: str) -> Iterator[tuple[CrioProcess, FakeRegistry]]:
    with FakeRegistry() as registry:
        yield fake_daemon(crio_factory, registry), registry


@pytest.mark.parametrize(
    ("repo", "code", "message"),
    [
        ("bad/digest", grpc.StatusCode.INVALID_ARGUMENT, "does not match its digest"),
        ("bad/truncated", grpc.StatusCode.INVALID_ARGUMENT, ""),
        ("bad/garbage", grpc.StatusCode.INVALID_ARGUMENT, ""),
        ("bad/escape", grpc.StatusCode.INVALID_ARGUMENT, "escaped-by-crio-test"),
        ("bad/mediatype", grpc.StatusCode.INVALID_ARGUMENT, "application/vnd.example.unknown+json"),
        ("bad/huge", grpc.StatusCode.INVALID_ARGUMENT, "too large"),
        ("bad/error500", grpc.StatusCode.UNAVAILABLE, "500"),
        ("bad/midway", grpc.StatusCode.UNAVAILABLE, ""),
        ("bad/absent", grpc.StatusCode.NOT_FOUND, "fake.test/bad/absent"),
    ],
)
def test_bad_registry_input_fails_cleanly(
    fake: tuple[CrioProcess, FakeRegistry], repo: str, code: grpc.StatusCode, message: str
) -> None:
    daemon, _ = fake
    before = layer_records(daemon)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        pull(daemon, f"fake.test/{repo}:latest", timeout=120)
    assert time.monotonic() - started < 60
    assert err.value.code() == code, err.value.details()
    assert message in (err.value.details() or "")
    assert layer_records(daemon) == before
    assert leftovers(daemon) == []
    assert not os.path.exists("/escaped-by-crio-test")
    assert not Path(daemon.base, "escaped-by-crio-test").exists()
    assert pull(daemon, "fake.test/good/small:latest")  # the daemon is fine afterwards


@pytest.mark.parametrize("level", ["info", "debug"])
def test_presigned_redirect_urls_never_reach_the_log(crio_factory: CrioFactory, level: str) -> None:
    """A registry that redirects blobs to pre-signed object-store URLs: the pull works, and neither the
    log (below trace) nor an error shows the signature in their query, nor any HTTP request line."""
    with FakeRegistry() as registry:
        daemon = fake_daemon(crio_factory, registry, "--log-level", level)
        assert pull(daemon, "fake.test/redirect/small:latest", timeout=120)
        assert registry.objects_served == 2, "config and layer came from their pre-signed URLs"
        with pytest.raises(grpc.RpcError) as err:
            pull(daemon, "fake.test/redirect/gone:latest", timeout=120)
        details = err.value.details() or ""
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, details
        assert "http://127.0.0.1:9/objects/sha256:" in details and "?REDACTED" in details, details
        assert PRESIGNED_SECRET not in details
        text = daemon.log()
        assert "fake.test/redirect/gone" in text, "the failure is logged"
        assert PRESIGNED_SECRET not in text and "X-Amz-" not in text, text
        assert "HTTP Request" not in text, text


def test_http_request_lines_are_logged_at_trace(crio_factory: CrioFactory) -> None:
    """The other side of the test above: at trace, httpx's request lines do reach the log."""
    with FakeRegistry() as registry:
        daemon = fake_daemon(crio_factory, registry, "--log-level", "trace")
        assert pull(daemon, "fake.test/good/small:latest", timeout=120)
        assert f"HTTP Request: GET http://127.0.0.1:{registry.port}/v2/" in daemon.log()


def test_hanging_registry_is_bounded_by_the_deadline(fake: tuple[CrioProcess, FakeRegistry]) -> None:
    daemon, _ = fake
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        pull(daemon, "fake.test/bad/hang:latest", timeout=3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10
    assert leftovers(daemon) == []

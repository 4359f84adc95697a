"""A running crio daemon sharing its store with skopeo and podman (Debian's, the Go containers/* code)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crio.core.api import api_pb2 as pb
from tests.containers_tools import PODMAN, SKOPEO

from .conftest import CrioFactory, CrioProcess
from .test_storage_interop import podman, tools

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(PODMAN is None or SKOPEO is None, reason="podman and skopeo are not installed"),
]

NGINX = "registry.k8s.io/e2e-test-images/nginx:1.14-2"


def storage_ref(base: Path, name: str) -> str:
    return f"containers-storage:[overlay@{base / 'graph'}+{base / 'run'}]{name}"


@pytest.fixture
def shared(crio_factory: CrioFactory, local_registry: str) -> Iterator[tuple[CrioProcess, Path]]:
    """A daemon whose graph root and run root are ``base/graph`` and ``base/run`` (short, for podman)."""
    base = Path(tempfile.mkdtemp(prefix="crio-io-", dir="/tmp"))
    daemon = crio_factory(["--root", str(base / "graph"), "--runroot", str(base / "run")]).start()
    yield daemon, base
    daemon.stop()
    # podman and skopeo bind-mount the overlay home onto itself and leave it mounted.
    subprocess.run(["umount", "-l", str(base / "graph" / "overlay")], capture_output=True, check=False)
    assert str(base) not in Path("/proc/self/mountinfo").read_text()
    shutil.rmtree(base, ignore_errors=True)


def test_skopeo_copy_into_the_store_is_seen_by_the_running_daemon(shared: tuple[CrioProcess, Path]) -> None:
    daemon, base = shared
    source = "docker://127.0.0.1:5000/e2e-test-images/busybox:1.29-2"
    tools(base).skopeo("copy", "--src-tls-verify=false", source, storage_ref(base, "quay.io/interop/in:v1"))
    config = tools(base).skopeo("inspect", "--tls-verify=false", "--config", "--raw", source).stdout
    expected_id = hashlib.sha256(config.encode()).hexdigest()
    response = daemon.images().ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image="quay.io/interop/in:v1"))
    )
    assert response.image.id == expected_id
    assert list(response.image.repo_tags) == ["quay.io/interop/in:v1"]


def test_crio_pull_is_listed_by_podman_and_copied_out_by_skopeo(shared: tuple[CrioProcess, Path]) -> None:
    daemon, base = shared
    image_id = (
        daemon.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=NGINX)), timeout=300).image_ref
    )
    size = daemon.images().ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=NGINX))).image.size
    listed = {i["Id"]: i for i in json.loads(podman(base, "images", "--format", "json").stdout)}
    assert image_id in listed
    assert listed[image_id]["Size"] == size
    assert NGINX in listed[image_id]["Names"]
    out = base / "copied-out"
    tools(base).skopeo("copy", storage_ref(base, NGINX), f"oci:{out}:x")  # verifies every layer's diff digest
    index = json.loads((out / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((out / "blobs" / "sha256" / manifest_digest).read_text())
    assert manifest["config"]["digest"] == f"sha256:{image_id}"

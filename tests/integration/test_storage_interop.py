"""Interoperability of crio's store with the Go tools that share it: podman 4.3 and skopeo 1.9 (Debian).

crio writes an image → ``podman images`` lists it (ID, size), ``podman run`` runs it, ``skopeo copy`` reads
it back out (which reassembles every layer from its tar-split and verifies the diff digests). skopeo writes
an image → a fresh crio store lists it with the same ID and mounts a container on it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crio.core.storage import records
from crio.core.storage.store import Store
from tests.containers_tools import PODMAN, SKOPEO, ContainersTools
from tests.integration.test_storage_store import Entry, diff_id, make_tar, mountinfo_mentions, open_store

NAME = "localhost/crio-interop:test"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts)"),
    pytest.mark.skipif(PODMAN is None or SKOPEO is None, reason="podman and skopeo are not installed"),
]


def tools(base: Path) -> ContainersTools:
    """The test's own podman/skopeo configuration, under ``base/tools``."""
    return ContainersTools(base / "tools")


def podman(base: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """podman on the test's store (``base/graph`` + ``base/run``) with the test's configuration."""
    return tools(base).podman(base / "graph", base / "run", *args, timeout=timeout)


def layer_mounts(base: Path) -> list[str]:
    """Mount points under the store except the overlay home itself (podman and skopeo bind-mount it)."""
    home = str(base / "graph/overlay")
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(str(base)) and p != home]


def storage_ref(base: Path, name: str) -> str:
    """The containers-storage: reference of ``name`` in the test's store."""
    return f"containers-storage:[overlay@{base / 'graph'}+{base / 'run'}]{name}"


def busybox_layer() -> bytes:
    """A base layer with Debian's busybox, the libraries it needs and /bin/sh."""
    entries = [Entry("bin", None), Entry("etc", None), Entry("tmp", None, mode=0o1777)]
    entries.append(Entry("bin/busybox", Path("/bin/busybox").read_bytes(), mode=0o755))
    entries.append(Entry("bin/sh", symlink="busybox"))
    entries.append(Entry("bin/cat", symlink="busybox"))
    entries.append(Entry("etc/doomed", b"removed by the next layer\n"))
    ldd = subprocess.run(["ldd", "/bin/busybox"], capture_output=True, text=True, check=False).stdout
    libs = {p for line in ldd.splitlines() for p in line.split() if p.startswith("/")}
    dirs: set[str] = set()
    for lib in sorted(libs):
        parts = Path(lib).relative_to("/").parts
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in dirs:
                dirs.add(directory)
                entries.append(Entry(directory, None))
        entries.append(Entry("/".join(parts), Path(lib).resolve().read_bytes(), mode=0o755))
    return make_tar(entries)


def top_layer() -> bytes:
    """A layer adding a file and whiting out one of the base layer."""
    return make_tar(
        [
            Entry("etc", None),
            Entry("etc/crio-interop", b"written by crio\n"),
            Entry("etc/.wh.doomed", b""),
        ]
    )


def oci_config(diff_ids: list[str]) -> bytes:
    """An OCI image config for these layers."""
    config = {
        "created": "2024-03-04T05:06:07.123456789+02:00",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(config).encode()


def oci_manifest(config: bytes, blobs: list[bytes]) -> bytes:
    """An OCI image manifest for a config and gzip layer blobs."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": records.sha256_digest(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": records.sha256_digest(blob),
                "size": len(blob),
            }
            for blob in blobs
        ],
    }
    return json.dumps(manifest).encode()


def store_image(store: Store, blobs: list[bytes], names: list[str]) -> str:
    """Commit an image the way containers/image does (layers bottom-up, then the image with its big data)."""
    parent: str | None = None
    for blob in blobs:
        layer = store.put_layer(
            parent,
            io.BytesIO(blob),
            expected_diff_digest=diff_id(blob),
            compressed_digest=records.sha256_digest(blob),
            compressed_size=len(blob),
        )
        parent = layer.id
    config = oci_config([diff_id(b) for b in blobs])
    manifest = oci_manifest(config, blobs)
    config_digest = records.sha256_digest(config)
    manifest_digest = records.sha256_digest(manifest)
    image = store.create_image(
        config_digest.removeprefix("sha256:"),
        parent,
        names,
        records.parse_time("2024-03-04T05:06:07.123456789+02:00"),
        [(config_digest, config), (f"manifest-{manifest_digest}", manifest), ("manifest", manifest)],
    )
    assert image.digest == manifest_digest
    return image.id


def write_oci_layout(directory: Path, blobs: list[bytes], tag: str) -> str:
    """An OCI image layout holding one image; returns the config digest hex (the image ID)."""
    config = oci_config([diff_id(b) for b in blobs])
    manifest = oci_manifest(config, blobs)
    (directory / "blobs/sha256").mkdir(parents=True)
    for blob in [*blobs, config, manifest]:
        (directory / "blobs/sha256" / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": records.sha256_digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return hashlib.sha256(config).hexdigest()


def read_oci_layout(directory: Path) -> dict[str, Any]:
    """The config of the one image of an OCI layout."""
    index = json.loads((directory / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads((directory / "blobs/sha256" / manifest_hex).read_text())
    config_hex = manifest["config"]["digest"].removeprefix("sha256:")
    config: dict[str, Any] = json.loads((directory / "blobs/sha256" / config_hex).read_text())
    return config


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory for the graph and run roots (podman refuses a run root over 50 characters)."""
    path = Path(tempfile.mkdtemp(prefix="crio-interop-", dir="/tmp"))
    yield path
    # podman bind-mounts the overlay home onto itself (MS_PRIVATE) and leaves it mounted when it exits.
    subprocess.run(["umount", "-l", str(path / "graph/overlay")], capture_output=True, check=False)
    leaked = mountinfo_mentions(path)
    shutil.rmtree(path, ignore_errors=True)
    assert not leaked


@pytest.fixture
def crio_image(base: Path) -> tuple[Store, str, list[bytes]]:
    """A store with crio's two-layer busybox image under NAME."""
    store = open_store(base, "overlay")
    blobs = [busybox_layer(), top_layer()]
    image_id = store_image(store, blobs, [NAME])
    return store, image_id, blobs


def test_podman_lists_crio_image(base: Path, crio_image: tuple[Store, str, list[bytes]]) -> None:
    store, image_id, _ = crio_image
    listed = json.loads(podman(base, "images", "--format", "json").stdout)
    assert len(listed) == 1, listed
    assert listed[0]["Id"] == image_id
    assert listed[0]["Size"] == store.image_size(image_id)
    assert NAME in listed[0]["Names"]
    inspect = json.loads(podman(base, "image", "inspect", NAME).stdout)[0]
    assert inspect["RootFS"]["Layers"] == [
        f"sha256:{hashlib.sha256(gzip.decompress(b)).hexdigest()}" for b in crio_image[2]
    ]


def test_podman_runs_crio_image(base: Path, crio_image: tuple[Store, str, list[bytes]]) -> None:
    if shutil.which("conmon") is None or shutil.which("runc") is None:
        pytest.skip("podman run needs conmon and runc")
    result = podman(
        base,
        "run",
        "--rm",
        "--pull=never",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",  # podman's defaults ask for more than a sandbox's hard limits may allow
        "--ulimit",
        "nproc=1024:1024",
        NAME,
        "/bin/sh",
        "-c",
        "cat /etc/crio-interop; test ! -e /etc/doomed && echo whiteout-ok",
    )
    assert result.stdout.split() == ["written", "by", "crio", "whiteout-ok"]
    assert layer_mounts(base) == []
    # podman's own container came and went; crio's view is intact.
    fresh = open_store(base, "overlay")
    assert [i.id for i in fresh.images()] == [crio_image[1]]
    assert fresh.containers() == []


def test_skopeo_copies_crio_image_out(base: Path, crio_image: tuple[Store, str, list[bytes]]) -> None:
    _, image_id, blobs = crio_image
    out = base / "out"
    tools(base).skopeo("copy", storage_ref(base, NAME), f"oci:{out}:copied", timeout=300)
    config = read_oci_layout(out)
    assert config["rootfs"]["diff_ids"] == [diff_id(b) for b in blobs], (
        "tar-split reassembly gives our digests"
    )
    assert hashlib.sha256(json.dumps(config).encode()).hexdigest() != "" and config["os"] == "linux"
    assert image_id


def test_skopeo_copies_into_crio_store(base: Path) -> None:
    store = open_store(base, "overlay")  # crio creates the store; skopeo then writes to it
    layout = base / "layout"
    lower = make_tar([Entry("data", None), Entry("data/from-skopeo", b"hello from skopeo\n")])
    top = make_tar([Entry("data", None), Entry("data/.wh.from-skopeo", b""), Entry("data/second", b"2\n")])
    image_id = write_oci_layout(layout, [lower, top], "v1")
    tools(base).skopeo("copy", f"oci:{layout}:v1", storage_ref(base, "localhost/skopeo:v1"), timeout=300)

    fresh = open_store(base, "overlay")
    image = fresh.image("localhost/skopeo:v1")
    assert image is not None and image.id == image_id
    assert (
        fresh.image_big_data(image_id, f"sha256:{image_id}")
        == (layout / "blobs/sha256" / image_id).read_bytes()
    )
    assert fresh.image_size(image_id) > 0
    container = fresh.create_container("", ["from-skopeo"], image_id, "{}")
    root = fresh.mount(container.id)
    assert (root / "data/second").read_text() == "2\n"
    assert not (root / "data/from-skopeo").exists()
    fresh.delete_container(container.id)
    fresh.delete_image(image_id)
    assert fresh.layers() == [] and store.images() == []
    assert layer_mounts(base) == [], "only the home bind mount skopeo made may remain"

"""The containers/storage-compatible store on real overlay and vfs drivers, on a temporary graph root.

Layers are built with tarfile in the tests. Layer extraction is ``crio.core.storage.layerdiff.apply_diff``
when that module exists; until then a small stand-in defined here (test-only) extracts the tar and writes a
valid tar-split.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pluggy
import pytest

import crio.plugins.storage_overlay
import crio.plugins.storage_vfs
from crio.core import hookspecs
from crio.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crio.core.storage import records
from crio.core.storage.layerid import layer_id
from crio.core.storage.layers import Cancelled
from crio.core.storage.store import Store

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts, device nodes, ownership)"),
]


# ------------------------------------------------------------------------------------------ helpers


def plugin_hook() -> Any:
    """A pluggy hook relay with the two built-in storage driver plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(crio.plugins.storage_overlay, name="storage_overlay")
    pm.register(crio.plugins.storage_vfs, name="storage_vfs")
    return pm.hook


_CRC_TABLE: list[int] = []


def crc64_iso(data: bytes) -> int:
    """CRC-64/ISO as Go's ``crc64.Checksum(data, crc64.MakeTable(crc64.ISO))`` (test-only, slow)."""
    if not _CRC_TABLE:
        for i in range(256):
            crc = i
            for _ in range(8):
                crc = (crc >> 1) ^ 0xD800000000000000 if crc & 1 else crc >> 1
            _CRC_TABLE.append(crc)
    crc = 0xFFFFFFFFFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFFFFFFFFFF


@dataclass
class StandInStats:
    """The DiffStats fields the store reads."""

    compressed_digest: str
    compressed_size: int
    diff_digest: str
    diff_size: int
    compression: int
    uids: tuple[int, ...]
    gids: tuple[int, ...]


CRC_LIMIT = (
    4 << 20
)  # the stand-in skips the (pure-Python) CRC of bigger files: only the latency test has them


def stand_in_apply_diff(
    blob: BinaryIO, target: Path, fmt: str, tar_split: BinaryIO, cancel: threading.Event | None = None
) -> StandInStats:
    """Test-only layer extractor with the signature of ``layerdiff.apply_diff``."""
    with tempfile.TemporaryFile() as raw, tempfile.TemporaryFile() as plain:
        compressed = hashlib.sha256()
        csize = 0
        while chunk := blob.read(1 << 20):
            compressed.update(chunk)
            csize += len(chunk)
            raw.write(chunk)
            if cancel is not None and cancel.is_set():
                raise InterruptedError("cancelled")
        raw.seek(0)
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        source: BinaryIO = gzip.GzipFile(fileobj=raw) if gz else raw  # type: ignore[assignment]
        diff = hashlib.sha256()
        dsize = 0
        while chunk := source.read(1 << 20):
            diff.update(chunk)
            dsize += len(chunk)
            plain.write(chunk)
        plain.seek(0)
        uids: set[int] = set()
        gids: set[int] = set()
        with gzip.GzipFile(fileobj=tar_split, mode="wb") as out, tarfile.open(fileobj=plain) as tar:
            members = tar.getmembers()
            position = 0
            offset = 0

            def segment(data: bytes) -> None:
                nonlocal position
                line = {"type": 2, "payload": base64.b64encode(data).decode(), "position": position}
                out.write(json.dumps(line).encode() + b"\n")
                position += 1

            for member in members:
                plain.seek(offset)
                segment(plain.read(member.offset_data - offset))
                payload = None
                if member.isreg() and member.size:
                    plain.seek(member.offset_data)
                    content = plain.read(member.size)
                    crc = crc64_iso(content) if member.size <= CRC_LIMIT else 0
                    payload = base64.b64encode(crc.to_bytes(8, "big")).decode()
                line = {"type": 1, "name": member.name, "size": member.size, "payload": payload}
                line["position"] = position
                out.write(json.dumps(line).encode() + b"\n")
                position += 1
                offset = member.offset_data + (member.size if member.isreg() else 0)
                if not os.path.basename(member.name).startswith(".wh."):
                    uids.add(member.uid)
                    gids.add(member.gid)
                _extract(tar, member, target, fmt)
            plain.seek(offset)
            segment(plain.read())
    return StandInStats(
        "sha256:" + compressed.hexdigest(),
        csize,
        "sha256:" + diff.hexdigest(),
        dsize,
        2 if gz else 0,
        tuple(sorted(uids)),
        tuple(sorted(gids)),
    )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, fmt: str) -> None:
    name = member.name.lstrip("./") if member.name not in (".", "./") else ""
    parent, base = os.path.split(name)
    if base == ".wh..wh..opq":
        directory = target / parent
        if fmt == "overlay":
            os.setxattr(directory, "trusted.overlay.opaque", b"y")
        else:
            for child in os.listdir(directory):
                _remove(directory / child)
        return
    if base.startswith(".wh."):
        victim = target / parent / base[4:]
        if fmt == "overlay":
            os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0))
            os.chown(victim, member.uid, member.gid)
        else:
            _remove(victim)
        return
    if fmt == "apply" and not member.isdir() and os.path.lexists(target / name):
        _remove(target / name)
    tar.extract(member, target, numeric_owner=True, filter="fully_trusted")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def apply_diff_for_tests() -> Any:
    """The real extractor when it exists, else the stand-in."""
    try:
        from crio.core.storage.layerdiff import apply_diff  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return stand_in_apply_diff
    return apply_diff


@dataclass
class Entry:
    """One tar entry to build a layer from."""

    name: str
    data: bytes | None = None  # None: directory
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""  # hard link target
    symlink: str = ""


def make_tar(entries: list[Entry], compress: bool = True) -> bytes:
    """A layer blob (gzip unless ``compress`` is False) with these entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 1_700_000_000
            info.uid, info.gid, info.mode = entry.uid, entry.gid, entry.mode
            if entry.data is None and not entry.link and not entry.symlink:
                info.type = tarfile.DIRTYPE
                info.mode = entry.mode if entry.mode != 0o644 else 0o755
                tar.addfile(info)
            elif entry.link:
                info.type, info.linkname = tarfile.LNKTYPE, entry.link
                tar.addfile(info)
            elif entry.symlink:
                info.type, info.linkname = tarfile.SYMTYPE, entry.symlink
                tar.addfile(info)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def diff_id(blob: bytes) -> str:
    """``sha256:`` of the uncompressed tar."""
    plain = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    return records.sha256_digest(plain)


def open_store(base: Path, driver: str) -> Store:
    """A store under ``base`` (graph root ``base/graph``, run root ``base/run``), opened."""
    store = Store(base / "graph", base / "run", driver, (), plugin_hook())
    store.apply_diff = apply_diff_for_tests()
    store.open()
    return store


def mountinfo_mentions(path: Path) -> bool:
    """Whether any mount point in this process's mount table is at or under ``path``."""
    text = Path("/proc/self/mountinfo").read_text()
    return any(line.split()[4].startswith(str(path)) for line in text.splitlines())


@pytest.fixture(params=["overlay", "vfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on each driver; every mount under it is gone afterwards."""
    opened = open_store(tmp_path, request.param)
    yield opened
    for container in opened.containers():
        opened.unmount(container.id, force=True)
    assert not mountinfo_mentions(tmp_path)


BASE = [
    Entry("etc", None),
    Entry("etc/hostname", b"base\n"),
    Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
    Entry("bin", None),
    Entry("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o755, uid=1000, gid=1001),
    Entry("bin/tool-link", link="bin/tool", uid=1000, gid=1001),
    Entry("opt", None),
    Entry("opt/a", b"a"),
    Entry("opt/b", b"b"),
    Entry("lib", symlink="bin"),
]
TOP = [
    Entry("etc", None),
    Entry("etc/.wh.hostname", b""),
    Entry("etc/motd", b"hello from the top layer\n"),
    Entry("opt", None),
    Entry("opt/.wh..wh..opq", b""),
    Entry("opt/c", b"c"),
]


def put_image(store: Store, tag: str = "localhost/test:latest") -> tuple[str, list[str]]:
    """Store the two-layer test image; return its ID and layer IDs (bottom first)."""
    parent: str | None = None
    layer_ids: list[str] = []
    diff_ids: list[str] = []
    for entries in (BASE, TOP):
        blob = make_tar(entries)
        layer = store.put_layer(
            parent,
            io.BytesIO(blob),
            expected_diff_digest=diff_id(blob),
            compressed_digest=records.sha256_digest(blob),
            compressed_size=len(blob),
        )
        layer_ids.append(layer.id)
        diff_ids.append(diff_id(blob))
        parent = layer.id
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    )
    config_digest = records.sha256_digest(config.encode())
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": config_digest}}).encode()
    image = store.create_image(
        config_digest.removeprefix("sha256:"),
        layer_ids[-1],
        [tag],
        None,
        [
            (config_digest, config.encode()),
            (f"manifest-{records.sha256_digest(manifest)}", manifest),
            ("manifest", manifest),
        ],
    )
    return image.id, layer_ids


# -------------------------------------------------------------------------------------------- tests


def test_layers_image_container_mount_and_delete(store: Store, tmp_path: Path) -> None:
    image_id, layer_ids = put_image(store)
    graph = tmp_path / "graph"
    driver = store.driver

    # Records as containers/storage writes them.
    layers = {r["id"]: r for r in json.loads((graph / f"{driver}-layers/layers.json").read_text())}
    assert layer_ids[0] in layers and layers[layer_ids[1]]["parent"] == layer_ids[0]
    base = layers[layer_ids[0]]
    assert base["diff-digest"].startswith("sha256:") and base["diff-size"] > 0 and base["compression"] == 2
    assert base["uidset"] == [0, 1000] and base["gidset"] == [0, 1001]
    assert "flags" not in base or not base["flags"].get("incomplete")
    assert (graph / f"{driver}-layers/{layer_ids[0]}.tar-split.gz").is_file()
    assert layer_ids[1] == layer_id(layer_ids[0], layers[layer_ids[1]]["diff-digest"])

    image = store.image("localhost/test:latest")
    assert image is not None and image.id == image_id
    assert store.image(image_id[:12]) == image and store.image(f"sha256:{image_id}") == image
    assert store.image(image.digest) == image
    assert store.image_big_data(image_id, "manifest").startswith(b"{")
    assert (graph / f"{driver}-images" / image_id / "manifest").is_file()
    expected_size = sum(image.big_data_sizes.values()) + sum(layers[i]["diff-size"] for i in layer_ids)
    assert store.image_size(image_id) == expected_size

    container = store.create_container("c" * 64, ["ctr1"], image_id, '{"name":"ctr1"}', mount_label="")
    assert container.image == image_id
    assert store.container("ctr1") == container
    with pytest.raises(AlreadyExists, match="c" * 64):
        store.create_container("d" * 64, ["ctr1"], image_id, "{}")
    assert store.container_directory(container.id).is_dir()
    assert (
        store.container_run_directory(container.id)
        == tmp_path / f"run/{driver}-containers/{container.id}/userdata"
    )
    store.set_container_big_data(container.id, "config.json", b"{}")
    assert store.container_big_data(container.id, "config.json") == b"{}"

    root = store.mount(container.id)
    assert store.mount(container.id) == root and store.mounted_count() == 1
    assert (root / "etc/motd").read_text() == "hello from the top layer\n"
    assert not (root / "etc/hostname").exists(), "the whiteout hides the base layer's file"
    assert sorted(os.listdir(root / "opt")) == ["c"], "the opaque directory hides the base layer's entries"
    assert os.stat(root / "bin/tool").st_ino == os.stat(root / "bin/tool-link").st_ino
    assert os.stat(root / "bin/tool").st_uid == 1000 and os.readlink(root / "lib") == "bin"
    (root / "written-by-container").write_text("x")
    mounts = json.loads((tmp_path / f"run/{driver}-layers/mountpoints.json").read_text())
    assert mounts == [{"id": container.layer, "path": str(root), "count": 2}]
    if driver == "overlay":
        assert mountinfo_mentions(root)
        assert (graph / "overlay/.has-mount-program").read_text() == "false"
        link = (graph / f"overlay/{layer_ids[0]}/link").read_text()
        assert len(link) == 26 and os.readlink(graph / f"overlay/l/{link}") == f"../{layer_ids[0]}/diff"
        assert (graph / f"overlay/{layer_ids[1]}/lower").read_text() == f"l/{link}"
    assert store.unmount(container.id) is True
    assert store.unmount(container.id) is False and store.mounted_count() == 0
    assert not mountinfo_mentions(tmp_path)
    images_usage, containers_usage = store.usage()
    assert images_usage[0] > 0 and containers_usage[1] >= 1

    with pytest.raises(FailedPrecondition):
        store.delete_image(image_id)
    store.mount(container.id)
    store.delete_container(container.id)
    assert not mountinfo_mentions(tmp_path)
    assert store.containers() == [] and store.mounted_count() == 0
    assert not (graph / f"{driver}-containers" / container.id).exists()
    assert not (tmp_path / f"run/{driver}-containers" / container.id).exists()

    store.delete_image(image_id)
    assert store.images() == [] and store.layers() == []
    assert json.loads((graph / f"{driver}-layers/layers.json").read_text()) == []
    assert json.loads((graph / f"{driver}-images/images.json").read_text()) == []
    assert list((graph / f"{driver}-layers").glob("*.tar-split.gz")) == []
    assert sorted(p.name for p in (graph / f"{driver}-images").iterdir()) == ["images.json", "images.lock"]
    home = graph / driver
    leftovers = (
        [p.name for p in (home / "dir").iterdir()]
        if driver == "vfs"
        else [p.name for p in home.iterdir() if p.name not in ("l", ".has-mount-program")]
    )
    assert leftovers == []
    if driver == "overlay":
        assert list((home / "l").iterdir()) == []


def test_layer_reuse_digest_mismatch_and_names(store: Store) -> None:
    image_id, layer_ids = put_image(store)
    blob = make_tar(BASE)
    again = store.put_layer(None, io.BytesIO(blob), expected_diff_digest=diff_id(blob))
    assert again.id == layer_ids[0], "an existing complete layer is reused"
    other = make_tar([Entry("x", b"y")])
    with pytest.raises(InvalidArgument, match="does not match"):
        store.put_layer(None, io.BytesIO(other), layer_id="e" * 64, expected_diff_digest="sha256:" + "0" * 64)
    assert store.layer("e" * 64) is None
    assert not (Path(store.graphroot) / store.driver / ("e" * 64)).exists()
    assert not (Path(store.graphroot) / f"{store.driver}/dir" / ("e" * 64)).exists()

    # Names move between images and are remembered.
    second = store.put_layer(None, io.BytesIO(other))
    img2 = store.create_image("f" * 64, second.id, ["localhost/other:1"], None, [])
    store.add_names(img2.id, ["localhost/test:latest"])
    first = store.image(image_id)
    assert first is not None and "localhost/test:latest" not in first.names
    moved = store.image("localhost/test:latest")
    assert moved is not None and moved.id == img2.id
    assert moved.names_history[0] == "localhost/test:latest"
    store.remove_names(img2.id, ["localhost/other:1"])
    assert store.image("localhost/other:1") is None
    with pytest.raises(NotFound):
        store.image_big_data(img2.id, "manifest")
    store.delete_image(image_id)
    assert store.layer(second.id) is not None and store.layer(layer_ids[0]) is None


def test_cancelled_put_leaves_nothing(store: Store) -> None:
    cancel = threading.Event()
    cancel.set()
    blob = make_tar(BASE)
    with pytest.raises(Cancelled):
        store.put_layer(None, io.BytesIO(blob), cancel=cancel)
    assert store.layers() == []
    assert list((Path(store.graphroot) / f"{store.driver}-layers").glob("*.tar-split.gz")) == []


def test_incomplete_layer_is_removed_at_open(tmp_path: Path) -> None:
    store = open_store(tmp_path, "overlay")
    blob = make_tar(BASE)
    layer = store.put_layer(None, io.BytesIO(blob))
    layers_json = tmp_path / "graph/overlay-layers/layers.json"
    data = json.loads(layers_json.read_text())
    data[0]["flags"] = {"incomplete": True}
    layers_json.write_text(json.dumps(data))
    assert (tmp_path / f"graph/overlay/{layer.id}/diff").is_dir()

    reopened = open_store(tmp_path, "overlay")
    assert reopened.layers() == []
    assert not (tmp_path / f"graph/overlay/{layer.id}").exists()
    assert not (tmp_path / f"graph/overlay-layers/{layer.id}.tar-split.gz").exists()
    assert [p for p in (tmp_path / "graph/overlay/l").iterdir()] == []


CRASHING_CREATE = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from crio.core.storage import containers, layers
from tests.integration.test_storage_store import open_store
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
target = {{
    "record": (containers.ContainerStore, "create"),
    "complete": (layers.LayerStore, "complete_rw_layer"),
}}
cls, name = target[{window!r}]
setattr(cls, name, die)
open_store(Path({base!r}), "overlay").create_container("", ["victim"], {image!r}, "{{}}")
"""


@pytest.mark.parametrize("window", ["record", "complete"])
def test_a_container_creation_killed_midway_leaves_nothing_behind(tmp_path: Path, window: str) -> None:
    """SIGKILL before the container's record is saved (its layer is still incomplete: the next open deletes
    it with its directory), or after it but before the layer is completed (the record stays, without a
    layer, and deleting it leaves nothing)."""
    store = open_store(tmp_path, "overlay")
    image_id, image_layers = put_image(store)
    script = CRASHING_CREATE.format(
        repo=str(Path(__file__).resolve().parents[2]), window=window, base=str(tmp_path), image=image_id
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()

    reopened = open_store(tmp_path, "overlay")
    assert sorted(layer.id for layer in reopened.layers()) == sorted(image_layers)
    overlay_dirs = {p.name for p in (tmp_path / "graph/overlay").iterdir() if p.is_dir() and p.name != "l"}
    assert overlay_dirs == set(image_layers)
    leftover = reopened.containers()
    if window == "record":
        assert leftover == []
    else:
        assert [list(c.names) for c in leftover] == [["victim"]]
        reopened.unmount(leftover[0].id, True)
        reopened.delete_container(leftover[0].id)
        assert reopened.containers() == []
    assert [p.name for p in (tmp_path / "graph/overlay-containers").iterdir() if p.is_dir()] == []


def test_second_store_instance_sees_changes(tmp_path: Path) -> None:
    first = open_store(tmp_path, "vfs")
    second = open_store(tmp_path, "vfs")
    assert second.images() == []
    image_id, _ = put_image(first)
    assert [i.id for i in second.images()] == [image_id]
    second.add_names(image_id, ["localhost/more:1"])
    found = first.image("localhost/more:1")
    assert found is not None and found.id == image_id


@pytest.mark.parametrize("depth", [100, 200])
def test_deep_overlay_chain_mounts(tmp_path: Path, depth: int) -> None:
    """Option strings over a page: relative l/ links (100 layers) or /proc/self/fd numbers (200 layers).

    The mount runs on a thread with its own working directory: this process's directory never changes.
    """
    store = open_store(tmp_path, "overlay")
    cwd = os.getcwd()
    parent: str | None = None
    for index in range(depth):
        blob = make_tar([Entry(f"f{index:03d}", str(index).encode())], compress=False)
        parent = store.put_layer(parent, io.BytesIO(blob)).id
    assert parent is not None
    image = store.create_image("a" * 64, parent, ["localhost/deep:1"], None, [])
    container = store.create_container("b" * 64, [], image.id, "{}")
    root = store.mount(container.id)
    assert os.getcwd() == cwd
    assert (root / "f000").read_text() == "0"
    assert (root / f"f{depth - 1:03d}").read_text() == str(depth - 1)
    assert len(os.listdir(root)) == depth
    options = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line]
    assert len(options) == 1
    assert ("lowerdir=l/" in options[0]) == (depth == 100), options[0][:300]
    store.delete_container(container.id)
    store.delete_image(image.id)
    assert store.layers() == [] and not mountinfo_mentions(tmp_path)


def test_shutdown_only_when_nothing_is_mounted(tmp_path: Path) -> None:
    store = open_store(tmp_path, "overlay")
    image_id, _ = put_image(store)
    container = store.create_container("", [], image_id, "{}")
    store.mount(container.id)
    token = (tmp_path / "graph/storage.lock").read_bytes()
    assert store.shutdown() is False and store.mounted_count() == 1
    store.unmount(container.id)
    assert store.shutdown() is True
    assert (tmp_path / "graph/storage.lock").read_bytes() != token
    assert (store.mount(container.id) / "etc/motd").is_file(), "the driver comes back for the next mount"
    assert store.shutdown(force=True) is True and store.mounted_count() == 0
    assert not mountinfo_mentions(tmp_path)


def test_listing_does_not_wait_for_a_pull(tmp_path: Path) -> None:
    store = open_store(tmp_path, "overlay")
    for index in range(20):
        blob = make_tar([Entry(f"file{index}", os.urandom(64))])
        layer = store.put_layer(None, io.BytesIO(blob))
        store.create_image(
            hashlib.sha256(str(index).encode()).hexdigest(),
            layer.id,
            [f"localhost/i:{index}"],
            None,
            [("manifest", b"{}")],
        )
    chunk = os.urandom(1 << 17) + bytes(1 << 17)
    big = make_tar([Entry(f"big/{i:04d}", chunk) for i in range(400)], compress=True)  # 100 MiB uncompressed
    done = threading.Event()
    failure: list[BaseException] = []

    def pull() -> None:
        try:
            store.put_layer(None, io.BytesIO(big))
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=pull)
    latencies: list[float] = []
    worker.start()
    while not done.is_set() or len(latencies) < 1000:
        start = time.perf_counter()
        listed = store.images()
        latencies.append(time.perf_counter() - start)
        assert len(listed) == 20
        if not done.is_set():
            time.sleep(0.001)
    worker.join()
    assert not failure, failure
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"\nimages() during a 100 MiB put_layer: n={len(latencies)} p50={p50 * 1e3:.3f} ms "
        f"p99={p99 * 1e3:.3f} ms max={latencies[-1] * 1e3:.3f} ms"
    )
    assert p99 < 0.010

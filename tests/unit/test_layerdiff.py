"""Layer diff extraction: entry kinds, whiteouts, escapes, statistics, tar-split round trips, bad input."""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import stat
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal, cast

import pytest
import zstandard

from crio.core.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from crio.core.storage.layerdiff import (
    COMPRESSION_BZIP2,
    COMPRESSION_GZIP,
    COMPRESSION_NONE,
    COMPRESSION_XZ,
    COMPRESSION_ZSTD,
    DiffStats,
    apply_diff,
    reassemble,
)
from crio.core.storage.tarsplit import crc64_iso
from crio.core.storage.zstdframes import ZstdFrameChecker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layer extraction tests need root (chown, mknod)")

Fmt = Literal["overlay", "apply"]
MTIME = 1_600_000_000


# ------------------------------------------------------------------------------------------- helpers


@dataclass
class E:
    """One tar member for :func:`make_tar`."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime: float = MTIME
    pax: dict[str, str] = field(default_factory=dict)
    dev: tuple[int, int] = (0, 0)


def make_tar(entries: list[E], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.kind
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.mtime = e.mtime
            info.linkname = e.link
            info.devmajor, info.devminor = e.dev
            info.pax_headers = dict(e.pax)
            info.size = len(e.data) if e.kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(e.data) if e.kind == tarfile.REGTYPE else None)
    return buf.getvalue()


@dataclass
class Result:
    stats: DiffStats
    split: bytes
    target: Path


def extract(data: bytes, target: Path, fmt: Fmt = "overlay") -> Result:
    if not target.exists():
        target.mkdir(parents=True)
        target.chmod(0o755)
    out = io.BytesIO()
    stats = apply_diff(io.BytesIO(data), target, fmt, out)
    return Result(stats, out.getvalue(), target)


def rebuild(result: Result) -> bytes:
    def open_file(name: str) -> BinaryIO:
        return open(result.target / name.lstrip("/"), "rb")

    return b"".join(reassemble(io.BytesIO(result.split), open_file))


def split_entries(split: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in gzip.decompress(split).splitlines()]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def crc64_reference(data: bytes) -> int:
    """Bit-by-bit CRC-64/GO-ISO (reflected poly 0xD800000000000000, init and xorout all ones)."""
    crc = 0xFFFFFFFFFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xD800000000000000 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFFFFFFFFFF


def snapshot(root: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``root`` except ``skip``'s subtree: (mode, size, content of files)."""
    result: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path == skip:
                continue
            st = path.lstat()
            content = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
            result[str(path)] = (st.st_mode, st.st_size, content)
    return result


def gnu_tar(src: Path, fmt: str, *extra: str) -> bytes:
    cmd = ["tar", f"--format={fmt}", "--numeric-owner", "-C", str(src), "-cf", "-", *extra, "."]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


# ------------------------------------------------------------------------------------------- basics


def test_crc64_matches_go_iso() -> None:
    assert crc64_iso(b"123456789") == 0xB90956C775A41001
    data = os.urandom(5000)
    assert crc64_iso(data) == crc64_reference(data)
    assert crc64_iso(data[3000:], crc64_iso(data[:3000])) == crc64_reference(data)


def _compress(kind: int, data: bytes) -> bytes:
    if kind == COMPRESSION_GZIP:
        return gzip.compress(data)
    if kind == COMPRESSION_ZSTD:
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    if kind == COMPRESSION_BZIP2:
        return bz2.compress(data)
    if kind == COMPRESSION_XZ:
        return lzma.compress(data)
    return data


@pytest.mark.parametrize(
    "kind", [COMPRESSION_NONE, COMPRESSION_GZIP, COMPRESSION_ZSTD, COMPRESSION_BZIP2, COMPRESSION_XZ]
)
def test_compression_is_detected_and_digests_cover_both_streams(tmp_path: Path, kind: int) -> None:
    raw = make_tar([E("etc/", tarfile.DIRTYPE, mode=0o755), E("etc/hosts", data=b"127.0.0.1 x\n" * 5000)])
    blob = _compress(kind, raw)
    result = extract(blob, tmp_path / "t")
    assert result.stats.compression == kind
    assert (result.stats.compressed_digest, result.stats.compressed_size) == (sha(blob), len(blob))
    assert (result.stats.diff_digest, result.stats.diff_size) == (sha(raw), len(raw))
    assert (tmp_path / "t/etc/hosts").read_bytes() == b"127.0.0.1 x\n" * 5000
    assert rebuild(result) == raw


def test_multi_member_gzip_and_multi_frame_zstd(tmp_path: Path) -> None:
    raw = make_tar([E(f"f{i}", data=os.urandom(3000)) for i in range(20)])
    half = len(raw) // 2
    gz = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    zst = zstandard.ZstdCompressor().compress(raw[:half])
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    zst += skippable + zstandard.ZstdCompressor(write_checksum=True, write_content_size=False).compress(
        raw[half:]
    )
    for i, blob in enumerate((gz, zst)):
        result = extract(blob, tmp_path / str(i))
        assert result.stats.diff_digest == sha(raw)
        assert rebuild(result) == raw


@pytest.mark.parametrize("kind", [COMPRESSION_GZIP, COMPRESSION_ZSTD, COMPRESSION_XZ])
def test_highly_compressed_content_streams_in_bounded_chunks(tmp_path: Path, kind: int) -> None:
    raw = make_tar([E("zeros", data=bytes(24 << 20)), E("after", data=b"tail")])
    blob = _compress(kind, raw)
    assert len(blob) < len(raw) // 100
    result = extract(blob, tmp_path / "t")
    assert (tmp_path / "t/zeros").stat().st_size == 24 << 20 and (
        tmp_path / "t/after"
    ).read_bytes() == b"tail"
    assert result.stats.diff_digest == sha(raw) and result.stats.diff_size == len(raw)


def test_pax_global_headers_are_listed_but_not_extracted(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}) as tar:
        info = tarfile.TarInfo("f")
        info.size, info.uid = 1, 77
        tar.addfile(info, io.BytesIO(b"1"))
    raw = buf.getvalue()
    result = extract(raw, tmp_path / "t")
    assert _walk_names(result.target) == ["f"]
    files = [e for e in split_entries(result.split) if e["type"] == 1]
    assert [e["name"] for e in files] == ["././@PaxHeader", "f"]
    assert result.stats.uids == (0, 77)  # Go's reader reports the global header with uid 0
    assert rebuild(result) == raw


def test_regular_files_dirs_symlinks_devices_modes_owners_times(tmp_path: Path) -> None:
    entries = [
        E("./", tarfile.DIRTYPE, mode=0o755),
        E("./bin/", tarfile.DIRTYPE, mode=0o755, mtime=MTIME + 1),
        E("./bin/su", data=b"\x7fELF", mode=0o4755, uid=0, gid=0),
        E("./bin/wall", data=b"w", mode=0o2755, uid=0, gid=5),
        E("./tmp/", tarfile.DIRTYPE, mode=0o1777, mtime=MTIME + 2),
        E("./home/user/", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
        E("./home/user/.profile", data=b"export A=1\n", mode=0o600, uid=1000, gid=1000, mtime=MTIME + 3),
        E("./home/user/link", tarfile.SYMTYPE, link="/etc/passwd", uid=1000, gid=1001, mtime=MTIME + 4),
        E("./dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        E("./dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)),
        E("./run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=7, gid=8),
        E("./empty", data=b"", mode=0o400),
    ]
    t = tmp_path / "t"
    result = extract(make_tar(entries), t)

    def st(rel: str) -> os.stat_result:
        return os.lstat(t / rel)

    assert stat.S_IMODE(st("bin/su").st_mode) == 0o4755
    assert (stat.S_IMODE(st("bin/wall").st_mode), st("bin/wall").st_gid) == (0o2755, 5)
    assert stat.S_IMODE(st("tmp").st_mode) == 0o1777 and st("tmp").st_mtime == MTIME + 2
    assert st("bin").st_mtime == MTIME + 1  # set after bin/su and bin/wall were written
    home = st("home/user")
    assert (stat.S_IMODE(home.st_mode), home.st_uid, home.st_gid) == (0o700, 1000, 1000)
    assert (t / "home/user/.profile").read_bytes() == b"export A=1\n"
    assert st("home/user/.profile").st_mtime == MTIME + 3
    link = st("home/user/link")
    assert stat.S_ISLNK(link.st_mode) and os.readlink(t / "home/user/link") == "/etc/passwd"
    assert (link.st_uid, link.st_gid, link.st_mtime) == (1000, 1001, MTIME + 4)
    null = st("dev/null")
    assert stat.S_ISCHR(null.st_mode) and (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = st("dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), loop.st_gid) == (7, 6)
    fifo = st("run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and (fifo.st_uid, fifo.st_gid, stat.S_IMODE(fifo.st_mode)) == (
        7,
        8,
        0o620,
    )
    assert stat.S_ISDIR(st("dev").st_mode) and stat.S_IMODE(st("dev").st_mode) == 0o755  # implicit parent
    assert stat.S_IMODE(st("empty").st_mode) == 0o400 and st("empty").st_size == 0
    assert result.stats.uids == (0, 7, 1000) and result.stats.gids == (0, 5, 6, 8, 1000, 1001)
    assert rebuild(result) == make_tar(entries)


def test_pax_long_names_fractional_mtime_big_ids_and_xattrs(tmp_path: Path) -> None:
    long_dir = "d" * 120 + "/" + "e" * 150
    cap = bytes.fromhex("0100000200040000000000000000000000000000")  # v2, effective, cap_net_bind_service
    entries = [
        E(long_dir + "/", tarfile.DIRTYPE, mode=0o755),
        E(long_dir + "/" + "f" * 200, data=b"long", uid=3_000_000, gid=4_000_000),
        E(
            "ping",
            data=b"ping",
            mode=0o4755,
            pax={"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape")},
        ),
        E("frac", data=b"x", pax={"mtime": "1600000000.123456789", "atime": "1600000005.5"}),
        E("user-x", data=b"u", pax={"SCHILY.xattr.user.comment": "hello"}),
        E(
            "libarchive-x",
            data=b"l",
            pax={"LIBARCHIVE.xattr.user.a%3Db": base64.b64encode(b"v1").decode().rstrip("=")},
        ),
        E("linkdir/" + "s" * 150, tarfile.SYMTYPE, link="t" * 300),
    ]
    raw = make_tar(entries)
    t = tmp_path / "t"
    result = extract(raw, t)
    big = t / long_dir / ("f" * 200)
    assert big.read_bytes() == b"long" and (big.stat().st_uid, big.stat().st_gid) == (3_000_000, 4_000_000)
    ping = t / "ping"
    assert os.getxattr(ping, "security.capability") == cap
    assert stat.S_IMODE(ping.stat().st_mode) == 0o4755  # chmod after the capability was set
    frac = (t / "frac").stat()
    assert frac.st_mtime_ns == 1_600_000_000_123_456_789 and frac.st_atime_ns == 1_600_000_005_500_000_000
    assert os.getxattr(t / "user-x", "user.comment") == b"hello"
    assert os.getxattr(t / "libarchive-x", "user.a=b") == b"v1"
    assert os.readlink(t / "linkdir" / ("s" * 150)) == "t" * 300
    assert result.stats.uids == (0, 3_000_000)
    assert rebuild(result) == raw


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT])
def test_tarfile_formats_round_trip(tmp_path: Path, fmt: int) -> None:
    name = "x" * 90 + "/" + "y" * 90 if fmt == tarfile.USTAR_FORMAT else "n" * 150 + "/" + "m" * 150
    target = "short" if fmt == tarfile.USTAR_FORMAT else name
    entries = [
        E(name, data=b"data" * 1000, uid=12, gid=34),
        E("short", data=b"s"),
        E("hl", tarfile.LNKTYPE, link=target, uid=12, gid=34),
        E("sl", tarfile.SYMTYPE, link=target),
    ]
    raw = make_tar(entries, fmt)
    t = tmp_path / "t"
    result = extract(raw, t)
    assert (t / name).read_bytes() == b"data" * 1000
    assert (t / "hl").stat().st_ino == (t / target).stat().st_ino
    assert os.readlink(t / "sl") == target
    assert rebuild(result) == raw and result.stats.diff_digest == sha(raw)


# ------------------------------------------------------------------------------------------- GNU tar


def _populate(src: Path) -> None:
    (src / "usr/bin").mkdir(parents=True)
    (src / "usr/bin/busybox").write_bytes(os.urandom(70_000))
    for applet in ("ls", "cat", "sh"):
        os.link(src / "usr/bin/busybox", src / "usr/bin" / applet)
    deep = src / ("a" * 60) / ("b" * 60) / ("c" * 60)
    deep.mkdir(parents=True)
    (deep / ("long-name-" + "z" * 140)).write_bytes(b"deep")
    os.symlink("../" + "q" * 200, src / "usr/longlink")
    (src / "usr/bin/busybox").chmod(0o4755)
    os.chown(src / "usr/bin/cat", 10, 20)  # all links share the inode
    os.setxattr(src / "usr/bin/busybox", "user.origin", b"gnu tar")
    (src / "etc").mkdir()
    (src / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.utime(src / "etc/passwd", ns=(1_700_000_000_000_000_000, 1_650_000_000_987_654_321))
    os.mkfifo(src / "etc/fifo")
    (src / "empty-dir").mkdir(mode=0o710)


def _tree(root: Path) -> dict[str, tuple[object, ...]]:
    result: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            content: bytes | str = b""
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            mtime = st.st_mtime_ns
            xattrs = (
                {k: os.getxattr(path, k) for k in os.listxattr(path)} if not stat.S_ISLNK(st.st_mode) else {}
            )
            result[str(path.relative_to(root))] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_nlink,
                content,
                mtime,
                xattrs,
            )
    return result


@pytest.mark.parametrize("fmt", ["posix", "gnu", "ustar"])
def test_gnu_tar_archives_extract_like_gnu_tar(tmp_path: Path, fmt: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _populate(src)
    if fmt == "ustar":  # ustar cannot hold the long names nor sub-second times
        shutil.rmtree(src / ("a" * 60))
        (src / "usr/longlink").unlink()
    extra = ["--xattrs", "--xattrs-include=user.*"] if fmt == "posix" else []
    raw = gnu_tar(src, fmt, *extra)
    ours = extract(gzip.compress(raw), tmp_path / "ours")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    subprocess.run(["tar", "-C", str(theirs), "-xpf", "-", "--numeric-owner", *extra], input=raw, check=True)
    assert _tree(ours.target) == _tree(theirs)
    assert ours.stats.diff_digest == sha(raw) and rebuild(ours) == raw
    assert ours.stats.uids == (0, 10) and ours.stats.gids == (0, 20)


def test_gnu_sparse_files_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as f:
        f.seek(10 << 20)
        f.write(b"end")
    for fmt in ("gnu", "posix"):
        raw = gnu_tar(src, fmt, "--sparse")
        with pytest.raises(InvalidArgument, match="sparse"):
            extract(raw, tmp_path / fmt)


# ------------------------------------------------------------------------------------------- hard links


def test_hard_links_within_the_layer_and_to_the_parent_in_apply_mode(tmp_path: Path) -> None:
    raw = make_tar(
        [E("bin/busybox", data=b"bb", mode=0o755), E("bin/ls", tarfile.LNKTYPE, link="bin/busybox")]
    )
    t = extract(raw, tmp_path / "o").target
    assert (t / "bin/ls").stat().st_ino == (t / "bin/busybox").stat().st_ino
    assert (t / "bin/ls").stat().st_nlink == 2

    parent = tmp_path / "a"
    (parent / "lib").mkdir(parents=True)
    (parent / "lib/libc.so").write_bytes(b"libc")
    result = extract(make_tar([E("lib/libc.so.6", tarfile.LNKTYPE, link="/lib/libc.so")]), parent, "apply")
    assert (parent / "lib/libc.so.6").stat().st_ino == (parent / "lib/libc.so").stat().st_ino
    assert result.stats.diff_size > 0

    with pytest.raises(InvalidArgument, match="does not exist in the layer"):  # overlay: parent not present
        extract(make_tar([E("lib/libc.so.6", tarfile.LNKTYPE, link="lib/libc.so")]), tmp_path / "o2")
    with pytest.raises(InvalidArgument, match="hard link to directory"):
        extract(make_tar([E("d/", tarfile.DIRTYPE), E("l", tarfile.LNKTYPE, link="d")]), tmp_path / "o3")


# ------------------------------------------------------------------------------------------- whiteouts


def _walk_names(root: Path) -> list[str]:
    return sorted(str(Path(d, n).relative_to(root)) for d, ds, fs in os.walk(root) for n in ds + fs)


def test_overlay_whiteouts_become_char_devices_and_opaque_xattrs(tmp_path: Path) -> None:
    entries = [
        E("etc/", tarfile.DIRTYPE, mode=0o755),
        E("etc/.wh.motd", uid=5, gid=6),
        E("var/cache/.wh..wh..opq"),
        E("var/cache/new", data=b"n"),
        E(".wh..wh.plnk/123.456"),
        E("usr/.wh..wh.aufs"),
        E(".wh.gone-dir"),
    ]
    raw = make_tar(entries)
    result = extract(raw, tmp_path / "t")
    t = result.target
    motd = os.lstat(t / "etc/motd")
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == 0 and (motd.st_uid, motd.st_gid) == (5, 6)
    assert stat.S_ISCHR(os.lstat(t / "gone-dir").st_mode)
    assert os.getxattr(t / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (t / "var/cache/new").read_bytes() == b"n"
    names = _walk_names(t)
    assert not [n for n in names if ".wh." in n], names
    assert result.stats.uids == (0,)  # the whiteout's uid 5 is not counted
    assert rebuild(result) == raw


@pytest.mark.parametrize("marker_first", [True, False])
def test_apply_whiteouts_delete_and_opaque_keeps_only_this_layers_entries(
    tmp_path: Path, marker_first: bool
) -> None:
    t = tmp_path / "t"
    for rel in ("dir/old", "dir/sub/old", "dir/keep/old", "x/y", "file"):
        (t / rel).parent.mkdir(parents=True, exist_ok=True)
        (t / rel).write_text(rel)
    marker = [E("dir/.wh..wh..opq")]
    body = [
        E("dir/", tarfile.DIRTYPE, mode=0o755),
        E("dir/keep/", tarfile.DIRTYPE, mode=0o755),
        E("dir/keep/new", data=b"new"),
        E("dir/new2", data=b"2"),
    ]
    entries = [
        *(marker + body if marker_first else body + marker),
        E(".wh.x"),
        E(".wh.file"),
        E(".wh.absent"),
    ]
    result = extract(make_tar(entries), t, "apply")
    assert _walk_names(t) == ["dir", "dir/keep", "dir/keep/new", "dir/new2"]
    assert not os.listxattr(t / "dir")
    assert rebuild(result) == make_tar(entries)


def test_entries_replace_existing_ones_and_directories_merge(tmp_path: Path) -> None:
    t = tmp_path / "t"
    (t / "was-dir/child").mkdir(parents=True)
    (t / "was-file").write_text("f")
    (t / "merge").mkdir()
    (t / "merge/old").write_text("old")
    os.symlink("/nowhere", t / "was-link")
    entries = [
        E("was-dir", data=b"now a file"),
        E("was-file/", tarfile.DIRTYPE, mode=0o750),
        E("was-file/inner", data=b"i"),
        E("merge/", tarfile.DIRTYPE, mode=0o700, uid=3),
        E("was-link", tarfile.SYMTYPE, link="elsewhere"),
    ]
    extract(make_tar(entries), t, "apply")
    assert (t / "was-dir").read_bytes() == b"now a file"
    assert stat.S_IMODE((t / "was-file").stat().st_mode) == 0o750 and (t / "was-file/inner").exists()
    assert (t / "merge/old").read_text() == "old" and (t / "merge").stat().st_uid == 3
    assert os.readlink(t / "was-link") == "elsewhere"


def test_root_directory_entry(tmp_path: Path) -> None:  # overlay keeps the root, apply merges it
    raw = make_tar([E(".", tarfile.DIRTYPE, mode=0o700, uid=9), E("./a", data=b"a")])
    overlay = extract(raw, tmp_path / "o").target
    assert stat.S_IMODE(overlay.stat().st_mode) == 0o755 and overlay.stat().st_uid == 0  # left as made
    applied = extract(raw, tmp_path / "a", "apply").target
    assert stat.S_IMODE(applied.stat().st_mode) == 0o700 and applied.stat().st_uid == 9
    assert applied.stat().st_mtime == MTIME
    with pytest.raises(InvalidArgument, match="cannot be the layer root"):
        extract(make_tar([E("./", tarfile.SYMTYPE, link="/")]), tmp_path / "s")


# ------------------------------------------------------------------------------------------- safety


ESCAPES: dict[str, list[E]] = {
    "dotdot": [E("../x", data=b"evil")],
    "nested-dotdot": [E("a/../../x", data=b"evil")],
    "absolute-dotdot": [E("/../x", data=b"evil")],
    "symlink-to-root": [E("evil", tarfile.SYMTYPE, link="/"), E("evil/x", data=b"evil")],
    "symlink-up": [E("up", tarfile.SYMTYPE, link="../.."), E("up/x", data=b"evil")],
    "symlink-dir-mkdir": [E("up", tarfile.SYMTYPE, link=".."), E("up/d/", tarfile.DIRTYPE)],
    "symlink-whiteout": [E("up", tarfile.SYMTYPE, link=".."), E("up/.wh.victim")],
    "symlink-opaque": [E("up", tarfile.SYMTYPE, link=".."), E("up/.wh..wh..opq")],
    "hardlink-up": [E("pw", tarfile.LNKTYPE, link="../../etc/passwd")],
    "hardlink-through-symlink": [
        E("up", tarfile.SYMTYPE, link=".."),
        E("pw", tarfile.LNKTYPE, link="up/victim"),
    ],
    "nondir-root": [E(".", tarfile.SYMTYPE, link="..")],
}


@pytest.mark.parametrize("fmt", ["overlay", "apply"])
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_escapes_are_refused_and_nothing_is_written_outside(tmp_path: Path, case: str, fmt: Fmt) -> None:
    layer = tmp_path / "root" / "layer"
    layer.mkdir(parents=True)
    (tmp_path / "root" / "victim").write_text("precious")
    (tmp_path / "victim").write_text("precious")
    before = snapshot(tmp_path, layer)
    entries = ESCAPES[case]
    with pytest.raises(InvalidArgument) as info:
        extract(make_tar(entries), layer, fmt)
    assert repr(entries[-1].name) in str(info.value)
    assert snapshot(tmp_path, layer) == before


def test_existing_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_text("precious")
    layer = tmp_path / "layer"
    layer.mkdir()
    os.symlink(outside, layer / "lib")  # from the parent layer (apply mode)
    os.symlink(outside / "file", layer / "target")
    with pytest.raises(InvalidArgument, match="symlink"):
        extract(make_tar([E("lib/x", data=b"evil")]), layer, "apply")
    extract(make_tar([E("target", data=b"replaced", mode=0o600)]), layer, "apply")
    assert (outside / "file").read_text() == "precious"
    assert not (layer / "target").is_symlink() and (layer / "target").read_bytes() == b"replaced"
    assert sorted(os.listdir(outside)) == ["file"]


def test_duplicate_entries_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="more than once"):
        extract(make_tar([E("a/b", data=b"1"), E("./a//b", data=b"2")]), tmp_path / "t")


def test_unsupported_entry_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unsupported type 'D'"):  # GNU dumpdir
        extract(make_tar([E("d", b"D")], tarfile.GNU_FORMAT), tmp_path / "t")


# ------------------------------------------------------------------------------------------- tar-split


def test_tar_split_entries_follow_the_tar_split_format(tmp_path: Path) -> None:
    entries = [
        E("dir/", tarfile.DIRTYPE),
        E("dir/file", data=b"hello"),
        E("dir/empty"),
        E("dir/é<>&", data=b"u"),
    ]
    raw = make_tar(entries)
    result = extract(raw, tmp_path / "t")
    lines = split_entries(result.split)
    assert [e["position"] for e in lines] == list(range(len(lines)))
    files = [e for e in lines if e["type"] == 1]
    assert [e["name"] for e in files] == ["dir/", "dir/file", "dir/empty", "dir/é<>&"]
    assert files[0] == {"type": 1, "name": "dir/", "payload": None, "position": files[0]["position"]}
    assert files[1]["size"] == 5
    assert files[1]["payload"] == base64.b64encode(crc64_reference(b"hello").to_bytes(8, "big")).decode()
    assert all(set(e) == {"type", "payload", "position"} for e in lines if e["type"] == 2)
    segments = b"".join(base64.b64decode(str(e["payload"])) for e in lines if e["type"] == 2)
    assert len(segments) + 5 + 1 == len(raw)
    line_text = gzip.decompress(result.split).decode()
    assert line_text.splitlines()[1].startswith('{"type":1,"name":"dir/","payload":null,"position":1}')

    latin = tarfile.TarInfo("caf\xe9")  # encoded as latin-1 by a ustar writer: not UTF-8
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin-1") as tar:
        latin.size = 3
        tar.addfile(latin, io.BytesIO(b"abc"))
    result = extract(buf.getvalue(), tmp_path / "latin")
    (entry,) = [e for e in split_entries(result.split) if e["type"] == 1]
    assert "name" not in entry and base64.b64decode(str(entry["name_raw"])) == b"caf\xe9"
    assert (tmp_path / "latin" / os.fsdecode(b"caf\xe9")).read_bytes() == b"abc"
    assert rebuild(result) == buf.getvalue()


def test_trailing_bytes_after_the_archive_are_kept(tmp_path: Path) -> None:
    raw = make_tar([E("a", data=b"a" * 700)]) + b"\0" * 4096 + b"trailing junk"
    result = extract(gzip.compress(raw), tmp_path / "t")
    assert result.stats.diff_size == len(raw) and rebuild(result) == raw


def test_archive_without_end_blocks_is_accepted_like_go(tmp_path: Path) -> None:
    raw = make_tar([E("a", data=b"a" * 700)])
    cut = raw[: 512 + 1024]
    result = extract(cut, tmp_path / "t")
    assert (tmp_path / "t/a").read_bytes() == b"a" * 700 and rebuild(result) == cut


def test_reassemble_detects_changed_and_missing_files(tmp_path: Path) -> None:
    result = extract(make_tar([E("a", data=b"content")]), tmp_path / "t")
    (tmp_path / "t/a").write_bytes(b"CONTENT")
    with pytest.raises(FailedPrecondition, match="checksum"):
        rebuild(result)
    (tmp_path / "t/a").write_bytes(b"con")
    with pytest.raises(FailedPrecondition, match="shorter"):
        rebuild(result)
    (tmp_path / "t/a").unlink()
    with pytest.raises(FailedPrecondition, match="cannot be opened"):
        rebuild(result)


# ------------------------------------------------------------------------------------------- bad input


def _big_tar() -> bytes:
    return make_tar([E(f"f{i}", data=os.urandom(20_000)) for i in range(50)])


BAD: dict[str, Callable[[], bytes]] = {
    "truncated-gzip": lambda: gzip.compress(_big_tar())[:-5000],
    "truncated-gzip-trailer": lambda: gzip.compress(_big_tar())[:-4],
    "garbage-gzip": lambda: b"\x1f\x8b\x08\x00" + os.urandom(100_000),
    "garbage-after-gzip": lambda: gzip.compress(_big_tar()) + b"garbage",
    "truncated-zstd": lambda: zstandard.ZstdCompressor().compress(_big_tar())[:-3000],
    "truncated-zstd-checksum": lambda: zstandard.ZstdCompressor(write_checksum=True).compress(_big_tar())[
        :-2
    ],
    "garbage-zstd": lambda: b"\x28\xb5\x2f\xfd" + os.urandom(100_000),
    "truncated-xz": lambda: lzma.compress(_big_tar())[:-100],
    "garbage-bzip2": lambda: b"BZh9" + os.urandom(10_000),
    "garbage-plain": lambda: os.urandom(100_000),
    "truncated-plain": lambda: _big_tar()[:30_000],
    "zero-then-data": lambda: bytes(512) + _big_tar(),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_blobs_fail_fast_with_invalid_argument(tmp_path: Path, case: str) -> None:
    blob = BAD[case]()
    start = time.monotonic()
    with pytest.raises(InvalidArgument) as info:
        extract(blob, tmp_path / "t")
    assert time.monotonic() - start < 5
    assert any(word in str(info.value) for word in ("truncated", "not valid", "invalid tar", "not gzip")), (
        info.value
    )


def test_zstd_frame_checker() -> None:
    data = zstandard.ZstdCompressor(write_checksum=True).compress(os.urandom(300_000))
    checker = ZstdFrameChecker()
    for i in range(0, len(data), 777):
        checker.feed(data[i : i + 777])
    checker.finish()
    short = ZstdFrameChecker()
    short.feed(data[:-1])
    with pytest.raises(InvalidArgument, match="truncated"):
        short.finish()


# ------------------------------------------------------------------------------------------- cancellation


class SlowBlob:
    """Serves ``data`` in small pieces, then blocks until released."""

    def __init__(self, data: bytes, release: threading.Event) -> None:
        self.data = data
        self.release = release

    def read(self, size: int = -1) -> bytes:
        if not self.data:
            self.release.wait(10)
            return b""
        piece, self.data = self.data[:4096], self.data[4096:]
        return piece


@pytest.mark.timeout(20)
def test_cancel_stops_extraction(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DeadlineExceeded, match="cancelled"):
        apply_diff(io.BytesIO(_big_tar()), tmp_path, "overlay", io.BytesIO(), cancel)

    release = threading.Event()
    cancel = threading.Event()
    blob = SlowBlob(_big_tar()[:100_000], release)  # stalls mid-layer
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    start = time.monotonic()
    try:
        with pytest.raises(DeadlineExceeded):
            apply_diff(cast(BinaryIO, blob), tmp_path, "overlay", io.BytesIO(), cancel)
        assert time.monotonic() - start < 3
    finally:
        release.set()
        timer.cancel()


class FailingBlob:
    """Serves ``data``, then fails like a dropped connection."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int = -1) -> bytes:
        if not self.data:
            raise ConnectionResetError("connection reset by registry")
        piece, self.data = self.data[:4096], self.data[4096:]
        return piece


def test_blob_read_errors_propagate_unchanged(tmp_path: Path) -> None:
    blob = FailingBlob(gzip.compress(_big_tar())[:50_000])
    with pytest.raises(ConnectionResetError, match="reset by registry"):
        apply_diff(cast(BinaryIO, blob), tmp_path, "overlay", io.BytesIO())


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        apply_diff(io.BytesIO(b""), tmp_path, "aufs", io.BytesIO())  # type: ignore[arg-type]


def test_empty_blob_is_an_empty_layer(tmp_path: Path) -> None:
    result = extract(b"", tmp_path / "t")
    assert result.stats.diff_size == 0 and result.stats.uids == () and rebuild(result) == b""

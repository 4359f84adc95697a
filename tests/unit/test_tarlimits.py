"""Hard limits of tar reading (issue 14): each refusal names its limit, checked before allocating."""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.storage import layerdiff, tarlimits
from crio.core.storage.fstree import LayerTree, clean_name
from crio.core.storage.tarlimits import MAX_DEPTH, MAX_META_HEADERS, MAX_NAME, MAX_TRAILER, depth, shown
from crio.core.storage.tarstream import TarEntry, TarInput, TarReader
from tests import hostile_images as h


def chunks(pieces: Iterable[bytes], size: int = 65536) -> Iterator[bytes]:
    """The stream re-cut into ``size``-byte chunks (as the decompressor hands them out)."""
    buf = b""
    for piece in pieces:
        buf += piece
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf


def read_all(pieces: Iterable[bytes]) -> list[TarEntry]:
    """Every entry of the stream, content and trailer consumed."""
    source = chunks(pieces)
    inp = TarInput(lambda: next(source, b""))
    reader = TarReader(inp)
    entries = []
    while (entry := reader.next()) is not None:
        entries.append(entry)
        for _ in inp.pieces(entry.size):
            pass
        reader.skip_padding(entry.size)
    for _ in reader.trailer():
        pass
    return entries


def refused(pieces: Iterable[bytes]) -> str:
    with pytest.raises(InvalidArgument) as err:
        read_all(pieces)
    return str(err.value)


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        (h.pax_chain(), "meta header total size limit"),
        (h.pax_chain(count=MAX_META_HEADERS + 1, each=600), "meta header count limit"),
        (h.deep_pax_path(), "name length limit (4096 bytes)"),
        (h.deep_short_path(), f"301 path components exceeds the path depth limit ({MAX_DEPTH})"),
        (h.gnu_long_name(), "GNU long name of 1048576 bytes exceeds the name length limit"),
        (h.long_link(), "link name of 8192 bytes exceeds the name length limit"),
        (h.big_meta(), "meta header size limit"),
        (h.huge_mtime(), "a base-256 numeric field does not fit in 64 bits"),
        (h.huge_pax_time(), "a PAX time does not fit in 64 bits"),
        ([h.pax(h.pax_record(b"size", b"9" * 30)) + h.header(b"f"), h.END], "PAX record size does not fit"),
        (h.bad_checksum(), "header checksum mismatch"),
        (h.zero_bomb(MAX_TRAILER + 4096), "trailing data limit"),
        (h.truncated_tar(), "truncated"),
    ],
    ids=[
        "pax-chain",
        "pax-count",
        "deep-pax-path",
        "deep-path",
        "gnu-long-name",
        "long-link",
        "big-meta",
        "huge-mtime",
        "huge-pax-time",
        "huge-pax-size",
        "bad-checksum",
        "trailer",
        "truncated",
    ],
)
def test_hostile_streams_are_refused_naming_the_problem(pieces: Iterable[bytes], message: str) -> None:
    text = refused(pieces)
    assert message in text
    assert "Error" not in text and "Overflow" not in text  # never a Python exception's class name
    assert len(text) < 400  # names are cut short in messages


def test_a_long_gnu_name_is_refused_before_it_is_read() -> None:
    # the header promises 1 MiB that never comes: the refusal is about the size, not the truncation
    assert "name length limit" in refused([h.header(b"././@LongLink", b"L", 1 << 20)])


def test_limits_are_inclusive_and_ordinary_archives_pass() -> None:
    at_limit = b"d/" * (MAX_DEPTH - 1) + b"f"
    name = b"n" * 255 + b"/" + b"m" * (MAX_NAME - 256)
    entries = read_all(
        [
            h.member(at_limit, b"x"),
            h.member(name, b"y"),
            *(h.pax(h.pax_record(b"comment", b"c")) for _ in range(MAX_META_HEADERS - 1)),
            h.member(b"last", b"z"),
            h.END,
            bytes(MAX_TRAILER),
        ]
    )
    assert [e.name for e in entries] == [at_limit, name, b"last"]
    assert depth(at_limit) == MAX_DEPTH


def test_meta_counters_restart_at_each_entry() -> None:
    pieces = []
    for number in range(3):
        pieces += [h.pax(h.pax_record(b"comment", b"c")) for _ in range(MAX_META_HEADERS - 1)]
        pieces.append(h.member(b"f%d" % number, b"x"))
    assert len(read_all([*pieces, h.END])) == 3


def test_depth_and_shown() -> None:
    assert depth(b"/a//./b/c/") == 3
    assert depth(b"") == 0
    assert shown(b"etc/passwd") == "'etc/passwd'"
    long = shown(b"a/" * 10_000)
    assert long.endswith("... (20000 bytes)") and len(long) < 140
    assert shown(b"\xff") == "'\\\\xff'"


def test_entries_per_layer_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layerdiff, "MAX_ENTRIES", 100)
    blob = b"".join(h.many_entries(101))
    with pytest.raises(tarlimits.LimitExceeded, match="more than 100 entries, the entries per layer limit"):
        layerdiff.apply_diff(io.BytesIO(blob), tmp_path, "overlay", io.BytesIO())
    layerdiff.apply_diff(io.BytesIO(b"".join(h.many_entries(100))), tmp_path, "overlay", io.BytesIO())


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_directory_walk_holds_a_bounded_number_of_descriptors(tmp_path: Path) -> None:
    tree = LayerTree(tmp_path, overlay=True)
    before = _open_fds()
    try:
        for top in range(100):
            name = b"/".join(b"t%d" % top for _ in range(MAX_DEPTH - 1)) + b"/f"
            entry = TarEntry()
            entry.name, entry.uid, entry.gid = name, os.geteuid(), os.getegid()
            tree.apply(entry, clean_name(name), iter(()))
            assert _open_fds() - before <= 70  # the cache (64) and the walk's own descriptor
            tree.trim()
    finally:
        tree.close()
    assert (tmp_path / ("t7/" * (MAX_DEPTH - 1)) / "f").is_file()


def test_gzip_of_zeros_after_the_archive_is_refused_with_bounded_work(tmp_path: Path) -> None:
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    blob = b"".join(z.compress(piece) for piece in h.zero_bomb(64 << 20)) + z.flush()
    with pytest.raises(InvalidArgument, match="trailing data limit"):
        layerdiff.apply_diff(io.BytesIO(blob), tmp_path, "overlay", io.BytesIO())


def test_the_extraction_child_reports_a_limit_as_invalid_argument() -> None:
    from crio.core.storage.diffworker import _error, _reported_class

    name = _reported_class(tarlimits.LimitExceeded("too deep"))
    assert name == "InvalidArgument"
    assert type(_error(name, "too deep")) is InvalidArgument

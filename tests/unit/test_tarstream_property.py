"""Property tests of the tar reader: any input gives entries or InvalidArgument, nothing else."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Literal

import pytest

from crio.core.errors import InvalidArgument
from crio.core.storage.layerdiff import apply_diff
from tests import hostile_images as h
from tests.unit.test_tarlimits import read_all

pytest.importorskip("hypothesis")

import hypothesis
from hypothesis import strategies as st

SEED = b"".join(
    [
        h.member(b"etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        h.pax(h.pax_record(b"path", b"usr/" + b"l" * 150) + h.pax_record(b"mtime", b"1600000000.5")),
        h.header(b"ignored", b"0", 3) + h.pad(b"abc"),
        h.header(b"././@LongLink", b"L", 20) + h.pad(b"gnu/long/name/here\x00"),
        h.header(b"x", b"2", linkname=b"/etc/passwd"),
        h.header(b"dev/null", b"3", mode=0o666),
        h.END,
    ]
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    edits=st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.integers(0, 255)), max_size=12),
    cut=st.integers(0, len(SEED)),
)
def test_mutated_archives_give_entries_or_invalid_argument(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(SEED)
    for position, value in edits:
        data[position] = value
    try:
        entries = read_all([bytes(data[:cut] if cut else data)])
    except InvalidArgument as exc:
        assert "Error" not in str(exc)
        return
    for entry in entries:
        assert len(entry.name) <= 4096 and len(entry.linkname) <= 4096


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(st.binary(min_size=0, max_size=4096))
def test_random_bytes_give_entries_or_invalid_argument(data: bytes) -> None:
    with contextlib.suppress(InvalidArgument):
        read_all([data])


_fields = st.builds(
    lambda name, flag, size, mtime, dev, records: (
        (h.pax(b"".join(h.pax_record(k, v) for k, v in records)) if records else b"")
        + h.header(name, flag, size, mtime=mtime, devmajor=dev)
        + h.pad(b"c" * min(size, 2048))
    ),
    name=st.binary(max_size=120),
    flag=st.sampled_from([b"0", b"1", b"2", b"3", b"5", b"7", b"L", b"K", b"x", b"g", b"S", b"\x00"]),
    size=st.integers(0, 4096),
    mtime=st.binary(min_size=12, max_size=12),
    dev=st.binary(min_size=8, max_size=8),
    records=st.lists(
        st.tuples(
            st.sampled_from([b"path", b"linkpath", b"size", b"mtime", b"uid", b"SCHILY.xattr.user.a", b"x"]),
            st.binary(max_size=40),
        ),
        max_size=3,
    ),
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.lists(_fields, max_size=5))
def test_archives_with_valid_checksums_and_arbitrary_fields(members: list[bytes]) -> None:
    try:
        read_all([*members, h.END])
    except InvalidArgument as exc:
        assert "Error" not in str(exc)


@pytest.mark.skipif(os.geteuid() != 0, reason="extraction sets owners and makes device nodes (root)")
@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(_fields, max_size=5), st.sampled_from(["overlay", "apply"]))
def test_extracting_arbitrary_members_gives_a_layer_or_invalid_argument(
    members: list[bytes], fmt: Literal["overlay", "apply"]
) -> None:
    with tempfile.TemporaryDirectory(dir="/var/tmp") as target:
        try:
            apply_diff(io.BytesIO(b"".join([*members, h.END])), Path(target), fmt, io.BytesIO())
        except InvalidArgument as exc:
            assert "Error" not in str(exc)

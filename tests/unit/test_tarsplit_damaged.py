"""A damaged tar-split file makes reassemble fail with FailedPrecondition naming the line, nothing else."""

from __future__ import annotations

import gzip
import io

import pytest

from crio.core.errors import FailedPrecondition
from crio.core.storage.tarsplit import reassemble

SEGMENT = b'{"type":2,"payload":"AAAA","position":0}\n'


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"type":2,"payload":"@@@","position":0}\n', "line 1: bad base64"),
        (b"[1, 2]\n", "line 1 is not a JSON object"),
        (b'{"type":1,"name":"f","size":"3","payload":"AAAAAAAAAAA=","position":0}\n', "is not a byte count"),
        (b'{"type":1,"name":"f","size":-3,"position":0}\n', "is not a byte count"),
        (b'{"type":2,"payload":7,"position":0}\n', "is not a string"),
        (b'{"type":1,"name_raw":5,"size":3,"payload":"AAAAAAAAAAA=","position":0}\n', "is not a string"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "is not JSON"),
        (b'{"type":9}\n', "unknown entry type 9"),
    ],
)
def test_damaged_lines(raw: bytes, message: str) -> None:
    with pytest.raises(FailedPrecondition, match=message):
        list(reassemble(io.BytesIO(gzip.compress(raw)), lambda name: io.BytesIO(b"abc")))


def test_a_file_that_is_not_gzip() -> None:
    with pytest.raises(FailedPrecondition, match="not valid gzip"):
        list(reassemble(io.BytesIO(b"plain text"), lambda name: io.BytesIO(b"abc")))
    with pytest.raises(FailedPrecondition, match="not valid gzip"):
        list(reassemble(io.BytesIO(gzip.compress(SEGMENT)[:-6]), lambda name: io.BytesIO(b"abc")))

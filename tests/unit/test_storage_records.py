"""containers/storage records: JSON keys, omitempty, timestamps, unknown keys, big-data names, digests."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from crio.core.errors import Internal, InvalidArgument
from crio.core.storage import records
from crio.core.storage.layerid import layer_id
from crio.core.storage.records import Container, Image, Layer

HEX = "0123456789abcdef" * 4
OTHER = "fedcba9876543210" * 4


def test_layer_round_trip_keeps_unknown_keys_and_exact_times() -> None:
    raw = {
        "id": HEX,
        "parent": OTHER,
        "created": "2024-05-01T10:20:30.123456789Z",
        "compressed-diff-digest": f"sha256:{HEX}",
        "compressed-size": 10,
        "diff-digest": f"sha256:{OTHER}",
        "diff-size": 2048,
        "compression": 2,
        "uidset": [0, 33],
        "gidset": [0],
        "toc-digest": f"sha256:{HEX}",  # a key of newer containers/storage
        "future": {"nested": [1, 2]},
    }
    layer = records.decode_records(json.dumps([raw]).encode(), Layer, "layers.json")[0]
    assert layer.diff_size == 2048 and layer.uidset == (0, 33) and layer.compression == 2
    assert layer.created == datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC)
    assert layer.to_json() == raw  # nanoseconds and unknown keys survive
    changed = dataclasses.replace(layer, diff_size=4096).to_json()
    assert changed["diff-size"] == 4096 and changed["future"] == {"nested": [1, 2]}
    assert changed["created"] == "2024-05-01T10:20:30.123456789Z"


def test_omitempty_rules() -> None:
    assert Layer(id=HEX).to_json() == {"id": HEX}
    assert Image(id=HEX).to_json() == {"id": HEX, "layer": ""}
    assert Container(id=HEX).to_json() == {"id": HEX, "image": "", "layer": ""}
    flagged = Layer(id=HEX, flags={"incomplete": True}, names=("a",))
    assert flagged.to_json() == {"id": HEX, "names": ["a"], "flags": {"incomplete": True}}
    assert flagged.incomplete


def test_empty_and_null_files_are_empty_stores() -> None:
    assert records.decode_records(b"", Image, "images.json") == []
    assert records.decode_records(b"null", Image, "images.json") == []
    with pytest.raises(Internal):
        records.decode_records(b"{", Image, "images.json")
    with pytest.raises(Internal):
        records.decode_records(b'[{"names": []}]', Image, "images.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5+02:00", datetime(2024, 1, 2, 1, 4, 5, 500000, tzinfo=UTC)),
        ("2024-01-02T03:04:05.123456789-01:30", datetime(2024, 1, 2, 4, 34, 5, 123456, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert records.parse_time(text) == expected


def test_format_time_is_go_rfc3339nano_in_utc() -> None:
    assert records.format_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05Z"
    assert records.format_time(datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)) == "2024-01-02T03:04:05.12Z"
    plus2 = timezone(timedelta(hours=2))
    assert (
        records.format_time(datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=plus2)) == "2024-01-02T01:04:05.000001Z"
    )
    assert records.format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    with pytest.raises(ValueError):
        records.parse_time("")


def test_image_keeps_offset_timestamp_until_changed() -> None:
    image = Image.from_json({"id": HEX, "created": "2023-06-01T12:00:00.000000001+02:00"})
    assert image.to_json()["created"] == "2023-06-01T12:00:00.000000001+02:00"
    later = dataclasses.replace(image, created=datetime(2023, 6, 2, tzinfo=UTC))
    assert later.to_json()["created"] == "2023-06-02T00:00:00Z"


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("manifest", "manifest"),
        ("signatures", "signatures"),
        ("config.json", "config.json"),
        ("abc:", "abc:"),  # the only bad rune is the last one: kept verbatim (Go quirk)
        ("Abc", "=" + base64.b64encode(b"Abc").decode()),
        (f"sha256:{HEX}", "=" + base64.b64encode(f"sha256:{HEX}".encode()).decode()),
        (f"manifest-sha256:{HEX}", "=" + base64.b64encode(f"manifest-sha256:{HEX}".encode()).decode()),
        ("abcé", "abcé"),  # a final multi-byte rune: verbatim too
        ("aé1", "=" + base64.b64encode("aé1".encode()).decode()),
    ],
)
def test_bigdata_filename(key: str, name: str) -> None:
    assert records.bigdata_filename(key) == name


def test_image_digests_recompute() -> None:
    manifest_digest = f"sha256:{HEX}"
    list_digest = f"sha256:{OTHER}"
    image = Image(
        id=HEX,
        big_data_names=(
            f"sha256:{HEX}",
            f"manifest-{list_digest}",
            f"manifest-{manifest_digest}",
            "manifest",
        ),
        big_data_digests={
            f"sha256:{HEX}": f"sha256:{'1' * 64}",  # not a manifest key: not searchable
            f"manifest-{list_digest}": list_digest,
            f"manifest-{manifest_digest}": manifest_digest,
            "manifest": manifest_digest,
        },
    )
    assert image.digests == (list_digest, manifest_digest)
    assert image.with_recomputed_digest().digest == list_digest
    explicit = dataclasses.replace(image, digest=manifest_digest)
    assert explicit.digests == (manifest_digest, list_digest)
    with pytest.raises(Internal):
        _ = dataclasses.replace(image, digest="sha256:short").digests
    with pytest.raises(Internal):
        _ = Image(id=HEX, big_data_digests={"manifest": "md5:x"}).digests


def test_encode_is_compact_array() -> None:
    data = records.encode_records([Image(id=HEX, names=("localhost/x:y",), metadata="{}")])
    assert data == f'[{{"id":"{HEX}","names":["localhost/x:y"],"layer":"","metadata":"{{}}"}}]'.encode()


def test_layer_id_formula() -> None:
    import hashlib

    assert layer_id(None, f"sha256:{HEX}") == HEX
    assert layer_id(OTHER, f"sha256:{HEX}") == hashlib.sha256(f"{OTHER}+{HEX}".encode()).hexdigest()
    with pytest.raises(InvalidArgument):
        layer_id(None, HEX)

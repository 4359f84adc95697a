"""The records of ``layers.json``, ``images.json`` and ``containers.json``, with their exact JSON encoding.

Each record is a frozen dataclass; the store never changes one in place (it replaces it), so records handed
to callers stay valid. Encoding follows the Go structs of containers/storage: the same keys, ``omitempty``
dropping "", 0, false and empty lists/maps, timestamps as RFC 3339 with up to nine fractional digits.
Keys this module does not know (written by a newer podman, say) are kept in ``extra`` and written back
unchanged, as are timestamps whose value did not change (so nanoseconds and offsets survive a rewrite).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

from crio.core.errors import Internal

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ID_RE = re.compile(r"^[0-9a-f]{64}$")
MANIFEST_PREFIX = "manifest"
INCOMPLETE_FLAG = "incomplete"

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


# --------------------------------------------------------------------------------------------- time


def parse_time(text: str) -> datetime:
    """Parse a Go ``time.Time`` JSON string (RFC 3339, any fraction, ``Z`` or ``±hh:mm``), timezone-aware.

    Fractions beyond microseconds are truncated (Python's resolution).
    """
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    if match.group(8):
        tz = UTC
    else:
        offset = timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
        tz = timezone(-offset if match.group(9) == "-" else offset)
    return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=tz)


def format_time(value: datetime) -> str:
    """Format a datetime as Go's ``time.Time`` JSON in UTC: ``2006-01-02T15:04:05.999999999Z``.

    Trailing zeros of the fraction are trimmed, and the fraction is left out when zero, as Go does. A naive
    datetime is taken as UTC.
    """
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    fraction = f"{utc.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------- big data


def bigdata_filename(key: str) -> str:
    """Return the file name containers/storage uses for big-data item ``key`` (``makeBigDataBaseName``).

    The key is scanned rune by rune up to the first one that is not ASCII ``[.0-9a-z]``; if anything follows
    that rune the name is ``"=" + base64(key)``, else (no such rune, or it is the very last one) the key
    itself.
    """
    raw = key.encode("utf-8", "surrogateescape")
    pos = 0
    while pos < len(raw):
        size = _rune_size(raw, pos)
        ch = raw[pos]
        pos += size
        if size != 1 or not (ch == 0x2E or 0x30 <= ch <= 0x39 or 0x61 <= ch <= 0x7A):
            break
    if pos < len(raw):
        return "=" + base64.b64encode(raw).decode("ascii")
    return key


def _rune_size(raw: bytes, pos: int) -> int:
    """Bytes Go's ``ReadRune`` consumes at ``pos`` (1 for ASCII and for invalid UTF-8)."""
    if raw[pos] < 0x80:
        return 1
    for size in (2, 3, 4):
        try:
            raw[pos : pos + size].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return size
    return 1


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def bigdata_digest(key: str, data: bytes) -> str:
    """The digest containers/storage records for an image big-data item (manifest keys and others alike)."""
    return sha256_digest(data)


def valid_digest(value: str) -> bool:
    """Whether ``value`` is a well-formed ``sha256:<64 hex>`` digest."""
    return bool(DIGEST_RE.match(value))


# ------------------------------------------------------------------------------------------- codec

# Field kinds: str, strs (list of str), int, ints (list of uint32), time, map (object), idmap (list of
# objects), sizes ({key: int}), digests ({key: str}).


def _key(name: str, kind: str, omitempty: bool = True) -> Any:
    """Dataclass field metadata: the JSON key, its kind and whether it is ``omitempty``."""
    return {"key": name, "kind": kind, "omitempty": omitempty}


def _decode_value(kind: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    try:
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if kind in ("strs", "ints"):
            want: type = str if kind == "strs" else int
            if not isinstance(value, list) or not all(isinstance(v, want) for v in value):
                raise TypeError
            return tuple(value)
        if kind == "time":
            return parse_time(value)
        if kind in ("map", "sizes", "digests"):
            if not isinstance(value, dict):
                raise TypeError
            return dict(value)
        if kind == "idmap":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise TypeError
            return tuple(dict(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise Internal(f"{where}: bad value {value!r}") from exc
    raise AssertionError(kind)


def _encode_value(kind: str, value: Any) -> Any:
    if kind in ("strs", "ints", "idmap"):
        return list(value)
    if kind == "time":
        return format_time(value)
    if kind in ("map", "sizes", "digests"):
        return dict(value)
    return value


def _is_empty(value: Any) -> bool:
    return value is None or value in ("", 0, False) or (hasattr(value, "__len__") and len(value) == 0)


R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    """Common encoding of the three record types.

    ``extra`` holds the JSON keys this module does not know; ``created_text`` the ``created`` string as read
    (written back verbatim while ``created`` keeps the value it denotes).
    """

    id: str = field(default="", metadata=_key("id", "str", omitempty=False))
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    created_text: str = field(default="", compare=False, repr=False)

    @classmethod
    def from_json(cls: type[R], obj: Mapping[str, Any]) -> R:
        """Decode one JSON object; unknown keys go to ``extra``."""
        if not isinstance(obj, Mapping):
            raise Internal(f"{cls.__name__} record is not an object: {obj!r}")
        known: dict[str, Any] = {}
        seen: set[str] = set()
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if not meta:
                continue
            seen.add(meta["key"])
            if meta["key"] in obj:
                value = _decode_value(meta["kind"], obj[meta["key"]], f"{cls.__name__}.{meta['key']}")
                if value is not None:
                    known[f.name] = value
        if not known.get("id"):
            raise Internal(f"{cls.__name__} record without an id: {obj!r}")
        extra = {k: v for k, v in obj.items() if k not in seen}
        created = obj.get("created")
        return cls(**known, extra=extra, created_text=created if isinstance(created, str) else "")

    def to_json(self) -> dict[str, Any]:
        """Encode as the Go struct would, followed by the unknown keys this record was read with."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            meta = f.metadata
            if not meta:
                continue
            value = getattr(self, f.name)
            if meta["omitempty"] and _is_empty(value):
                continue
            if meta["kind"] == "time" and value is not None:
                text = self.created_text
                out[meta["key"]] = text if text and _same_time(text, value) else format_time(value)
                continue
            out[meta["key"]] = _encode_value(meta["kind"], value) if value is not None else None
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


def _same_time(text: str, value: datetime) -> bool:
    try:
        return parse_time(text) == value
    except ValueError:
        return False


@dataclass(frozen=True)
class Layer(Record):
    """A ``layers.json`` record (containers/storage ``Layer``)."""

    names: tuple[str, ...] = field(default=(), metadata=_key("names", "strs"))
    parent: str = field(default="", metadata=_key("parent", "str"))
    metadata: str = field(default="", metadata=_key("metadata", "str"))
    mountlabel: str = field(default="", metadata=_key("mountlabel", "str"))
    created: datetime | None = field(default=None, metadata=_key("created", "time"))
    compressed_digest: str = field(default="", metadata=_key("compressed-diff-digest", "str"))
    compressed_size: int = field(default=0, metadata=_key("compressed-size", "int"))
    diff_digest: str = field(default="", metadata=_key("diff-digest", "str"))
    diff_size: int = field(default=0, metadata=_key("diff-size", "int"))
    compression: int = field(default=0, metadata=_key("compression", "int"))
    uidset: tuple[int, ...] = field(default=(), metadata=_key("uidset", "ints"))
    gidset: tuple[int, ...] = field(default=(), metadata=_key("gidset", "ints"))
    flags: Mapping[str, Any] = field(default_factory=dict, metadata=_key("flags", "map"))
    uidmap: tuple[Mapping[str, int], ...] = field(default=(), metadata=_key("uidmap", "idmap"))
    gidmap: tuple[Mapping[str, int], ...] = field(default=(), metadata=_key("gidmap", "idmap"))
    big_data_names: tuple[str, ...] = field(default=(), metadata=_key("big-data-names", "strs"))

    @property
    def incomplete(self) -> bool:
        """Whether the layer is being created or deleted (or was left so by a crash)."""
        return bool(self.flags.get(INCOMPLETE_FLAG))


@dataclass(frozen=True)
class Image(Record):
    """An ``images.json`` record (containers/storage ``Image``)."""

    digest: str = field(default="", metadata=_key("digest", "str"))
    names: tuple[str, ...] = field(default=(), metadata=_key("names", "strs"))
    names_history: tuple[str, ...] = field(default=(), metadata=_key("names-history", "strs"))
    layer: str = field(default="", metadata=_key("layer", "str", omitempty=False))
    mapped_layers: tuple[str, ...] = field(default=(), metadata=_key("mapped-layers", "strs"))
    metadata: str = field(default="", metadata=_key("metadata", "str"))
    big_data_names: tuple[str, ...] = field(default=(), metadata=_key("big-data-names", "strs"))
    big_data_sizes: Mapping[str, int] = field(default_factory=dict, metadata=_key("big-data-sizes", "sizes"))
    big_data_digests: Mapping[str, str] = field(
        default_factory=dict, metadata=_key("big-data-digests", "digests")
    )
    created: datetime | None = field(default=None, metadata=_key("created", "time"))
    flags: Mapping[str, Any] = field(default_factory=dict, metadata=_key("flags", "map"))

    @property
    def top_layer(self) -> str:
        """The ID of the image's topmost layer ("" for an image without layers)."""
        return self.layer

    @property
    def digests(self) -> tuple[str, ...]:
        """The searchable digests (containers/storage ``recomputeDigests``).

        ``digest`` first, then every distinct digest of a big-data item whose key starts with ``manifest``
        (in big-data order). Raises :class:`Internal` for a malformed one, as the Go store refuses to load.
        """
        result: list[str] = []
        if self.digest:
            if not valid_digest(self.digest):
                raise Internal(f"image {self.id}: invalid digest {self.digest!r}")
            result.append(self.digest)
        keys = [k for k in self.big_data_names if k in self.big_data_digests]
        keys += [k for k in self.big_data_digests if k not in keys]
        for key in keys:
            if not key.startswith(MANIFEST_PREFIX):
                continue
            value = self.big_data_digests[key]
            if not valid_digest(value):
                raise Internal(f"image {self.id}: invalid digest {value!r} of big data {key!r}")
            if value not in result:
                result.append(value)
        return tuple(result)

    def with_recomputed_digest(self) -> Image:
        """Return the record with ``digest`` filled from its first manifest digest when it is empty."""
        if self.digest:
            return self
        digests = self.digests
        return dataclasses.replace(self, digest=digests[0]) if digests else self


@dataclass(frozen=True)
class Container(Record):
    """A ``containers.json`` record (containers/storage ``Container``)."""

    names: tuple[str, ...] = field(default=(), metadata=_key("names", "strs"))
    image: str = field(default="", metadata=_key("image", "str", omitempty=False))
    layer: str = field(default="", metadata=_key("layer", "str", omitempty=False))
    metadata: str = field(default="", metadata=_key("metadata", "str"))
    big_data_names: tuple[str, ...] = field(default=(), metadata=_key("big-data-names", "strs"))
    big_data_sizes: Mapping[str, int] = field(default_factory=dict, metadata=_key("big-data-sizes", "sizes"))
    big_data_digests: Mapping[str, str] = field(
        default_factory=dict, metadata=_key("big-data-digests", "digests")
    )
    created: datetime | None = field(default=None, metadata=_key("created", "time"))
    uidmap: tuple[Mapping[str, int], ...] = field(default=(), metadata=_key("uidmap", "idmap"))
    gidmap: tuple[Mapping[str, int], ...] = field(default=(), metadata=_key("gidmap", "idmap"))
    flags: Mapping[str, Any] = field(default_factory=dict, metadata=_key("flags", "map"))


# --------------------------------------------------------------------------------------------- files


def decode_records(data: bytes, cls: type[R], what: str) -> list[R]:
    """Decode a whole JSON file (an array; empty or ``null`` = no records). Raises :class:`Internal`."""
    if not data.strip():
        return []
    try:
        items = json.loads(data)
    except ValueError as exc:
        raise Internal(f"{what}: not valid JSON: {exc}") from exc
    if items is None:
        return []
    if not isinstance(items, list):
        raise Internal(f"{what}: not a JSON array")
    return [cls.from_json(item) for item in items]


def encode_records(records: Sequence[Record]) -> bytes:
    """Encode records as the compact JSON array Go's encoder writes."""
    return json.dumps([r.to_json() for r in records], separators=(",", ":"), ensure_ascii=False).encode()

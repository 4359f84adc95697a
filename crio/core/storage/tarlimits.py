"""Hard limits on what one layer's tar stream may ask of the daemon, and the checks that enforce them.

A registry serves whatever it likes and crio unpacks it as root, so every quantity that costs memory,
descriptors or time per byte of input is bounded, and each bound is checked before the memory is taken:

* ``MAX_NAME`` bytes for an entry's name and link name (after PAX and GNU long-name headers are merged;
  a GNU long-name header larger than that is refused before it is read). Linux's PATH_MAX is 4096.
* ``MAX_DEPTH`` path components in a name (and in a hard link's target, which is walked too).
* ``MAX_META`` bytes for one PAX or GNU long name/link header (Go's ``archive/tar`` limit), at most
  ``MAX_META_TOTAL`` bytes and ``MAX_META_HEADERS`` such headers before one entry (they are kept until
  the entry arrives, for the tar-split file).
* ``MAX_ENTRIES`` entries per layer (each costs a few dozen bytes of bookkeeping until the layer ends).
* ``MAX_DIR_NAME_BYTES`` bytes of directory names per layer (their times are set once the layer is
  written, so their names are kept until then).
* ``MAX_TRAILER`` bytes of data after the end-of-archive blocks (kept in the tar-split file verbatim).
* numbers: base-256 fields and PAX numbers must fit Go's ``int64``; device numbers must fit 32 bits.

Each refusal is an :class:`InvalidArgument` that names the limit and the entry; the pull adds the image.
"""

from __future__ import annotations

from crio.core.errors import InvalidArgument

MAX_NAME = 4096
MAX_DEPTH = 256
MAX_META = 1 << 20
MAX_META_TOTAL = 4 << 20
MAX_META_HEADERS = 16
MAX_ENTRIES = 500_000
MAX_DIR_NAME_BYTES = 64 << 20
MAX_TRAILER = 4 << 20
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MAX_DEVICE_NUMBER = 0xFFFFFFFF

_SHOWN = 100  # characters of a name shown in a message


class LimitExceeded(InvalidArgument):
    """A layer's tar stream exceeds one of this module's limits (a kind of bad input)."""


def shown(name: bytes) -> str:
    """``name`` for a message: decoded, and cut to its first characters if it is long."""
    text = name[: _SHOWN * 4].decode("utf-8", "backslashreplace")
    if len(text) > _SHOWN or len(name) > _SHOWN * 4:
        return f"{text[:_SHOWN]!r}... ({len(name)} bytes)"
    return repr(text)


def depth(name: bytes) -> int:
    """The number of path components of ``name`` (empty and ``.`` components do not count)."""
    return sum(1 for part in name.split(b"/") if part and part != b".")


def check_name(name: bytes, what: str, entry: bytes, walked: bool = True) -> None:
    """Refuse a name longer than ``MAX_NAME`` bytes or, if it is ``walked`` (a path crio resolves
    itself, not a symlink's target), deeper than ``MAX_DEPTH`` components; ``entry`` names the entry."""
    if len(name) > MAX_NAME:
        raise LimitExceeded(
            f"tar entry {shown(entry)}: {what} of {len(name)} bytes exceeds the name length limit "
            f"({MAX_NAME} bytes)"
        )
    if walked and name.count(b"/") >= MAX_DEPTH and depth(name) > MAX_DEPTH:
        raise LimitExceeded(
            f"tar entry {shown(entry)}: {what} with {depth(name)} path components exceeds the path depth "
            f"limit ({MAX_DEPTH})"
        )


def check_int64(value: int, what: str) -> int:
    """``value`` if it fits Go's ``int64``, else a refusal naming ``what``."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidArgument(f"invalid tar stream: {what} does not fit in 64 bits")
    return value

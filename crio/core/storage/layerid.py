"""Layer IDs as containers/image computes them when it commits an image to containers/storage.

Using the same formula lets podman and skopeo reuse layers crio pulled, and the other way round.
"""

from __future__ import annotations

import hashlib
import os

from crio.core.errors import InvalidArgument
from crio.core.storage.records import DIGEST_RE, ID_RE


def layer_id(parent_id: str | None, diff_id: str) -> str:
    """Return the ID of the layer with uncompressed digest ``diff_id`` on top of ``parent_id``.

    Base layer: the hex of ``diff_id``; otherwise ``sha256_hex(parent_id + "+" + diff_id_hex)`` (hex strings,
    no ``sha256:`` prefix; this is not the OCI ChainID).
    """
    if not DIGEST_RE.match(diff_id):
        raise InvalidArgument(f"invalid diff ID {diff_id!r}: want sha256:<64 lowercase hex>")
    hex_part = diff_id.removeprefix("sha256:")
    if not parent_id:
        return hex_part
    return hashlib.sha256(f"{parent_id}+{hex_part}".encode()).hexdigest()


def random_id() -> str:
    """A random 64-hex ID (containers/storage ``stringid.GenerateRandomID``: never all digits)."""
    while True:
        candidate = os.urandom(32).hex()
        if not candidate.isdigit():
            return candidate


def is_id(value: str) -> bool:
    """Whether ``value`` is a full 64-hex ID."""
    return bool(ID_RE.match(value))

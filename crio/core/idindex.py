"""Lookup of pods and containers by full ID or unique ID prefix, as CRI clients may abbreviate IDs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from crio.core.errors import InvalidArgument, NotFound

T = TypeVar("T")


def by_id_or_prefix(table: Mapping[str, T], id_or_prefix: str, kind: str) -> T:
    """The object of ``table`` whose ID is ``id_or_prefix`` or uniquely starts with it.

    Raises InvalidArgument for an empty or ambiguous prefix and NotFound when nothing matches; ``kind``
    ("pod sandbox", "container") names the object in the message.
    """
    if not id_or_prefix:
        raise InvalidArgument(f"{kind} ID is empty")
    found = table.get(id_or_prefix)
    if found is not None:
        return found
    matches = [obj for key, obj in table.items() if key.startswith(id_or_prefix)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgument(f"{kind} ID prefix {id_or_prefix} is ambiguous ({len(matches)} match)")
    raise NotFound(f"{kind} {id_or_prefix} not found")

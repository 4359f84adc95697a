"""How stored image names become CRI repo tags and repo digests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DIGEST_PREFIX = "sha256:"


def split_name(name: str) -> tuple[str, str, str]:
    """Split a stored name into (repository, tag, digest); either of tag and digest may be empty."""
    repo, _, digest = name.partition("@")
    slash = repo.rfind("/")
    colon = repo.rfind(":")
    tag = ""
    if colon > slash:
        repo, tag = repo[:colon], repo[colon + 1 :]
    return repo, tag, digest


def repo_tags(names: Iterable[str]) -> list[str]:
    """The names that carry a tag (``repo:tag``), in stored order."""
    tags = []
    for name in names:
        repo, tag, digest = split_name(name)
        if tag and not digest:
            tags.append(f"{repo}:{tag}")
    return tags


def repo_digests(names: Iterable[str], digests: Sequence[str]) -> list[str]:
    """``repo@digest`` for every repository the image is known under and each of its manifest digests.

    A name stored by digest keeps exactly that digest; tagged names contribute the image's own digests.
    """
    result: list[str] = []
    for name in names:
        repo, _, digest = split_name(name)
        for candidate in [digest] if digest else digests:
            if candidate:
                entry = f"{repo}@{candidate}"
                if entry not in result:
                    result.append(entry)
    return result


def looks_like_id(text: str) -> bool:
    """True for a full or abbreviated hex image ID, with or without the ``sha256:`` prefix."""
    hex_part = text.removeprefix(DIGEST_PREFIX)
    return 3 <= len(hex_part) <= 64 and all(c in "0123456789abcdef" for c in hex_part)

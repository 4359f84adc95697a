"""Path helpers of spec generation."""

from __future__ import annotations

import posixpath


def clean_absolute(path: str) -> str:
    """An absolute path in canonical form: one leading slash, no ``.``, ``..`` or repeated slashes."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")

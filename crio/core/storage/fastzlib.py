"""zlib, or ISA-L's faster drop-in replacement (package ``isal``) when it is installed."""

from __future__ import annotations

import types
import zlib

zlib_impl: types.ModuleType
FAST_LEVEL: int
try:  # ISA-L inflates about twice as fast as zlib and deflates several times faster, with the same API
    from isal import isal_zlib

    zlib_impl, FAST_LEVEL = isal_zlib, 2
except ImportError:  # pragma: no cover - optional speed-up
    zlib_impl, FAST_LEVEL = zlib, 1

"""Localhost seccomp profiles: read from an absolute host path, validated, and cached by content.

A profile path must be absolute and name a regular file of at most :data:`MAX_PROFILE_SIZE` bytes holding a
valid seccomp.json document. A missing file is NotFound; a relative path, an unreadable or special file, a
too large file or a malformed document is InvalidArgument. The file is opened with ``O_NONBLOCK`` and checked
with ``fstat`` before it is read, so a FIFO or a device named as a profile cannot block or flood the daemon.
Parsed profiles are kept by the SHA-256 of their bytes, so an edited file is parsed again and many
containers naming the same profile share one parse.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable

from crio.core.errors import InvalidArgument, NotFound
from crio.plugins.seccomp.profile import Profile, parse_profile

MAX_PROFILE_SIZE = 1 << 20
CACHE_ENTRIES = 64


def read_profile_file(path: str, limit: int = MAX_PROFILE_SIZE) -> bytes:
    """The bytes of the profile file ``path`` (see the module docstring for what is refused)."""
    if not path or not os.path.isabs(path):
        raise InvalidArgument(f"seccomp localhost profile {path!r} is not an absolute path")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"seccomp localhost profile {path} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"seccomp localhost profile {path} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"seccomp localhost profile {path} is not a regular file")
        if info.st_size > limit:
            raise InvalidArgument(f"seccomp localhost profile {path} is larger than {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            try:
                data = handle.read(limit + 1)
            except OSError as exc:
                raise InvalidArgument(
                    f"seccomp localhost profile {path} cannot be read: {exc.strerror}"
                ) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InvalidArgument(f"seccomp localhost profile {path} is larger than {limit} bytes")
    return data


def decode_profile(data: bytes, source: str) -> Profile:
    """Parse and validate profile bytes; ``source`` names them in errors."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"seccomp profile {source} is not valid JSON: {exc}") from None
    try:
        return parse_profile(document)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{source}: {exc}") from None


class ProfileCache:
    """Parsed profiles by the SHA-256 of their bytes (least recently used ones dropped); thread-safe."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._parsed: OrderedDict[str, Profile] = OrderedDict()
        self._lock = threading.Lock()
        self.parses = 0

    def get(self, data: bytes, source: str, check: Callable[[Profile], None] | None = None) -> Profile:
        """The parsed profile of ``data``: from the cache, or parsed (and ``check``-ed) and cached."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            found = self._parsed.get(digest)
            if found is not None:
                self._parsed.move_to_end(digest)
                return found
        profile = decode_profile(data, source)
        if check is not None:
            check(profile)
        with self._lock:
            self.parses += 1
            self._parsed[digest] = profile
            while len(self._parsed) > self.entries:
                self._parsed.popitem(last=False)
        return profile

    def load(self, path: str, check: Callable[[Profile], None] | None = None) -> Profile:
        """Read, validate and cache the localhost profile at ``path``."""
        return self.get(read_profile_file(path), path, check)

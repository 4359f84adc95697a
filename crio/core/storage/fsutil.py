"""File-tree helpers the storage driver plugins share (a deliberately small public surface)."""

from __future__ import annotations

import os
from pathlib import Path


def directory_usage(root: Path) -> tuple[int, int]:
    """``(bytes, inodes)`` of the tree under ``root``, as containers/storage's ``directory.Usage`` counts.

    Apparent file sizes; every inode (so every set of hard links) counted once; ``root`` itself is one
    inode of size zero.
    """
    st = os.lstat(root)
    seen: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    total = 0
    stack = [str(root)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            key = (info.st_dev, info.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += info.st_size
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return total, len(seen)

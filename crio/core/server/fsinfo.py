"""ImageFsInfo before the image store exists: the usage of the whole graph root, measured for real."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from grpc import aio

from crio.core.api import api_pb2 as pb


def tree_usage(root: Path) -> tuple[int, int]:
    """Return (bytes allocated, inodes) under ``root``, counting hard-linked files once."""
    seen: set[tuple[int, int]] = set()
    used = inodes = 0
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files, "."] if directory == str(root) else [*dirs, *files]:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            used += st.st_blocks * 512
            inodes += 1
    return used, inodes


class GraphRootFsInfo:
    """Serves ImageFsInfo from the graph root's usage (the image store replaces this)."""

    def __init__(self, graphroot: Path) -> None:
        self.graphroot = graphroot

    async def ImageFsInfo(
        self, request: pb.ImageFsInfoRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ImageFsInfoResponse:
        """Bytes and inodes used under the graph root."""
        used, inodes = await asyncio.to_thread(tree_usage, self.graphroot)
        usage = pb.FilesystemUsage(
            timestamp=time.time_ns(),
            fs_id=pb.FilesystemIdentifier(mountpoint=str(self.graphroot)),
            used_bytes=pb.UInt64Value(value=used),
            inodes_used=pb.UInt64Value(value=inodes),
        )
        return pb.ImageFsInfoResponse(image_filesystems=[usage])

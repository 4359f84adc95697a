"""libcni's result cache: one JSON file per attachment under ``<cache dir>/results``.

The file ``<network name>-<container id>-<ifname>`` holds::

    {"kind": "cniCacheV1", "containerId": ..., "config": <base64 of the network list's JSON>,
     "ifName": ..., "networkName": ..., "netns": ..., "cniArgs": [[key, value], ...],
     "capabilityArgs": {...}, "result": {...}}

(``netns``, ``cniArgs``, ``capabilityArgs`` and ``result`` are left out when empty), so other libcni users
on the node (podman, containerd, ``cnitool``) read crio's entries and crio reads theirs. crio adds one key
libcni ignores, ``"owner"``, naming the daemon that wrote the entry (:func:`owner_for` its graph root), so
that its GC never touches the attachments of other runtimes, or of another crio with another root, that
share the directory (and possibly the network name). Synchronous file I/O: callers on the event loop run
these functions in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIND = "cniCacheV1"
OWNER = "crio"
# The graph root of a daemon on its defaults ([crio] root); its entries carry the plain OWNER tag.
DEFAULT_ROOT = "/var/lib/containers/storage"
DEFAULT_CACHE_DIR = "/var/lib/cni"
RESULTS = "results"


@dataclass(frozen=True)
class Attachment:
    """One cached attachment of a container to a network (libcni's ``NetworkAttachment`` + result)."""

    container_id: str
    network_name: str
    ifname: str
    config: bytes
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None
    owner: str = ""


def owner_for(root: str) -> str:
    """The owner tag of the daemon whose graph root is ``root``.

    ``crio`` for the default root (the tag every crio entry had before daemons were told apart, so a node's
    existing entries stay its main daemon's), ``crio:<absolute root>`` for any other root. Two daemons
    cannot share a root (the store is locked), so the tag tells daemons on one node apart.
    """
    path = os.path.normpath(os.path.abspath(root or DEFAULT_ROOT))
    return OWNER if path == DEFAULT_ROOT else f"{OWNER}:{path}"


def path_for(cache_dir: str | Path, network_name: str, container_id: str, ifname: str) -> Path:
    """The cache file of one attachment."""
    return Path(cache_dir) / RESULTS / f"{network_name}-{container_id}-{ifname}"


def encode(attachment: Attachment) -> bytes:
    """The cache file's content, keys in libcni's order."""
    data: dict[str, Any] = {
        "kind": KIND,
        "containerId": attachment.container_id,
        "config": base64.b64encode(attachment.config).decode(),
        "ifName": attachment.ifname,
        "networkName": attachment.network_name,
    }
    if attachment.netns:
        data["netns"] = attachment.netns
    if attachment.cni_args:
        data["cniArgs"] = [list(pair) for pair in attachment.cni_args]
    if attachment.capability_args:
        data["capabilityArgs"] = dict(attachment.capability_args)
    if attachment.result is not None:
        data["result"] = dict(attachment.result)
    if attachment.owner:
        data["owner"] = attachment.owner
    return json.dumps(data, separators=(",", ":")).encode()


def decode(content: bytes) -> Attachment:
    """Parse a cache file; raises ValueError for anything that is not a usable cniCacheV1 entry."""
    data = json.loads(content)
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError("not a cniCacheV1 entry")
    try:
        config = base64.b64decode(str(data.get("config", "")), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad config: {exc}") from None
    args = data.get("cniArgs") or []
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in args):
        raise ValueError("bad cniArgs")
    caps = data.get("capabilityArgs") or {}
    result = data.get("result")
    if not isinstance(caps, dict) or (result is not None and not isinstance(result, dict)):
        raise ValueError("bad capabilityArgs or result")
    return Attachment(
        container_id=str(data.get("containerId", "")),
        network_name=str(data.get("networkName", "")),
        ifname=str(data.get("ifName", "")),
        config=config,
        netns=str(data.get("netns", "") or ""),
        cni_args=tuple((str(k), str(v)) for k, v in args),
        capability_args=caps,
        result=result,
        owner=str(data.get("owner", "") or ""),
    )


def write(cache_dir: str | Path, attachment: Attachment) -> Path:
    """Store an attachment atomically (mode 0600 in a 0700 directory); returns the file."""
    path = path_for(cache_dir, attachment.network_name, attachment.container_id, attachment.ifname)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode(attachment))
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    return path


def read(path: str | Path) -> Attachment | None:
    """The attachment cached in ``path``; None when absent or unusable (libcni ignores those too)."""
    try:
        return decode(Path(path).read_bytes())
    except (OSError, ValueError):
        return None


def remove(cache_dir: str | Path, network_name: str, container_id: str, ifname: str) -> None:
    """Delete an attachment's cache file (absent is fine)."""
    with contextlib.suppress(FileNotFoundError):
        path_for(cache_dir, network_name, container_id, ifname).unlink()


def attachments(cache_dir: str | Path, container_id: str = "") -> list[Attachment]:
    """Every usable cached attachment, by file name; only ``container_id``'s when given."""
    directory = Path(cache_dir) / RESULTS
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if container_id and f"-{container_id}-" not in name:
            continue
        attachment = read(directory / name)
        if attachment is None or not attachment.ifname or not attachment.network_name:
            continue
        if container_id and attachment.container_id != container_id:
            continue
        found.append(attachment)
    return found

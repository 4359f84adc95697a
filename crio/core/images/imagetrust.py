"""The signature policy applied to images: at pull (signatures fetched from the source) and again when a
container is created from a stored image (signatures kept in the store at pull).

Which policy applies: for a pod in namespace X, ``<signature_policy_dir>/X.json`` when that file exists,
else ``signature_policy`` (empty: /etc/containers/policy.json), as CRI-O does. A policy file that is missing
refuses every pull and create with FAILED_PRECONDITION, as containers/image does: running unverified images
because a file went missing would be the wrong failure mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from crio.core.config import Config
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.images.manifest import manifest_digest
from crio.core.images.reference import DOCKER, DockerReference, parse_docker_reference
from crio.core.images.trust import policy as policymod
from crio.core.images.trust.evaluate import CandidateImage, evaluate
from crio.core.images.trust.signature import (
    Signature,
    decode_signatures,
    signatures_big_data_key,
)
from crio.core.types import ImageReference, ImageSource

log = logging.getLogger(__name__)

DEFAULT_POLICY = "/etc/containers/policy.json"


class ImageTrust:
    """Loads the policy that applies to a namespace and checks images against it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # The last policy that parsed, per file: a file broken later keeps this one in force (logged).
        self._good: dict[str, policymod.Policy] = {}
        self._warned: dict[str, str] = {}

    def policy_path(self, namespace: str = "") -> str:
        """The policy file for pods in ``namespace`` ("" = the global one)."""
        if namespace:
            if "/" in namespace or "\0" in namespace or namespace in (".", ".."):
                raise InvalidArgument(f"pod namespace {namespace!r} cannot name a policy file")
            directory = str(self.config.get("crio.image.signature_policy_dir"))
            if directory:
                candidate = os.path.join(directory, namespace + ".json")
                if os.path.exists(candidate):
                    return candidate
        return str(self.config.get("crio.image.signature_policy")) or DEFAULT_POLICY

    def load(self, namespace: str = "") -> tuple[str, policymod.Policy]:
        """The applicable policy and its path (FailedPrecondition when the file does not exist)."""
        path = self.policy_path(namespace)
        if not os.path.exists(path):
            raise FailedPrecondition(f"no signature policy: {path} does not exist")
        try:
            policy = policymod.load_policy(path)
        except InvalidArgument as exc:
            good = self._good.get(path)
            if good is None:
                raise
            if self._warned.get(path) != str(exc):
                self._warned[path] = str(exc)
                log.warning("%s; keeping the policy loaded before", exc)
            return path, good
        self._good[path] = policy
        self._warned.pop(path, None)
        return path, policy

    def validate(self) -> list[str]:
        """Parse the global policy (when present) and every per-namespace policy, raising
        :class:`InvalidArgument` (file, line, problem) for a malformed one; return warnings: a missing
        global policy, keys that do not load (pulls needing them will be refused)."""
        warnings: list[str] = []
        paths = []
        path = self.policy_path()
        if os.path.exists(path):
            paths.append(path)
        else:
            warnings.append(f"no signature policy at {path}: every pull is refused until it exists")
        directory = str(self.config.get("crio.image.signature_policy_dir"))
        if directory and os.path.isdir(directory):
            paths += [
                os.path.join(directory, n) for n in sorted(os.listdir(directory)) if n.endswith(".json")
            ]
        for one in paths:
            policy = policymod.load_policy(one)
            self._good[one] = policy
            warnings += policy.validate_keys()
        return warnings

    async def verify_source(
        self, ref: ImageReference, source: ImageSource, top_manifest: bytes, namespace: str
    ) -> Sequence[Signature]:
        """Check the image ``source`` serves for ``ref`` (its top-level manifest given) before any layer is
        fetched and return the signatures it fetched (to be kept with the image); raises PermissionDenied
        with every reason when the policy refuses it."""
        path, policy = await asyncio.to_thread(self.load, namespace)
        requirements = policy.requirements_for(ref.transport, ref.name)
        signatures: Sequence[Signature] = []
        getter = getattr(source, "get_signatures", None)
        if getter is not None and policymod.needs_signatures(requirements):
            digest = manifest_digest(top_manifest)
            signatures = await getter(digest, policymod.needs_sigstore(requirements))
        await evaluate(requirements, CandidateImage(_docker_ref(ref), top_manifest, signatures, path))
        return signatures

    async def verify_stored(
        self, image: Any, requested: str, namespace: str, read_big_data: Callable[[str], Awaitable[bytes]]
    ) -> None:
        """Check a stored image before a container is created from it, with the signatures kept at pull.

        ``requested`` is the name the client used (or the image ID; the image's first name then stands in).
        ``read_big_data(key)`` returns one of the image's big-data items (b"" when absent).
        """
        path, policy = await asyncio.to_thread(self.load, namespace)
        name = _identity_name(image, requested)
        requirements = policy.requirements_for(DOCKER, name)  # "": the transport default, then default
        top_digest = str(getattr(image, "digest", "") or "")
        manifest = await read_big_data(f"manifest-{top_digest}") if top_digest else b""
        signatures: Sequence[Signature] = []
        if manifest and policymod.needs_signatures(requirements):
            blob = await read_big_data(signatures_big_data_key(top_digest))
            signatures = decode_signatures(blob) if blob else []
        ref = parse_docker_reference(name) if name else None
        await evaluate(requirements, CandidateImage(ref, manifest, signatures, path))


def _docker_ref(ref: ImageReference) -> DockerReference | None:
    if ref.transport != DOCKER:
        return None
    return parse_docker_reference(ref.name)


def _identity_name(image: Any, requested: str) -> str:
    """The docker reference a stored image is judged under: the requested name when it is one of the
    image's names (or names its repository by digest), else the image's first name."""
    names = list(getattr(image, "names", []) or [])
    try:
        wanted = str(parse_docker_reference(requested))
    except InvalidArgument:
        wanted = ""
    if wanted and (wanted in names or "@" in wanted):
        return wanted
    return names[0] if names else ""

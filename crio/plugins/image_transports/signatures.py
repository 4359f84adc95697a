"""Fetching an image's signatures for the signature policy: lookaside stores and sigstore attachments.

Where signatures live follows containers-registries.d(5): a scope's ``lookaside`` URL (``file://`` or
``http(s)://``; with none configured, file:///var/lib/containers/sigstore, which containers/image reads)
holds simple-signing signatures as ``signature-1``, ``signature-2``… (the first missing one ends the
list); ``use-sigstore-attachments`` makes the registry's ``sha256-<hex>.sig`` tag an OCI manifest
whose layers are sigstore payloads. The lookaside location is chosen by the *requested* reference (a mirror
serves the same image); attachments are read from the repository actually pulled from.

Every signature is capped at :data:`MAX_SIGNATURE_SIZE`; a larger one is an error, not a skip, so a policy
never silently ignores what the registry offered.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import urllib.parse
from collections.abc import Sequence

import httpx

from crio.core.errors import CrioError, InvalidArgument, NotFound, Unavailable
from crio.core.images.reference import DockerReference
from crio.core.images.trust.registries_d import BUILTIN_LOOKASIDE, load_registries_d, lookaside_url
from crio.core.images.trust.signature import MAX_SIGNATURE_SIZE, Signature, signature_from_blob
from crio.core.urlredact import loggable_url
from crio.plugins.image_transports.client import RegistryClient

SIGSTORE_LAYER_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# A registry or lookaside store offering more signatures than this is refused rather than read forever.
MAX_SIGNATURES = 64
LOOKASIDE_TIMEOUT = 30.0


def attachment_tag(manifest_digest: str) -> str:
    """The tag under which sigstore attachments of ``manifest_digest`` are stored: ``sha256-<hex>.sig``."""
    algorithm, _, encoded = manifest_digest.partition(":")
    return f"{algorithm}-{encoded}.sig"


def _too_large(what: str, size: int | str) -> InvalidArgument:
    return InvalidArgument(f"signature too large: {what} is {size} bytes (limit {MAX_SIGNATURE_SIZE})")


async def _read_capped(client: RegistryClient, path: str, accept: str, what: str) -> bytes | None:
    """GET ``path`` from the registry, at most MAX_SIGNATURE_SIZE bytes; None when it is absent."""
    try:
        async with client.get(path, {"Accept": accept}, what) as response:
            return await client.read_limited(response, MAX_SIGNATURE_SIZE, what, "signature")
    except NotFound:
        return None


async def sigstore_attachments(
    client: RegistryClient, location: DockerReference, manifest_digest: str
) -> list[Signature]:
    """The sigstore signatures attached to ``manifest_digest`` in ``location``'s repository."""
    tag = attachment_tag(manifest_digest)
    what = f"sigstore attachments {location.name}:{tag}"
    raw = await _read_capped(
        client,
        f"/v2/{location.path}/manifests/{tag}",
        f"{OCI_MANIFEST_TYPE}, {DOCKER_MANIFEST_TYPE}",
        what,
    )
    if raw is None:
        return []
    try:
        manifest = json.loads(raw)
        layers = manifest["layers"]
        if not isinstance(layers, list):
            raise TypeError("layers is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"{what}: not an image manifest: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{what}: not an image manifest: JSON nested too deeply") from None
    if len(layers) > MAX_SIGNATURES:
        raise InvalidArgument(f"{what}: {len(layers)} signatures (limit {MAX_SIGNATURES})")
    result: list[Signature] = []
    for index, layer in enumerate(layers, 1):
        if not isinstance(layer, dict) or layer.get("mediaType") != SIGSTORE_LAYER_TYPE:
            continue  # other attachment kinds (attestations, SBOMs) are not signatures
        digest, size = layer.get("digest"), layer.get("size")
        annotations = layer.get("annotations") or {}
        if not isinstance(digest, str) or not isinstance(size, int) or not isinstance(annotations, dict):
            raise InvalidArgument(f"{what}: layer {index} has no valid digest, size or annotations")
        if size > MAX_SIGNATURE_SIZE:
            raise _too_large(f"{what} layer {index}", size)
        payload = await _read_capped(
            client, f"/v2/{location.path}/blobs/{digest}", "*/*", f"{what} layer {index}"
        )
        if payload is None:
            raise InvalidArgument(f"{what}: layer {index} ({digest}) is missing from the registry")
        if "sha256:" + hashlib.sha256(payload).hexdigest() != digest or len(payload) != size:
            raise InvalidArgument(f"{what}: layer {index} does not match its digest {digest}")
        result.append(Signature("sigstore", payload, {str(k): str(v) for k, v in annotations.items()}))
    return result


def _read_file_capped(path: str, what: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIGNATURE_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unavailable(f"{what}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_SIGNATURE_SIZE:
        raise _too_large(what, f"over {MAX_SIGNATURE_SIZE}")
    return data


async def _fetch_url(http: httpx.AsyncClient, url: str, what: str) -> bytes | None:
    try:
        async with http.stream("GET", url) as response:
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise Unavailable(f"{what}: {loggable_url(url)} answered HTTP {response.status_code}")
            data = bytearray()
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) > MAX_SIGNATURE_SIZE:
                    raise _too_large(what, f"over {MAX_SIGNATURE_SIZE}")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise Unavailable(f"{what}: fetching {loggable_url(url)}: {exc}") from None


def _lookaside_signature(data: bytes) -> Signature:
    """A lookaside file: a raw OpenPGP message or containers/image's prefixed storage form. Anything
    else is kept as is, so the policy reports exactly why that signature does not verify."""
    try:
        return signature_from_blob(data)
    except InvalidArgument:
        return Signature("simple-signing", data)


async def lookaside_signatures(base: str, ref: DockerReference, manifest_digest: str) -> list[Signature]:
    """Simple-signing signatures of ``manifest_digest`` in the lookaside store at ``base``."""
    scheme = urllib.parse.urlsplit(base).scheme
    if scheme not in ("file", "http", "https"):
        raise InvalidArgument(
            f"lookaside {base!r} for {ref.name}: only file, http and https URLs are supported"
        )
    result: list[Signature] = []
    http = httpx.AsyncClient(timeout=LOOKASIDE_TIMEOUT, follow_redirects=True) if scheme != "file" else None
    try:
        for index in range(1, MAX_SIGNATURES + 2):
            url = lookaside_url(base, ref, manifest_digest, index)
            what = f"signature {index} of {ref} at {loggable_url(url)}"
            if http is None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
                data = await asyncio.to_thread(_read_file_capped, os.path.normpath(path), what)
            else:
                data = await _fetch_url(http, url, what)
            if data is None:
                return result
            if index > MAX_SIGNATURES:
                raise InvalidArgument(
                    f"lookaside {base} holds more than {MAX_SIGNATURES} signatures for {ref}"
                )
            result.append(_lookaside_signature(data))
    finally:
        if http is not None:
            await http.aclose()
    return result


async def fetch_signatures(
    registries_d: str,
    requested: DockerReference,
    client: RegistryClient,
    location: DockerReference,
    manifest_digest: str,
    sigstore: bool,
) -> Sequence[Signature]:
    """Every signature registries.d says ``requested`` has (plus attachments when ``sigstore``)."""
    config = (await asyncio.to_thread(load_registries_d, registries_d)).config_for(requested)
    found: list[Signature] = []
    try:
        # Nothing configured: containers/image's built-in store, where podman and skopeo keep signatures.
        found += await lookaside_signatures(config.lookaside or BUILTIN_LOOKASIDE, requested, manifest_digest)
        if sigstore or config.use_sigstore_attachments:
            found += await sigstore_attachments(client, location, manifest_digest)
    except CrioError as exc:
        raise type(exc)(f"reading signatures of {requested}: {exc}") from None
    return found

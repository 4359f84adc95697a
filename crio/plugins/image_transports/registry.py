"""The ``docker`` transport: images from registries over the OCI distribution API.

The reference is remapped through registries.conf (``PullOptions.registries_conf``); its endpoints are
tried in order, and the first one that has the manifest serves the whole image.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

from crio.core.errors import CrioError, InvalidArgument, NotFound, Unauthenticated, Unavailable
from crio.core.images import registries
from crio.core.images.manifest import MAX_MANIFEST_SIZE, SCHEMA1_TYPES, SUPPORTED_TYPES, detect_media_type
from crio.core.images.reference import DockerReference, parse_docker_reference, validate_digest
from crio.core.images.registries import Endpoint
from crio.core.images.trust.signature import Signature
from crio.core.types import ImageReference, PullOptions
from crio.plugins.image_transports.auth import credentials_for
from crio.plugins.image_transports.client import RegistryClient
from crio.plugins.image_transports.common import CHUNK_SIZE, deadline_after, guard_size
from crio.plugins.image_transports.signatures import fetch_signatures

MANIFEST_ACCEPT = ", ".join([*SUPPORTED_TYPES, *SCHEMA1_TYPES])


class RegistrySource:
    """An image in a registry repository, reached through one endpoint's client."""

    def __init__(
        self, ref: DockerReference, endpoint: Endpoint, client: RegistryClient, registries_d: str = ""
    ) -> None:
        self.ref = ref
        self.location = endpoint.location_ref
        self.client = client
        self.registries_d = registries_d
        self._first: tuple[bytes, str] | None = None

    @property
    def description(self) -> str:
        """The remapped reference and the URL it is read from."""
        return f"{self.location} ({self.client.base_url}/v2/{self.location.path})"

    async def _fetch_manifest(self, reference: str) -> tuple[bytes, str]:
        what = f"manifest {reference} of {self.ref}"
        path = f"/v2/{self.location.path}/manifests/{reference}"
        async with self.client.get(path, {"Accept": MANIFEST_ACCEPT}, what) as response:
            raw = await self.client.read_limited(response, MAX_MANIFEST_SIZE, what, "manifest")
            content_type = response.headers.get("content-type", "")
        try:
            return raw, detect_media_type(raw, content_type)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what} from {self.client.domain}: {exc}") from None

    async def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """The manifest the reference names (``digest`` None) or the one with ``digest``."""
        if digest is None:
            if self._first is None:
                self._first = await self._fetch_manifest(self.location.remote)
            return self._first
        validate_digest(digest, f"manifest of {self.ref}")
        return await self._fetch_manifest(digest)

    async def _blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        what = f"blob {digest} of {self.ref}"
        path = f"/v2/{self.location.path}/blobs/{digest}"
        async with self.client.get(path, {"Accept-Encoding": "identity"}, what) as response:
            length = response.headers.get("content-length", "")
            if size >= 0 and length.isdigit() and int(length) > size:
                raise InvalidArgument(f"blob {digest} larger than its descriptor ({length} > {size} bytes)")
            async for chunk in self.client.read_chunks(response, CHUNK_SIZE, what):
                yield chunk

    def get_blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        """Stream a blob in ~1 MiB chunks, never more than ``size`` bytes."""
        validate_digest(digest, f"blob of {self.ref}")
        return guard_size(self._blob(digest, size), digest, size)

    async def get_signatures(self, manifest_digest: str, sigstore: bool) -> Sequence[Signature]:
        """Signatures of ``manifest_digest``: lookaside ones per registries.d, and sigstore attachments
        when registries.d enables them or ``sigstore`` (the policy needs them) is true."""
        validate_digest(manifest_digest, f"signatures of {self.ref}")
        return await fetch_signatures(
            self.registries_d, self.ref, self.client, self.location, manifest_digest, sigstore
        )

    async def close(self) -> None:
        """Close the connections."""
        await self.client.aclose()


def _combine(ref: DockerReference, failures: list[CrioError]) -> CrioError:
    if len(failures) == 1:
        return failures[0]
    text = f"pulling {ref}: every endpoint failed: " + "; ".join(str(f) for f in failures)
    last = failures[-1]
    if all(isinstance(f, NotFound) for f in failures):
        return NotFound(text)
    return type(last)(text) if isinstance(last, Unavailable | Unauthenticated | NotFound) else last


def is_loopback(domain: str) -> bool:
    """True for a registry on this host (localhost, 127.0.0.0/8, ::1), which may speak plain HTTP.

    Like Docker, and unlike containers/image, crio lets a loopback registry that registries.conf does not
    mention fall back to plain HTTP: traffic that never leaves the node gains nothing from TLS checks. An
    explicit registries.conf entry (``insecure = false``) still enforces TLS.
    """
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 or domain.startswith("[") else domain
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def open_registry(reference: ImageReference, options: PullOptions) -> RegistrySource:
    """Open ``reference`` (transport docker): try each registries.conf endpoint until one has the manifest."""
    ref = parse_docker_reference(reference.name)
    deadline = deadline_after(options.timeout)
    # registries.conf and auth.json are small files, but still read off the event loop.
    holder = registries.config_for(options.registries_conf, options.registries_conf_dir)
    conf = await asyncio.to_thread(holder.load, options.registries_auto_reload)
    endpoints = conf.endpoints(ref)  # mirrors first; PermissionDenied when the registry is blocked
    failures: list[CrioError] = []
    for endpoint in endpoints:
        location = endpoint.location_ref
        # The request's credentials are for the registry it names; a mirror elsewhere gets only what
        # auth.json holds for the mirror's own host (containers/image does the same).
        scoped = options if location.domain == ref.domain else replace(options, auth=None)
        credentials = await asyncio.to_thread(credentials_for, location, scoped)
        insecure = endpoint.insecure or (not endpoint.configured and is_loopback(location.domain))
        scope = f"repository:{location.path}:pull"
        client = RegistryClient(location.domain, insecure, credentials, scope, deadline)
        source = RegistrySource(ref, endpoint, client, options.registries_d)
        try:
            await source.get_manifest()
        except NotFound as exc:
            await client.aclose()
            failures.append(NotFound(f"image {ref} not found: {exc}"))
            continue
        except (Unavailable, Unauthenticated) as exc:
            await client.aclose()
            failures.append(type(exc)(f"pulling {ref}: {exc}"))
            continue
        except BaseException:
            await client.aclose()
            raise
        return source
    raise _combine(ref, failures)

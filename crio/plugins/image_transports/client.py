"""An HTTP client for one registry host speaking the OCI distribution API, with httpx.

It finds the scheme (https; for an insecure registry https without verification, then plain http), answers
authentication challenges (basic; bearer tokens from the realm, cached per scope; a registry token sent as
is), follows redirects itself so that the ``Authorization`` header never leaves the registry's origin, and
turns transport failures into :mod:`crio.core.errors` exceptions naming the registry.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping

import httpx

from crio.core.errors import (
    CrioError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from crio.core.urlredact import loggable_url
from crio.plugins.image_transports import auth as authmod
from crio.plugins.image_transports.auth import Challenge, Credentials
from crio.plugins.image_transports.common import before_deadline

# Seconds. Module constants so tests (and, later, configuration) can change them before a pull starts.
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 60.0
MAX_REDIRECTS = 10
USER_AGENT = "crio"
ERROR_BODY_LIMIT = 64 * 1024

_REDIRECTS = (301, 302, 303, 307, 308)


def api_host(domain: str) -> str:
    """The host serving the registry API for a reference domain (Docker Hub's is not docker.io)."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


async def _head(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streaming response's body."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def error_codes(body: bytes) -> list[str]:
    """The ``errors[].code`` values of a distribution-API error body (empty if it has none)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]


class RegistryClient:
    """Requests to one registry (``domain``, e.g. ``127.0.0.1:5000``) for one repository scope."""

    def __init__(
        self, domain: str, insecure: bool, credentials: Credentials, scope: str, deadline: float | None
    ) -> None:
        self.domain = domain
        self.insecure = insecure
        self.credentials = credentials
        self.scope = scope
        self.deadline = deadline
        self.base_url = ""
        self._challenge: Challenge | None = None
        self._authorization: str | None = None
        if credentials.registry_token:
            self._authorization = "Bearer " + credentials.registry_token
        verify: ssl.SSLContext | bool = False if insecure else ssl.create_default_context()
        timeout = httpx.Timeout(
            connect=CONNECT_TIMEOUT, read=READ_TIMEOUT, write=READ_TIMEOUT, pool=CONNECT_TIMEOUT
        )
        self._http = httpx.AsyncClient(
            verify=verify, timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # ------------------------------------------------------------------------------------------ errors

    def transport_error(self, exc: httpx.HTTPError, action: str) -> CrioError:
        """Map an httpx failure to an error naming the registry."""
        if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
            return Unavailable(f"registry {self.domain}: no data for {READ_TIMEOUT:g} s while {action}")
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return Unavailable(f"registry {self.domain}: connection timed out while {action}")
        if isinstance(exc, httpx.ConnectError):
            return Unavailable(f"registry {self.domain}: cannot connect while {action}: {exc}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return Unavailable(
                f"registry {self.domain}: connection closed while {action}: {exc or type(exc)}"
            )
        return Unavailable(f"registry {self.domain}: {type(exc).__name__} while {action}: {exc}")

    def status_error(self, response: httpx.Response, body: bytes, what: str) -> CrioError:
        """Map an unexpected HTTP status to an error naming the registry and the status."""
        status = response.status_code
        codes = error_codes(body)
        detail = f"{status} {response.reason_phrase}" + (f" ({', '.join(codes)})" if codes else "")
        text = f"registry {self.domain} answered {detail} for {what}"
        if status == 404:
            return NotFound(text)
        if status in (401, 403):
            return Unauthenticated(f"unauthorized: {text}")
        if status >= 500 or status in (408, 429):
            return Unavailable(text)
        return InvalidArgument(text)

    # ------------------------------------------------------------------------------------------ scheme

    async def _ping(self) -> None:
        """Find a scheme that answers ``GET /v2/`` and note its authentication challenge."""
        host = api_host(self.domain)
        schemes = ("https", "http") if self.insecure else ("https",)
        failure: CrioError | None = None
        for scheme in schemes:
            url = f"{scheme}://{host}/v2/"
            try:
                response = await self._http.send(self._http.build_request("GET", url), stream=True)
            except httpx.HTTPError as exc:
                failure = self.transport_error(exc, f"contacting {loggable_url(url)}")
                continue
            try:
                if response.status_code >= 500:
                    try:
                        body = await _head(response, ERROR_BODY_LIMIT)
                    except httpx.HTTPError:
                        body = b""
                    raise self.status_error(response, body, f"GET {loggable_url(url)}")
            finally:
                await response.aclose()
            self.base_url = f"{scheme}://{host}"
            if response.status_code == 401:
                self._remember_challenge(response)
            return
        assert failure is not None
        raise failure

    def _remember_challenge(self, response: httpx.Response) -> None:
        challenges = authmod.parse_challenges(response.headers.get_list("www-authenticate"))
        by_scheme = {c.scheme: c for c in challenges}
        self._challenge = by_scheme.get("bearer") or by_scheme.get("basic")

    # ------------------------------------------------------------------------------------------ auth

    async def _token(self, challenge: Challenge) -> str:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise Unauthenticated(
                f"unauthorized: registry {self.domain} sent a bearer challenge without a realm"
            )
        shown = loggable_url(realm)  # a realm may carry a query of its own
        service = challenge.params.get("service", "")
        scopes = [self.scope]
        extra = challenge.params.get("scope", "")
        if extra and extra not in scopes:
            scopes.append(extra)
        key = (realm, service, " ".join(scopes), self.credentials.fingerprint())
        cached = authmod.TOKENS.get(key)
        if cached is not None:
            return cached
        creds = self.credentials
        try:
            if creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "service": service,
                    "scope": " ".join(scopes),
                    "client_id": USER_AGENT,
                }
                response = await self._http.post(realm, data=form)
            else:
                params: list[tuple[str, str | int | float | bool | None]] = []
                if service:
                    params.append(("service", service))
                params += [("scope", s) for s in scopes]
                headers = {"Authorization": creds.basic_header()} if creds.has_basic else {}
                response = await self._http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, f"getting a token from {shown}") from None
        if response.status_code != 200:
            raise self.status_error(response, response.content, f"a token from {shown}")
        try:
            data = response.json()
        except (ValueError, RecursionError):
            raise Unavailable(f"registry {self.domain}: token server {shown} sent no JSON") from None
        token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthenticated(f"unauthorized: token server {shown} sent no token for {self.domain}")
        lifetime = data.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = authmod.DEFAULT_TOKEN_LIFETIME
        authmod.TOKENS.put(key, token, float(lifetime))
        return token

    async def _authorize(self) -> None:
        """Compute the Authorization header for the known challenge (None: stay anonymous)."""
        challenge = self._challenge
        if challenge is None or self.credentials.registry_token:
            return
        if challenge.scheme == "bearer":
            self._authorization = "Bearer " + await self._token(challenge)
        elif challenge.scheme == "basic":
            if not self.credentials.has_basic:
                raise Unauthenticated(f"unauthorized: registry {self.domain} wants credentials; none given")
            self._authorization = self.credentials.basic_header()

    # ------------------------------------------------------------------------------------------ requests

    async def _open(self, path: str, headers: Mapping[str, str]) -> httpx.Response:
        if not self.base_url:
            await self._ping()
            await self._authorize()
        url = httpx.URL(self.base_url + path)
        origin = _origin(url)
        retried = False
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if self._authorization and _origin(url) == origin:
                sent["Authorization"] = self._authorization
            request = self._http.build_request("GET", url, headers=sent)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise self.transport_error(exc, f"GET {loggable_url(url)}") from None
            if response.status_code in _REDIRECTS and "location" in response.headers:
                await response.aclose()
                url = url.join(response.headers["location"])
                continue
            if response.status_code == 401 and not retried and _origin(url) == origin:
                retried = True
                self._remember_challenge(response)
                await response.aclose()
                if self._challenge is None or self.credentials.registry_token:
                    raise Unauthenticated(
                        f"unauthorized: registry {self.domain} refused GET {loggable_url(url)} (401)"
                    )
                await self._authorize()
                url = httpx.URL(self.base_url + path)
                continue
            return response
        raise Unavailable(f"registry {self.domain}: more than {MAX_REDIRECTS} redirects for {path}")

    @contextlib.asynccontextmanager
    async def get(self, path: str, headers: Mapping[str, str], what: str) -> AsyncIterator[httpx.Response]:
        """``GET base_url + path`` (authenticated, redirects followed) as a streaming response with a 2xx
        status; other statuses become errors naming ``what``. Bounded by the client's deadline."""
        response = await before_deadline(self._open(path, headers), self.deadline, what)
        try:
            if response.status_code >= 300:
                try:
                    body = await before_deadline(_head(response, ERROR_BODY_LIMIT), self.deadline, what)
                except httpx.HTTPError:
                    body = b""
                raise self.status_error(response, body, what)
            yield response
        finally:
            await response.aclose()

    async def read_limited(self, response: httpx.Response, limit: int, what: str, kind: str) -> bytes:
        """The whole body of a small document (a manifest, a signature): InvalidArgument ``<kind> too
        large`` as soon as its Content-Length or the bytes read pass ``limit``."""
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise InvalidArgument(
                f"{kind} too large: {what} from {self.domain} is {length} bytes (limit {limit})"
            )
        data = bytearray()
        async for chunk in self.read_chunks(response, 64 * 1024, what):
            data += chunk
            if len(data) > limit:
                raise InvalidArgument(f"{kind} too large: {what} from {self.domain} is over {limit} B")
        return bytes(data)

    async def read_chunks(self, response: httpx.Response, chunk_size: int, what: str) -> AsyncIterator[bytes]:
        """The response body in chunks, each awaited under the deadline; transport failures are mapped."""
        chunks = response.aiter_bytes(chunk_size)
        while True:
            try:
                chunk = await before_deadline(anext(chunks), self.deadline, what)
            except StopAsyncIteration:
                return
            except DeadlineExceeded:
                await response.aclose()
                raise
            except httpx.HTTPError as exc:
                raise self.transport_error(exc, f"reading {what}") from None
            yield chunk

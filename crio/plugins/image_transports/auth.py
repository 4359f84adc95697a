"""Registry credentials and authentication challenges.

Credentials come from the pull request (``PullOptions.auth``) or else from a containers-auth.json file
(``PullOptions.auth_file``), looked up by the most specific ``host/namespace`` key, then by host, then by
legacy ``https://host/v1/`` keys. ``WWW-Authenticate`` challenges are parsed here; bearer tokens are
cached per realm, service, scope and credentials until they expire.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field

from crio.core.errors import InvalidArgument
from crio.core.images.reference import DEFAULT_DOMAIN, DockerReference
from crio.core.types import PullOptions, RegistryAuth

# Hosts that mean Docker Hub in auth.json keys.
_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    """What we can present to a registry; all empty means anonymous."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def has_basic(self) -> bool:
        """True when a username (and password) is known."""
        return bool(self.username)

    def basic_header(self) -> str:
        """The ``Authorization: Basic ...`` value."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def fingerprint(self) -> str:
        """A digest identifying these credentials in cache keys (never the secrets themselves)."""
        text = "\0".join((self.username, self.password, self.identity_token, self.registry_token))
        return hashlib.sha256(text.encode()).hexdigest()


def _decode_auth(value: str, what: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=False).decode()
    except (binascii.Error, ValueError):  # ValueError: not ASCII text; UnicodeDecodeError: not UTF-8
        raise InvalidArgument(f"{what}: 'auth' is not base64 of user:password") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise InvalidArgument(f"{what}: 'auth' is not base64 of user:password")
    return user, password


def from_registry_auth(auth: RegistryAuth) -> Credentials:
    """Credentials from the request's auth config (username/password win over ``auth``)."""
    username, password = auth.username, auth.password
    if not username and auth.auth:
        username, password = _decode_auth(auth.auth, "request auth")
    return Credentials(username, password, auth.identity_token, auth.registry_token)


def _normalize_key(key: str) -> str:
    """Legacy keys (``https://index.docker.io/v1/``) stand for their host only."""
    if "://" in key:
        key = key.split("://", 1)[1].split("/", 1)[0]
    return DEFAULT_DOMAIN if key in _DOCKER_HUB_ALIASES else key


def lookup_auth_file(path: str, ref: DockerReference) -> Credentials:
    """Credentials for ``ref`` from the containers-auth.json at ``path`` (absent file: anonymous).

    Keys tried: ``host/ns/.../repo``, then shorter namespaces, then ``host``, then legacy URL keys.
    Raises :class:`InvalidArgument` naming the file when it is unreadable or malformed.
    """
    if not path:
        return Credentials()
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return Credentials()
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{path}: cannot read auth file: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{path}: cannot read auth file: JSON nested too deeply") from None
    auths = data.get("auths", {}) if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise InvalidArgument(f"{path}: 'auths' must be an object")
    parts = ref.path.split("/")
    keys = [f"{ref.domain}/{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)] + [ref.domain]
    entry = next((auths[k] for k in keys if k in auths), None)
    if entry is None:
        entry = next((v for k, v in auths.items() if "://" in k and _normalize_key(k) == ref.domain), None)
    if entry is None:
        return Credentials()
    if not isinstance(entry, dict):
        raise InvalidArgument(f"{path}: the entry for {ref.domain} must be an object")
    username = password = ""
    auth = entry.get("auth", "")
    if auth:
        username, password = _decode_auth(str(auth), f"{path}: entry for {ref.domain}")
    return Credentials(username, password, str(entry.get("identitytoken", "") or ""))


def credentials_for(ref: DockerReference, options: PullOptions) -> Credentials:
    """The request's credentials when it has any, else those in the auth file for ``ref``'s location."""
    if options.auth is not None and any(
        (
            options.auth.username,
            options.auth.password,
            options.auth.auth,
            options.auth.identity_token,
            options.auth.registry_token,
        )
    ):
        return from_registry_auth(options.auth)
    return lookup_auth_file(options.auth_file, ref)


# --------------------------------------------------------------------------------------------------
# WWW-Authenticate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One authentication challenge: its scheme (lowercase) and parameters (keys lowercase)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?=\s|$|,)\s*")
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*(?:,|$)')


def parse_challenges(values: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (each may hold several challenges)."""
    challenges: list[Challenge] = []
    for value in values:
        pos = 0
        current: Challenge | None = None
        while pos < len(value):
            param = _PARAM_RE.match(value, pos)
            if param and current is not None:
                raw = param.group(2)
                text = re.sub(r"\\(.)", r"\1", raw) if raw is not None else param.group(3)
                current.params[param.group(1).lower()] = text
                pos = param.end()
                continue
            scheme = _SCHEME_RE.match(value, pos)
            if scheme is None:
                break
            current = Challenge(scheme.group(1).lower())
            challenges.append(current)
            pos = scheme.end()
    return challenges


# --------------------------------------------------------------------------------------------------
# Token cache
# --------------------------------------------------------------------------------------------------

DEFAULT_TOKEN_LIFETIME = 60.0
EXPIRY_MARGIN = 5.0


class TokenCache:
    """Bearer tokens by (realm, service, scope, credentials fingerprint), kept until they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        """A cached token still valid for at least a few seconds, or None."""
        with self._lock:
            found = self._tokens.get(key)
            if found is None:
                return None
            if found[1] <= time.monotonic():
                del self._tokens[key]
                return None
            return found[0]

    def put(self, key: tuple[str, str, str, str], token: str, lifetime: float) -> None:
        """Remember ``token`` for ``lifetime`` seconds (less a safety margin)."""
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1.0))

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._tokens.clear()


TOKENS = TokenCache()

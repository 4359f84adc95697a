"""containers-registries.conf(5), version 2: ``[[registry]]`` prefix → location remaps, ``insecure``.

``blocked``, ``[[registry.mirror]]`` and ``unqualified-search-registries`` are parsed and stored; their
enforcement and use belong to later work. The version 1 tables (``[registries.search|insecure|block]``) are
read as the equivalent version 2 entries, as containers/image does. Files are cached by path and mtime.
"""

from __future__ import annotations

import os
import threading
import tomllib
from dataclasses import dataclass, field
from typing import Any

from crio.core.errors import InvalidArgument
from crio.core.images.reference import (
    DIGEST_RE,
    DOMAIN_RE,
    TAG_RE,
    DockerReference,
    parse_docker_reference,
    parse_name_prefix,
)


@dataclass(frozen=True)
class Mirror:
    """One ``[[registry.mirror]]`` table."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"


@dataclass(frozen=True)
class Registry:
    """One ``[[registry]]`` table; ``prefix`` defaults to ``location``."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()
    mirror_by_digest_only: bool = False

    @property
    def wildcard(self) -> bool:
        """True for a ``*.example.com`` prefix (matches every subdomain; no remapping)."""
        return self.prefix.startswith("*.")


@dataclass(frozen=True)
class Endpoint:
    """Where to actually pull a reference from: ``location_ref`` (the remapped reference) and whether
    the host may be reached without TLS or with unverified certificates."""

    location_ref: DockerReference
    insecure: bool = False
    # False when no registries.conf entry matched (built-in defaults apply); not part of equality.
    configured: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class RegistriesConf:
    """A parsed registries.conf (``path`` empty or absent: no remaps at all)."""

    path: str = ""
    registries: tuple[Registry, ...] = ()
    unqualified_search_registries: tuple[str, ...] = ()

    def find(self, ref: DockerReference) -> Registry | None:
        """The ``[[registry]]`` table with the longest prefix matching ``ref``, or None."""
        text = str(ref)
        best: Registry | None = None
        best_len = -1
        for registry in self.registries:
            length = _match_length(registry, ref, text)
            if length > best_len:
                best, best_len = registry, length
        return best

    def resolve(self, ref: DockerReference, mirrors: bool = False) -> list[Endpoint]:
        """The endpoints to try for ``ref``, in order: (mirrors, when asked for,) then the primary location.

        The matched prefix is replaced by the table's location (``registry.k8s.io/pause:3.9`` with prefix
        ``registry.k8s.io`` and location ``127.0.0.1:5000`` → ``127.0.0.1:5000/pause:3.9``).
        """
        registry = self.find(ref)
        if registry is None:
            return [Endpoint(ref, False, configured=False)]
        endpoints: list[Endpoint] = []
        if mirrors and not registry.wildcard and (ref.digest or not registry.mirror_by_digest_only):
            for mirror in registry.mirrors:
                if mirror.pull_from_mirror == "digest-only" and not ref.digest:
                    continue
                if mirror.pull_from_mirror == "tag-only" and ref.digest:
                    continue
                endpoints.append(Endpoint(_rewrite(ref, registry.prefix, mirror.location), mirror.insecure))
        primary = ref if registry.wildcard else _rewrite(ref, registry.prefix, registry.location)
        endpoints.append(Endpoint(primary, registry.insecure))
        return endpoints


def _match_length(registry: Registry, ref: DockerReference, text: str) -> int:
    """Length of ``registry.prefix`` when it matches ``ref`` on component boundaries, else -1."""
    prefix = registry.prefix
    if registry.wildcard:
        host = ref.domain.partition(":")[0]
        return len(prefix) if host.endswith(prefix[1:]) else -1
    if not text.startswith(prefix):
        return -1
    if len(text) == len(prefix):
        return len(prefix)
    after = text[len(prefix)]
    # A prefix that is only a host must be followed by the path; ``example.com`` never matches
    # ``example.com:5000/...``. A prefix with a path may be followed by more path, a tag or a digest.
    allowed = "/:@" if "/" in prefix else "/"
    return len(prefix) if after in allowed else -1


def _rewrite(ref: DockerReference, prefix: str, location: str) -> DockerReference:
    text = location + str(ref)[len(prefix) :]
    try:
        return parse_docker_reference(text, default_tag=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"rewriting {ref} with prefix {prefix!r} to {location!r}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def _check_prefix(text: str, where: str, key: str) -> None:
    """Validate ``host[:port][/path][:tag|@digest]`` or ``*.domain``."""
    if text.startswith("*."):
        if key != "prefix" or not DOMAIN_RE.fullmatch(text[2:]) or ":" in text or "/" in text:
            raise InvalidArgument(f"{where}: invalid {key} {text!r}: a wildcard must be '*.domain'")
        return
    name, at, digest = text.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f"{where}: invalid {key} {text!r}: bad digest")
    colon = name.rfind(":")
    if colon > name.rfind("/") and "/" in name:
        if not TAG_RE.fullmatch(name[colon + 1 :]):
            raise InvalidArgument(f"{where}: invalid {key} {text!r}: bad tag")
        name = name[:colon]
    try:
        parse_name_prefix(name)
    except InvalidArgument:
        raise InvalidArgument(
            f"{where}: invalid {key} {text!r}: expected host[:port][/namespace...][:tag|@digest]"
        ) from None


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind):
        raise InvalidArgument(f"{where}: {key!r} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _parse_mirror(raw: Any, where: str) -> Mirror:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be a table")
    location = _get(raw, "location", str, where, "")
    if not location:
        raise InvalidArgument(f"{where}: 'location' is required")
    _check_prefix(location, where, "location")
    pull_from = _get(raw, "pull-from-mirror", str, where, "all") or "all"
    if pull_from not in ("all", "digest-only", "tag-only"):
        raise InvalidArgument(f"{where}: 'pull-from-mirror' must be all, digest-only or tag-only")
    return Mirror(location, _get(raw, "insecure", bool, where, False), pull_from)


def _parse_registry(raw: Any, where: str) -> Registry:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{where}: must be a table")
    location = _get(raw, "location", str, where, "")
    prefix = _get(raw, "prefix", str, where, "") or location
    if not prefix:
        raise InvalidArgument(f"{where}: needs a 'prefix' or a 'location'")
    _check_prefix(prefix, where, "prefix")
    if location:
        _check_prefix(location, where, "location")
        if prefix.startswith("*."):
            raise InvalidArgument(f"{where}: a wildcard prefix {prefix!r} cannot have a location")
    mirrors_raw = _get(raw, "mirror", list, where, [])
    mirrors = tuple(_parse_mirror(m, f"{where} mirror #{i + 1}") for i, m in enumerate(mirrors_raw))
    return Registry(
        prefix=prefix,
        location=location or prefix,
        insecure=_get(raw, "insecure", bool, where, False),
        blocked=_get(raw, "blocked", bool, where, False),
        mirrors=mirrors,
        mirror_by_digest_only=_get(raw, "mirror-by-digest-only", bool, where, False),
    )


def _v1_registries(data: dict[str, Any], path: str) -> tuple[list[Registry], list[str]]:
    """Translate the version 1 tables into version 2 entries."""
    tables = data.get("registries")
    if not isinstance(tables, dict):
        raise InvalidArgument(f"{path}: 'registries' must be a table")
    lists: dict[str, list[str]] = {}
    for name in ("search", "insecure", "block"):
        table = tables.get(name, {})
        where = f"{path}: [registries.{name}]"
        hosts = _get(table, "registries", list, where, []) if isinstance(table, dict) else None
        if hosts is None or not all(isinstance(h, str) for h in hosts):
            raise InvalidArgument(f"{where}: 'registries' must be a list of strings")
        lists[name] = hosts
    by_host: dict[str, Registry] = {}
    for host in lists["insecure"] + lists["block"]:
        _check_prefix(host, f"{path}: [registries]", "registry")
        old = by_host.get(host, Registry(host, host))
        by_host[host] = Registry(
            host,
            host,
            insecure=old.insecure or host in lists["insecure"],
            blocked=old.blocked or host in lists["block"],
        )
    return list(by_host.values()), lists["search"]


def parse(text: str, path: str) -> RegistriesConf:
    """Parse registries.conf content; errors name ``path`` and the problem (:class:`InvalidArgument`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{path}: invalid TOML: {exc}") from None
    search = _get(data, "unqualified-search-registries", list, path, [])
    if "registries" in data:
        if "registry" in data or "unqualified-search-registries" in data:
            raise InvalidArgument(f"{path}: mixes version 1 [registries.*] tables with version 2 keys")
        registries, search = _v1_registries(data, path)
    else:
        raw_list = _get(data, "registry", list, path, [])
        registries = [_parse_registry(r, f"{path}: [[registry]] #{i + 1}") for i, r in enumerate(raw_list)]
    for host in search:
        if not isinstance(host, str) or not DOMAIN_RE.fullmatch(host):
            raise InvalidArgument(f"{path}: unqualified-search-registries: {host!r} is not a host[:port]")
    seen: set[str] = set()
    for registry in registries:
        if registry.prefix in seen:
            raise InvalidArgument(f"{path}: prefix {registry.prefix!r} is defined more than once")
        seen.add(registry.prefix)
    return RegistriesConf(path, tuple(registries), tuple(search))


_CACHE: dict[str, tuple[tuple[int, int, int], RegistriesConf]] = {}
_CACHE_LOCK = threading.Lock()


def load(path: str) -> RegistriesConf:
    """Load ``path`` (cached while its mtime, size and inode stay the same); a missing file, or an empty
    path, gives no remaps. Raises :class:`InvalidArgument` naming the file."""
    if not path:
        return RegistriesConf()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return RegistriesConf(path)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror}") from None
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc}") from None
    conf = parse(text, path)
    with _CACHE_LOCK:
        _CACHE[path] = (key, conf)
    return conf


def resolve(ref: DockerReference, path: str, mirrors: bool = False) -> list[Endpoint]:
    """The endpoints for ``ref`` under the registries.conf at ``path`` (:meth:`RegistriesConf.resolve`)."""
    return load(path).resolve(ref, mirrors)

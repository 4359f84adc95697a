"""containers-registries.conf(5) version 2 and its containers-registries.conf.d(5) drop-ins.

A configuration is a registries.conf file plus every ``*.conf`` in a drop-in directory, applied in lexical
order: a ``[[registry]]`` with the same prefix replaces the earlier one, ``unqualified-search-registries``,
``short-name-mode`` and ``credential-helpers`` set in a later file replace the earlier value, and
``[aliases]`` merge per key (an empty value erases an alias). The version 1 tables
(``[registries.search|insecure|block]``) are read as the equivalent version 2 entries, in registries.conf
only. Every error names the file and, where it can be found, the line.

:class:`RegistriesConfig` re-reads the files whenever one changes (a ``stat`` of each per call) and keeps
the last good configuration when a change breaks it. Short-name resolution lives in
:mod:`crio.core.images.shortnames`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crio.core.errors import InvalidArgument, PermissionDenied
from crio.core.images.reference import (
    DIGEST_RE,
    DOMAIN_RE,
    TAG_RE,
    DockerReference,
    parse_docker_reference,
    parse_name_prefix,
)
from crio.core.images.shortnames import check_alias_name, parse_alias_value

log = logging.getLogger(__name__)

DEFAULT_CONF = "/etc/containers/registries.conf"
DEFAULT_DROPIN_DIR = "/etc/containers/registries.conf.d"
AUTH_FILE_HELPER = "containers-auth.json"  # the reserved credential helper: containers-auth.json(5) files
SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")
_V2_KEYS = ("registry", "unqualified-search-registries", "short-name-mode", "credential-helpers", "aliases")


@dataclass(frozen=True)
class Mirror:
    """One ``[[registry.mirror]]`` table."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"


@dataclass(frozen=True)
class Registry:
    """One ``[[registry]]`` table. ``prefix`` defaults to ``location``; a wildcard prefix
    (``*.example.com``) may have no location, and then never remaps."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()
    mirror_by_digest_only: bool = False
    origin: str = field(default="", compare=False)  # the file that defined it
    line: int = field(default=0, compare=False)

    @property
    def wildcard(self) -> bool:
        """True for a ``*.example.com`` prefix (matches every subdomain, at any depth)."""
        return self.prefix.startswith("*.")


@dataclass(frozen=True)
class Alias:
    """One ``[aliases]`` entry: ``value`` None when a file erased the alias with ``""``."""

    name: str
    value: DockerReference | None
    origin: str
    line: int = 0


@dataclass(frozen=True)
class Endpoint:
    """Where to actually pull a reference from: ``location_ref`` (the remapped reference) and whether
    the host may be reached without TLS or with unverified certificates."""

    location_ref: DockerReference
    insecure: bool = False
    # False when no registries.conf entry matched (built-in defaults apply); not part of equality.
    configured: bool = field(default=True, compare=False)
    mirror: bool = False  # a [[registry.mirror]], not the registry's primary location


@dataclass(frozen=True)
class RegistriesConf:
    """A merged configuration (no files at all: no remaps, no search registries, no aliases)."""

    path: str = ""
    dropin_dir: str = ""
    registries: tuple[Registry, ...] = ()  # sorted by prefix, as containers/image keeps them
    unqualified_search_registries: tuple[str, ...] = ()
    search_origin: str = ""  # the file that set unqualified-search-registries
    short_name_mode: str = ""  # "" when no file sets it
    short_name_mode_origin: str = ""
    aliases: Mapping[str, Alias] = field(default_factory=dict)
    credential_helpers: tuple[str, ...] = (AUTH_FILE_HELPER,)
    files: tuple[str, ...] = ()  # the files read, in the order applied

    @property
    def sources(self) -> str:
        """The configuration's places, for messages: ``registries.conf, registries.conf.d``."""
        return ", ".join(p for p in (self.path, self.dropin_dir) if p) or "(no registries.conf)"

    def alias(self, name: str) -> Alias | None:
        """The ``[aliases]`` entry for the short name ``name`` (without tag or digest), or None."""
        return self.aliases.get(name)

    def find(self, ref: DockerReference) -> Registry | None:
        """The ``[[registry]]`` table with the longest prefix matching ``ref``, or None."""
        found = self._lookup(ref)
        return found[0] if found else None

    def _lookup(self, ref: DockerReference) -> tuple[Registry, int] | None:
        # As containers/image: the longest prefix string wins, the first one in prefix order on a tie (so a
        # wildcard beats an exact prefix of the same length: '*' sorts first).
        text = str(ref)
        best: tuple[Registry, int] | None = None
        for registry in self.registries:
            end = _match_end(registry, ref, text)
            if end >= 0 and (best is None or len(registry.prefix) > len(best[0].prefix)):
                best = (registry, end)
        return best

    def endpoints(self, ref: DockerReference, mirrors: bool = True) -> list[Endpoint]:
        """The endpoints to try for ``ref``, in order: the usable mirrors (when ``mirrors``), then the
        primary location. Raises :class:`PermissionDenied` when the matching registry is blocked.

        The matched prefix is replaced by the location (``registry.k8s.io/pause:3.9`` with prefix
        ``registry.k8s.io`` and location ``127.0.0.1:5000`` → ``127.0.0.1:5000/pause:3.9``). A mirror
        whose location falls under another, blocked ``[[registry]]`` is left out, as containers/image
        refuses it when it connects.
        """
        found = self._lookup(ref)
        if found is None:
            return [Endpoint(ref, False, configured=False)]
        registry, end = found
        if registry.blocked:
            raise _blocked(ref, registry)
        text = str(ref)
        result: list[Endpoint] = []
        if mirrors and (ref.digest or not registry.mirror_by_digest_only):
            for mirror in registry.mirrors:
                if mirror.pull_from_mirror == ("tag-only" if ref.digest else "digest-only"):
                    continue
                result.append(
                    Endpoint(_rewrite(ref, text, end, mirror.location), mirror.insecure, mirror=True)
                )
        primary = _rewrite(ref, text, end, registry.location) if registry.location else ref
        result.append(Endpoint(primary, registry.insecure))
        usable: list[Endpoint] = []
        refusal: PermissionDenied | None = None
        for endpoint in result:
            other = self._lookup(endpoint.location_ref)
            if other is not None and other[0].blocked and other[0] is not registry:
                log.debug("skipping %s for %s: blocked", endpoint.location_ref, ref)
                refusal = refusal or _blocked(endpoint.location_ref, other[0])
                continue
            usable.append(endpoint)
        if not usable and refusal is not None:
            raise refusal
        return usable


def _blocked(ref: DockerReference, registry: Registry) -> PermissionDenied:
    return PermissionDenied(
        f"registry {ref.domain} is blocked in {registry.origin or 'registries.conf'} "
        f'(prefix "{registry.prefix}")'
    )


def _match_end(registry: Registry, ref: DockerReference, text: str) -> int:
    """Where the part of ``text`` (``str(ref)``) that ``registry.prefix`` matches ends, or -1.

    An exact prefix matches on component boundaries; a prefix that is only a host must be followed by the
    path, so ``example.com`` never matches ``example.com:5000/...`` (containers/image lets it, by its own
    account unintentionally). A wildcard matches the host, with any port, and the match covers the port
    too: a mirror or location replaces the whole ``host:port`` (containers/image keeps the port after the
    new location, which gives an invalid reference).
    """
    prefix = registry.prefix
    if registry.wildcard:
        host = "" if ref.domain.startswith("[") else ref.domain.partition(":")[0]
        return len(ref.domain) if host.endswith(prefix[1:]) else -1
    if not text.startswith(prefix):
        return -1
    if len(text) == len(prefix):
        return len(prefix)
    allowed = "/:@" if "/" in prefix else "/"
    return len(prefix) if text[len(prefix)] in allowed else -1


def _rewrite(ref: DockerReference, text: str, end: int, location: str) -> DockerReference:
    try:
        return parse_docker_reference(location + text[end:], default_tag=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"rewriting {ref} to location {location!r}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Lines: tomllib gives no positions, so errors find their table or key by scanning the text.
# --------------------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?")
_KEY_RE = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_TOML_POS_RE = re.compile(r"(?s)(.*) \(at line (\d+), column (\d+)\)")


class _Lines:
    """Where the tables and keys of a (valid) TOML text are: best effort, for messages only."""

    def __init__(self, text: str) -> None:
        self.headers: list[tuple[int, bool, str]] = []  # (line, array table, dotted name)
        self.keys: list[tuple[int, int, str]] = []  # (line, index of its header or -1, key)
        in_string = ""
        for number, line in enumerate(text.splitlines(), 1):
            if in_string:
                if line.count(in_string) % 2:
                    in_string = ""
                continue
            header = _HEADER_RE.fullmatch(line)
            if header:
                name = ".".join(p.strip().strip("\"'") for p in header.group(2).split("."))
                self.headers.append((number, header.group(1) == "[[", name))
                continue
            key = _KEY_RE.match(line)
            if key:
                self.keys.append((number, len(self.headers) - 1, key.group(1).strip("\"'")))
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    in_string = quote

    def _arrays(self, name: str, start: int = 0, stop: int | None = None) -> list[int]:
        """Header indexes of the ``[[name]]`` tables among headers[start:stop]."""
        stop = len(self.headers) if stop is None else stop
        return [i for i in range(start, stop) if self.headers[i][1] and self.headers[i][2] == name]

    def table(self, name: str) -> int:
        """The line of the ``[name]`` header, or 0."""
        return next((line for line, array, n in self.headers if not array and n == name), 0)

    def key(self, key: str, header: int = -1, default: int = 0) -> int:
        """The line of ``key`` directly under header index ``header`` (-1: top level), or ``default``."""
        return next((line for line, h, k in self.keys if h == header and k == key), default)

    def registry(self, index: int) -> tuple[int, int]:
        """(header index, line) of the ``index``-th ``[[registry]]`` (header -2 and the ``registry`` key's
        line when the array is written inline)."""
        found = self._arrays("registry")
        if index < len(found):
            return found[index], self.headers[found[index]][0]
        return -2, self.key("registry")

    def mirror(self, registry: int, registry_line: int, index: int) -> tuple[int, int]:
        """(header index, line) of mirror ``index`` of the registry whose header index is ``registry``
        (the registry's line when the mirrors are written inline)."""
        if registry >= 0:
            following = self._arrays("registry", registry + 1)
            mirrors = self._arrays("registry.mirror", registry + 1, following[0] if following else None)
            if index < len(mirrors):
                return mirrors[index], self.headers[mirrors[index]][0]
        return -2, registry_line


def _toml_type(kind: type) -> str:
    names = {dict: "table", str: "string", int: "integer", list: "list", bool: "bool", float: "float"}
    return names.get(kind, kind.__name__)


def _error(path: str, line: int, message: str) -> InvalidArgument:
    return InvalidArgument(f"{path}:{line}: {message}" if line > 0 else f"{path}: {message}")


# --------------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------------


@dataclass
class _FileConf:
    """What one file sets (None: the key is absent, so an earlier file's value stays)."""

    path: str
    registries: list[Registry] = field(default_factory=list)
    search: list[str] | None = None
    mode: str | None = None
    helpers: list[str] | None = None
    aliases: dict[str, Alias] = field(default_factory=dict)


class _FileParser:
    """Validates one parsed file, raising :class:`InvalidArgument` with ``path:line:``."""

    def __init__(self, path: str, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data
        self.lines = _Lines(text)

    def fail(self, line: int, message: str) -> InvalidArgument:
        return _error(self.path, line, message)

    def get(self, table: dict[str, Any], key: str, kind: type, line: int, default: Any) -> Any:
        value = table.get(key, default)
        if not isinstance(value, kind):
            raise self.fail(line, f"{key!r} must be a {_toml_type(kind)}, not {_toml_type(type(value))}")
        return value

    def strings(self, table: dict[str, Any], key: str, line: int) -> list[str] | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(line, f"{key!r} must be a list of non-empty strings")
        return value

    def location(self, text: str, key: str, line: int) -> str:
        """A prefix or location, trailing slashes dropped (as containers/image does), checked."""
        value = text.rstrip("/")
        if value.startswith(("http://", "https://")):
            raise self.fail(line, f"invalid {key} {text!r}: URI schemes are not supported")
        problem = _prefix_problem(value, key)
        if problem:
            raise self.fail(line, f"invalid {key} {text!r}: {problem}")
        return value

    def parse(self, dropin: bool) -> _FileConf:
        if "registries" in self.data:
            return self.v1(dropin)
        conf = _FileConf(self.path)
        conf.registries = self.registries()
        line = self.lines.key("unqualified-search-registries")
        conf.search = self.search(self.strings(self.data, "unqualified-search-registries", line), line)
        line = self.lines.key("short-name-mode")
        mode = self.get(self.data, "short-name-mode", str, line, "")
        if mode and mode not in SHORT_NAME_MODES:
            raise self.fail(
                line, f"invalid short-name-mode {mode!r}: must be enforcing, permissive or disabled"
            )
        conf.mode = mode or None
        conf.helpers = self.strings(self.data, "credential-helpers", self.lines.key("credential-helpers"))
        conf.aliases = self.aliases()
        return conf

    def search(self, hosts: list[str] | None, line: int) -> list[str] | None:
        """unqualified-search-registries entries: ``host[:port]``, trailing slashes dropped."""
        if hosts is None:
            return None
        result = [h.rstrip("/") for h in hosts]
        for host in result:
            if not DOMAIN_RE.fullmatch(host):
                raise self.fail(line, f"unqualified-search-registries: {host!r} is not a host[:port]")
        return result

    def registries(self) -> list[Registry]:
        raw_list = self.get(self.data, "registry", list, self.lines.key("registry"), [])
        result: list[Registry] = []
        by_prefix: dict[str, Registry] = {}
        by_location: dict[str, Registry] = {}
        for index, raw in enumerate(raw_list):
            registry = self.registry(index, raw)
            first = by_prefix.setdefault(registry.prefix, registry)
            if first is not registry:
                raise self.fail(
                    registry.line, f"prefix {registry.prefix!r} is already defined at line {first.line}"
                )
            # containers/image: one location (a wildcard: its prefix) must agree on insecure and blocked.
            other = by_location.setdefault(registry.location or registry.prefix, registry)
            for name in ("insecure", "blocked"):
                if getattr(other, name) != getattr(registry, name):
                    raise self.fail(
                        registry.line,
                        f"registry {registry.location or registry.prefix!r} is defined more than once with "
                        f"conflicting {name!r} settings (see line {other.line})",
                    )
            result.append(registry)
        return result

    def registry(self, index: int, raw: Any) -> Registry:
        header, line = self.lines.registry(index)
        if not isinstance(raw, dict):
            raise self.fail(line, f"[[registry]] #{index + 1} must be a table")

        def key_line(key: str) -> int:
            return self.lines.key(key, header, line)

        location_text = self.get(raw, "location", str, key_line("location"), "")
        prefix_text = self.get(raw, "prefix", str, key_line("prefix"), "")
        location = self.location(location_text, "location", key_line("location")) if location_text else ""
        if prefix_text:
            prefix = self.location(prefix_text, "prefix", key_line("prefix"))
        elif location:
            prefix = location
        else:
            raise self.fail(line, "[[registry]] needs a 'location' (or only a wildcard '*.domain' prefix)")
        if not location and not prefix.startswith("*."):
            raise self.fail(
                key_line("prefix"), f"prefix {prefix!r} needs a 'location' (only '*.domain' may omit it)"
            )
        if "pull-from-mirror" in raw:
            raise self.fail(
                key_line("pull-from-mirror"), "'pull-from-mirror' belongs in [[registry.mirror]] tables"
            )
        by_digest = self.get(raw, "mirror-by-digest-only", bool, key_line("mirror-by-digest-only"), False)
        mirrors_raw = self.get(raw, "mirror", list, key_line("mirror"), [])
        mirrors = tuple(
            self.mirror((header, line), i, m, by_digest, prefix) for i, m in enumerate(mirrors_raw)
        )
        return Registry(
            prefix=prefix,
            location=location,
            insecure=self.get(raw, "insecure", bool, key_line("insecure"), False),
            blocked=self.get(raw, "blocked", bool, key_line("blocked"), False),
            mirrors=mirrors,
            mirror_by_digest_only=by_digest,
            origin=self.path,
            line=line,
        )

    def mirror(self, registry: tuple[int, int], index: int, raw: Any, by_digest: bool, prefix: str) -> Mirror:
        header, line = self.lines.mirror(*registry, index)
        if not isinstance(raw, dict):
            raise self.fail(line, f"mirror #{index + 1} of prefix {prefix!r} must be a table")

        def key_line(key: str) -> int:
            return self.lines.key(key, header, line)

        text = self.get(raw, "location", str, key_line("location"), "")
        if not text.rstrip("/"):
            raise self.fail(line, f"mirror #{index + 1} of prefix {prefix!r} needs a 'location'")
        location = self.location(text, "mirror location", key_line("location"))
        pull_from = self.get(raw, "pull-from-mirror", str, key_line("pull-from-mirror"), "")
        if pull_from and by_digest:
            raise self.fail(
                key_line("pull-from-mirror"),
                f"prefix {prefix!r} sets mirror-by-digest-only, so its mirrors cannot set pull-from-mirror",
            )
        if pull_from and pull_from not in PULL_FROM_MIRROR:
            raise self.fail(
                key_line("pull-from-mirror"),
                f"invalid pull-from-mirror {pull_from!r}: must be all, digest-only or tag-only",
            )
        return Mirror(
            location, self.get(raw, "insecure", bool, key_line("insecure"), False), pull_from or "all"
        )

    def aliases(self) -> dict[str, Alias]:
        header_line = self.lines.table("aliases")
        table = self.get(self.data, "aliases", dict, header_line or self.lines.key("aliases"), {})
        header = next((i for i, h in enumerate(self.lines.headers) if h[2] == "aliases" and not h[1]), -1)
        result: dict[str, Alias] = {}
        for name, value in table.items():
            line = self.lines.key(name, header, header_line)
            if not isinstance(value, str):
                raise self.fail(line, f"[aliases] {name!r}: the value must be a string")
            try:
                check_alias_name(name)
                target = parse_alias_value(value) if value else None
            except InvalidArgument as exc:
                raise self.fail(line, f"[aliases] {name!r}: {exc}") from None
            result[name] = Alias(name, target, self.path, line)
        return result

    def v1(self, dropin: bool) -> _FileConf:
        """The version 1 tables as version 2 entries (blocked first, then insecure, merged per host)."""
        tables_lines = [self.lines.table(f"registries.{n}") for n in ("search", "insecure", "block")]
        line = min((n for n in tables_lines if n), default=self.lines.key("registries"))
        if dropin:
            raise self.fail(line, "drop-in files must use the version 2 format, not [registries.*] tables")
        if any(key in self.data for key in _V2_KEYS):
            raise self.fail(line, "mixes version 1 [registries.*] tables with version 2 keys")
        tables = self.get(self.data, "registries", dict, line, {})
        lists: dict[str, list[str]] = {}
        for name in ("search", "insecure", "block"):
            where = self.lines.table(f"registries.{name}") or line
            table = tables.get(name, {})
            if not isinstance(table, dict):
                raise self.fail(where, f"[registries.{name}] must be a table")
            lists[name] = self.strings(table, "registries", where) or []
        by_host: dict[str, Registry] = {}
        for name in ("block", "insecure"):
            where = self.lines.table(f"registries.{name}") or line
            for text in lists[name]:
                host = self.location(text, "registry", where)
                old = by_host.get(host, Registry(host, host, origin=self.path, line=where))
                by_host[host] = Registry(
                    host,
                    host,
                    insecure=old.insecure or name == "insecure",
                    blocked=old.blocked or name == "block",
                    origin=self.path,
                    line=old.line,
                )
        conf = _FileConf(self.path, registries=list(by_host.values()))
        where = self.lines.table("registries.search") or line
        conf.search = self.search(lists["search"] if "search" in tables else None, where)
        return conf


def _prefix_problem(text: str, key: str) -> str:
    """Why ``text`` is not ``host[:port][/path][:tag|@digest]`` (or, for a prefix, ``*.domain``); ""."""
    if text.startswith("*."):
        if key != "prefix" or not DOMAIN_RE.fullmatch(text[2:]) or any(c in text for c in "/@:"):
            return "a wildcard must be '*.domain', and only in a prefix"
        return ""
    name, at, digest = text.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        return "bad digest"
    colon = name.rfind(":")
    if colon > name.rfind("/") and "/" in name:
        if not TAG_RE.fullmatch(name[colon + 1 :]):
            return "bad tag"
        name = name[:colon]
    try:
        parse_name_prefix(name)
    except InvalidArgument:
        return "expected host[:port][/namespace...][:tag|@digest]"
    return ""


def _parse_file(text: str, path: str, dropin: bool) -> _FileConf:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_POS_RE.fullmatch(message)
        if where:
            raise InvalidArgument(f"{path}:{where[2]}:{where[3]}: invalid TOML: {where[1]}") from None
        raise _error(path, max(1, len(text.splitlines())), f"invalid TOML: {message}") from None
    except RecursionError:
        raise _error(path, 1, "invalid TOML: arrays or tables nested too deeply") from None
    return _FileParser(path, text, data).parse(dropin)


def _merge(path: str, dropin_dir: str, files: list[_FileConf]) -> RegistriesConf:
    """Apply ``files`` in order, with containers/image's drop-in semantics."""
    registries: dict[str, Registry] = {}
    search: list[str] = []
    search_origin = mode = mode_origin = ""
    helpers: list[str] = []
    aliases: dict[str, Alias] = {}
    for conf in files:
        registries.update((r.prefix, r) for r in conf.registries)
        if conf.search is not None:
            search, search_origin = conf.search, conf.path
        if conf.mode is not None:
            mode, mode_origin = conf.mode, conf.path
        if conf.helpers is not None:
            helpers = conf.helpers
        aliases.update(conf.aliases)
    return RegistriesConf(
        path=path,
        dropin_dir=dropin_dir,
        registries=tuple(registries[p] for p in sorted(registries)),
        unqualified_search_registries=tuple(search),
        search_origin=search_origin,
        short_name_mode=mode,
        short_name_mode_origin=mode_origin,
        aliases={name: a for name, a in aliases.items() if a.value is not None},
        credential_helpers=tuple(helpers) or (AUTH_FILE_HELPER,),
        files=tuple(c.path for c in files),
    )


def parse(text: str, path: str, dropin: bool = False) -> RegistriesConf:
    """Parse one file's content on its own; errors are :class:`InvalidArgument` ``path:line: problem``."""
    return _merge(path, "", [_parse_file(text, path, dropin)])


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------

_Stat = tuple[int, ...] | None


def _stat(path: str) -> _Stat:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return (-1, exc.errno or 0)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _dropins(dropin_dir: str) -> list[str]:
    """The ``*.conf`` files of ``dropin_dir`` in lexical order (no directory: none)."""
    if not dropin_dir:
        return []
    try:
        with os.scandir(dropin_dir) as entries:
            names = [e.name for e in entries if e.name.endswith(".conf") and not e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise InvalidArgument(f"{dropin_dir}: cannot read the drop-in directory: {exc.strerror}") from None
    return [os.path.join(dropin_dir, name) for name in sorted(names)]


def _fingerprint(path: str, dropin_dir: str) -> tuple[Any, ...]:
    """What changes when any file of the configuration changes (the directory's entries included)."""
    try:
        dropins = _dropins(dropin_dir)
    except InvalidArgument as exc:
        dropins = [str(exc)]
    return (
        _stat(path) if path else None,
        _stat(dropin_dir) if dropin_dir else None,
        tuple((p, _stat(p)) for p in dropins),
    )


def _read(path: str) -> str | None:
    """The file's text; None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path}: cannot read: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_config(path: str, dropin_dir: str = "") -> RegistriesConf:
    """Read ``path`` (missing or "": nothing) and the drop-ins of ``dropin_dir`` ("": none), uncached.

    Raises :class:`InvalidArgument` naming the file, the line and the problem."""
    files: list[_FileConf] = []
    text = _read(path) if path else None
    if text is not None:
        files.append(_parse_file(text, path, dropin=False))
    for dropin in _dropins(dropin_dir):
        text = _read(dropin)
        if text is not None:  # removed since the listing: ignored, as containers/image does
            files.append(_parse_file(text, dropin, dropin=True))
    return _merge(path, dropin_dir, files)


class RegistriesConfig:
    """One registries.conf and drop-in directory, re-read when a file changes.

    :meth:`load` is cheap enough for every pull (a ``stat`` per file). When a changed file no longer parses
    after a good configuration was loaded, the good one stays in use and one warning per distinct failure
    is logged; without any good configuration the failure is raised.
    """

    def __init__(self, path: str, dropin_dir: str = "") -> None:
        self.path = path
        self.dropin_dir = dropin_dir
        self._lock = threading.Lock()
        self._conf: RegistriesConf | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._failure: InvalidArgument | None = None  # the current files' failure (None: they are good)

    def load(self, auto_reload: bool = True) -> RegistriesConf:
        """The configuration, re-read first when a file changed (``auto_reload`` False: only the first
        time; :meth:`reload` then picks changes up)."""
        with self._lock:
            if self._conf is not None and not auto_reload:
                return self._conf
            fingerprint = _fingerprint(self.path, self.dropin_dir)
            if fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self._read(warn=True)
            if self._conf is None:
                assert self._failure is not None
                raise self._failure
            return self._conf

    def reload(self, force: bool = True) -> RegistriesConf:
        """Re-read the files (``force`` False: only when one changed), for SIGHUP. Raises
        :class:`InvalidArgument` when they do not parse; the previous configuration then stays in use."""
        with self._lock:
            fingerprint = _fingerprint(self.path, self.dropin_dir)
            if force or fingerprint != self._fingerprint:
                self._fingerprint = fingerprint
                self._read(warn=False)
            if self._failure is not None:
                raise self._failure
            assert self._conf is not None
            return self._conf

    def _read(self, warn: bool) -> None:
        try:
            conf = read_config(self.path, self.dropin_dir)
        except InvalidArgument as exc:
            repeated = self._failure is not None and str(self._failure) == str(exc)
            self._failure = exc
            if warn and self._conf is not None and not repeated:
                log.warning("%s; keeping the registries configuration loaded before", exc)
            return
        if self._conf is not None and conf != self._conf:
            log.info("registries configuration changed: %s", ", ".join(conf.files) or "no files")
        self._conf, self._failure = conf, None


_CONFIGS: dict[tuple[str, str], RegistriesConfig] = {}
_CONFIGS_LOCK = threading.Lock()


def config_for(path: str, dropin_dir: str = "") -> RegistriesConfig:
    """The process-wide :class:`RegistriesConfig` of ``path`` and ``dropin_dir``."""
    with _CONFIGS_LOCK:
        return _CONFIGS.setdefault((path, dropin_dir), RegistriesConfig(path, dropin_dir))


def load(path: str, dropin_dir: str = "") -> RegistriesConf:
    """:meth:`RegistriesConfig.load` of the shared configuration of ``path`` and ``dropin_dir``."""
    return config_for(path, dropin_dir).load()


def reload(path: str, dropin_dir: str = "", force: bool = True) -> RegistriesConf:
    """:meth:`RegistriesConfig.reload` of the shared configuration (SIGHUP)."""
    return config_for(path, dropin_dir).reload(force)


def validate(path: str, dropin_dir: str = "") -> RegistriesConf:
    """Read the configuration now and raise :class:`InvalidArgument` when it is bad (start-up)."""
    return config_for(path, dropin_dir).reload(force=True)

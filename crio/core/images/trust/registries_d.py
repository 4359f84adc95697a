"""containers-registries.d(5): where to find the signatures of docker images.

Facts from containers/image (``docker/registries_d.go``, ``docs/signature-protocols.md``):

* Every ``*.yaml`` file of the directory is read; its top level may hold ``default-docker`` and
  ``docker: {<scope>: ...}``, each entry with ``lookaside``, ``lookaside-staging``, ``sigstore`` and
  ``sigstore-staging`` (the old names of the first two) and ``use-sigstore-attachments``. A scope (or
  ``default-docker``) defined in two files is an error. A missing directory means no configuration.
* Lookup for an image tries the image's own identity, then the repository, its parent namespaces, the host
  and the wildcard domains (the policy scopes of :mod:`.scopes`), then ``default-docker``; each setting is
  taken from the first of those entries that sets it. For reading, ``lookaside`` wins over ``sigstore``;
  for writing, ``lookaside-staging``, ``sigstore-staging``, then the reading location. With nothing
  configured containers/image reads from :data:`BUILTIN_LOOKASIDE` (root) instead.
* A signature lives at ``<base>/<repository path without the host>@<algorithm>=<hex>/signature-<N>``, N
  counting from 1 until one is missing (``docker.io/library/busybox`` → ``<base>/library/busybox@sha256=…``).
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from crio.core.errors import InvalidArgument
from crio.core.images.reference import DockerReference, validate_digest
from crio.core.images.trust import scopes

log = logging.getLogger(__name__)

DEFAULT_REGISTRIES_D = "/etc/containers/registries.d"
BUILTIN_LOOKASIDE = "file:///var/lib/containers/sigstore"
_KEYS = ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging", "use-sigstore-attachments")
_SCHEMES = ("file", "http", "https")


@dataclass(frozen=True)
class Namespace:
    """One ``docker`` entry (or ``default-docker``) as configured; unset settings are None."""

    lookaside: str | None = None
    lookaside_staging: str | None = None
    sigstore: str | None = None
    sigstore_staging: str | None = None
    use_sigstore_attachments: bool | None = None
    source: str = ""

    def read_location(self) -> str | None:
        """The location signatures are read from: ``lookaside``, else ``sigstore``."""
        return self.lookaside or self.sigstore or None

    def write_location(self) -> str | None:
        """The location signatures are written to: a staging location, else the reading one."""
        return self.lookaside_staging or self.sigstore_staging or self.read_location()


@dataclass(frozen=True)
class LookasideConfig:
    """The effective settings for one image: the lookaside base URL to read signatures from (None: none
    configured), whether to use sigstore attachments, and the base URL signatures would be written to."""

    lookaside: str | None
    use_sigstore_attachments: bool
    lookaside_staging: str | None = None


@dataclass(frozen=True, eq=False)
class RegistriesD:
    """The merged configuration of a registries.d directory."""

    directory: str
    default_docker: Namespace | None
    docker: Mapping[str, Namespace]

    def _entries(self, ref: DockerReference) -> list[Namespace]:
        found = [self.docker[scope] for scope in scopes.docker_scopes(ref) if scope in self.docker]
        return found + ([self.default_docker] if self.default_docker is not None else [])

    def config_for(self, ref: DockerReference) -> LookasideConfig:
        """The settings that apply to ``ref`` (most specific entry first, per setting)."""
        entries = self._entries(ref)
        read = next((loc for loc in (e.read_location() for e in entries) if loc), None)
        write = next((loc for loc in (e.write_location() for e in entries) if loc), None)
        attach = next(
            (e.use_sigstore_attachments for e in entries if e.use_sigstore_attachments is not None), False
        )
        return LookasideConfig(read, attach, write)


def lookaside_url(base: str, ref: DockerReference, manifest_digest: str, index: int) -> str:
    """The URL of signature number ``index`` (counting from 1) of the manifest ``manifest_digest`` of
    ``ref``'s repository under the lookaside ``base`` (file://, http:// or https://)."""
    if index < 1:
        raise InvalidArgument(f"lookaside signature index {index}: signatures are numbered from 1")
    validate_digest(manifest_digest, "manifest digest")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in _SCHEMES:
        raise InvalidArgument(f"lookaside {base!r}: unsupported scheme (file, http or https)")
    algorithm, _, hex_part = manifest_digest.partition(":")
    path = f"{parts.path}/{ref.path}@{algorithm}={hex_part}/signature-{index}"
    # The added parts (repository path, digest) need no escaping; the base keeps its own.
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def lookaside_file(url: str) -> str:
    """The local path of a ``file://`` lookaside URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        raise InvalidArgument(f"{url!r} is not a file:// URL")
    return urllib.parse.unquote(parts.path)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def _mark(text: str, keys: tuple[str, ...], at_key: bool) -> tuple[int, int] | None:
    """1-based (line, column) of the value at ``keys`` (or of the last key itself) in the YAML ``text``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # pragma: no cover - the text already loaded once
        return None
    for index, key in enumerate(keys):
        if not isinstance(node, yaml.MappingNode):
            break
        pair = next(
            ((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None
        )
        if pair is None:
            break
        node = pair[0] if at_key and index == len(keys) - 1 else pair[1]
    if node is None:
        return None
    return node.start_mark.line + 1, node.start_mark.column + 1


def _error(
    path: str, text: str, keys: tuple[str, ...], problem: str, at_key: bool = False
) -> InvalidArgument:
    mark = _mark(text, keys, at_key)
    where = f"{path}:{mark[0]}:{mark[1]}" if mark else path
    return InvalidArgument(f"{where}: {'.'.join(keys) or 'top level'}: {problem}")


def _namespace(value: Any, path: str, text: str, keys: tuple[str, ...]) -> Namespace:
    if value is None:
        return Namespace(source=path)
    if not isinstance(value, dict):
        raise _error(path, text, keys, "must be a mapping")
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if key not in _KEYS:
            log.warning("%s: %s: ignoring unknown key %r", path, ".".join(keys), key)
            continue
        if key == "use-sigstore-attachments":
            if not isinstance(item, bool):
                raise _error(path, text, (*keys, key), "must be true or false")
        elif not isinstance(item, str):
            raise _error(path, text, (*keys, key), "must be a URL string")
        elif item and urllib.parse.urlsplit(item).scheme not in _SCHEMES:
            raise _error(path, text, (*keys, key), f"{item!r}: unsupported scheme (file, http or https)")
        fields[key.replace("-", "_")] = item
    return Namespace(source=path, **fields)


def parse_registries_file(text: str, path: str) -> tuple[Namespace | None, dict[str, Namespace]]:
    """Parse one registries.d file: its ``default-docker`` entry and its ``docker`` entries.

    Raises :class:`InvalidArgument` naming ``path:line:column`` and the problem.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        raise InvalidArgument(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{path}: invalid YAML: collections nested too deeply") from None
    if data is None:
        return None, {}
    if not isinstance(data, dict):
        raise _error(path, text, (), "must be a mapping")
    for key in data:
        if key not in ("default-docker", "docker"):
            log.warning("%s: ignoring unknown top-level key %r", path, key)
    default = (
        _namespace(data["default-docker"], path, text, ("default-docker",))
        if "default-docker" in data
        else None
    )
    docker_raw = data.get("docker") or {}
    if not isinstance(docker_raw, dict):
        raise _error(path, text, ("docker",), "must be a mapping of scopes")
    docker: dict[str, Namespace] = {}
    for scope, value in docker_raw.items():
        if not isinstance(scope, str):
            raise _error(path, text, ("docker",), f"scope {scope!r} is not a string")
        try:
            scopes.validate_docker_scope(scope)
        except InvalidArgument as exc:
            raise _error(path, text, ("docker", scope), str(exc), at_key=True) from None
        docker[scope] = _namespace(value, path, text, ("docker", scope))
    return default, docker


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def parse_registries_d(files: Mapping[str, str], directory: str = "") -> RegistriesD:
    """Merge parsed files (path → text, in the order given). Raises :class:`InvalidArgument`, also for a
    scope or ``default-docker`` defined in two files."""
    default: Namespace | None = None
    docker: dict[str, Namespace] = {}
    for path, text in files.items():
        file_default, file_docker = parse_registries_file(text, path)
        if file_default is not None:
            if default is not None:
                raise _error(path, text, ("default-docker",), f"also defined in {default.source}", True)
            default = file_default
        for scope, namespace in file_docker.items():
            if scope in docker:
                raise _error(
                    path,
                    text,
                    ("docker", scope),
                    f"scope {scope!r} is also defined in {docker[scope].source}",
                    at_key=True,
                )
            docker[scope] = namespace
    return RegistriesD(directory, default, docker)


_CACHE: dict[str, tuple[tuple[tuple[str, int, int, int], ...], RegistriesD]] = {}
_CACHE_LOCK = threading.Lock()


def _listing(directory: str) -> tuple[tuple[str, int, int, int], ...]:
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".yaml"))
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise InvalidArgument(f"{directory}: cannot list: {exc.strerror}") from None
    entries: list[tuple[str, int, int, int]] = []
    for name in names:
        try:
            st = os.stat(os.path.join(directory, name))
        except FileNotFoundError:
            continue  # removed since the listing, as containers/image tolerates
        entries.append((name, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(entries)


def load_registries_d(directory: str = DEFAULT_REGISTRIES_D) -> RegistriesD:
    """Load every ``*.yaml`` of ``directory`` (in name order), cached while the file list and their
    (mtime, size, inode) stay the same. A missing directory gives an empty configuration."""
    listing = _listing(directory)
    with _CACHE_LOCK:
        cached = _CACHE.get(directory)
    if cached is not None and cached[0] == listing:
        return cached[1]
    files = {os.path.join(directory, entry[0]): _read(os.path.join(directory, entry[0])) for entry in listing}
    config = parse_registries_d(files, directory)
    with _CACHE_LOCK:
        _CACHE[directory] = (listing, config)
    return config

"""Short image names (``busybox``, ``library/redis:7``) resolved as containers-registries.conf(5) says.

A short name is a reference whose first path component is not a registry: it has no ``/``, or what comes
before the first ``/`` has no ``.`` or ``:`` and is not ``localhost``. That is decided on the name as the
user wrote it, before Docker's normalization would put it on docker.io.

Resolution follows containers/image's pkg/shortnames without a terminal (a daemon never prompts): an
``[aliases]`` entry wins; otherwise each ``unqualified-search-registries`` entry gives one candidate, and
``short-name-mode`` decides whether several candidates are an error ("enforcing") or are tried in order
("permissive", "disabled"). Ambiguity and an empty search list are :class:`FailedPrecondition`: the name is
fine, the node's configuration does not let it resolve to one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.images.reference import DockerReference, parse_docker_reference

if TYPE_CHECKING:
    from crio.core.images.registries import RegistriesConf

MODES = ("enforcing", "permissive", "disabled")
DEFAULT_MODE = "enforcing"  # CRI-O's [crio.image] short_name_mode default
MODE_OVERRIDE_ORIGIN = "crio.conf [crio.image] short_name_mode"


@dataclass(frozen=True)
class ShortNameResolution:
    """The fully-qualified references to try, in order; ``alias`` when an ``[aliases]`` entry gave the
    only one; ``mode`` the short-name-mode applied; ``description`` what happened, for the log."""

    candidates: list[DockerReference]
    alias: bool
    mode: str
    description: str = ""


def _split(text: str) -> tuple[str, str]:
    """(name, ``:tag``/``@digest`` suffix) of a reference as written."""
    name, at, digest = text.partition("@")
    suffix = at + digest
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, suffix = name[:colon], name[colon:] + suffix
    return name, suffix


def is_short_name(text: str) -> bool:
    """True when ``text`` names no registry (``busybox``, ``user/app:1``; not ``quay.io/x``,
    ``localhost/x``, ``host:5000/x``). Only looks at the text; it does not validate it."""
    name, _ = _split(text)
    first, slash, _ = name.partition("/")
    return not slash or ("." not in first and ":" not in first and first != "localhost")


def check_alias_name(name: str) -> None:
    """Raise :class:`InvalidArgument` unless ``name`` is a short name without tag or digest (an
    ``[aliases]`` key)."""
    base, suffix = _split(name)
    try:
        parse_docker_reference(name)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid short name: {exc}") from None
    if "@" in suffix:
        raise InvalidArgument("a short name must not contain a digest")
    if suffix:
        raise InvalidArgument("a short name must not contain a tag")
    if not is_short_name(base):
        raise InvalidArgument("a short name must not contain a registry")


def parse_alias_value(value: str) -> DockerReference:
    """An ``[aliases]`` value: a fully-qualified repository without tag or digest, normalized
    (``docker.io/alpine`` → ``docker.io/library/alpine``). Raises :class:`InvalidArgument`."""
    try:
        ref = parse_docker_reference(value, default_tag=False)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid alias {value!r}: {exc}") from None
    if ref.digest:
        raise InvalidArgument(f"invalid alias {value!r}: must not contain a digest")
    if ref.tag:
        raise InvalidArgument(f"invalid alias {value!r}: must not contain a tag")
    if is_short_name(value):
        raise InvalidArgument(f"invalid alias {value!r}: must contain a registry and a repository")
    return ref


def _with_suffix(repo: DockerReference, suffix: str) -> DockerReference:
    """``repo`` with the requested ``:tag``/``@digest`` (``:latest`` when neither)."""
    return parse_docker_reference(repo.name + suffix)


def _search_candidates(text: str, conf: RegistriesConf) -> list[DockerReference]:
    candidates: list[DockerReference] = []
    for registry in conf.unqualified_search_registries:
        try:
            candidates.append(parse_docker_reference(f"{registry}/{text}"))
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"short name {text!r} with unqualified-search registry {registry!r}: {exc}"
            ) from None
    return candidates


def _mode(conf: RegistriesConf, mode_override: str) -> tuple[str, str]:
    """(mode, where it comes from)."""
    if mode_override:
        if mode_override not in MODES:
            raise InvalidArgument(
                f"invalid short_name_mode {mode_override!r}: must be enforcing, permissive or disabled"
            )
        return mode_override, f"in {MODE_OVERRIDE_ORIGIN}"
    if conf.short_name_mode:
        return conf.short_name_mode, f"in {conf.short_name_mode_origin}"
    return DEFAULT_MODE, "by default"


def resolve_short_name(text: str, conf: RegistriesConf, mode_override: str = "") -> ShortNameResolution:
    """The references ``text`` may be pulled as, in the order to try them.

    A fully-qualified name is itself. A short name's alias (looked up without tag or digest) is the one
    candidate, with the requested tag or digest. Otherwise each unqualified-search registry gives one
    (``docker.io`` adds ``library/`` to one-component names), ``:latest`` unless a tag or digest was given.
    ``mode_override`` (crio.conf's ``short_name_mode``; "" keeps registries.conf's) chooses the mode.

    Raises :class:`InvalidArgument` for a malformed name, :class:`FailedPrecondition` when no search
    registry is configured, or when "enforcing" finds more than one candidate.
    """
    mode, mode_origin = _mode(conf, mode_override)
    ref = parse_docker_reference(text)  # validates the name in every case
    if not is_short_name(text):
        return ShortNameResolution([ref], alias=False, mode=mode)
    name, suffix = _split(text)
    alias = conf.alias(name)
    if alias is not None and alias.value is not None:
        where = f"{alias.origin}:{alias.line}" if alias.line else alias.origin
        return ShortNameResolution(
            [_with_suffix(alias.value, suffix)],
            alias=True,
            mode=mode,
            description=f"resolved short name {text!r} as an alias ({where})",
        )
    candidates = _search_candidates(text, conf)
    if not candidates:
        files = conf.search_origin or ", ".join(conf.files) or conf.sources
        raise FailedPrecondition(
            f'short name "{text}" did not match any alias and no unqualified-search-registries are '
            f"configured in {files}; use a fully-qualified name, or add an alias or "
            "unqualified-search-registries"
        )
    if mode == "enforcing" and len(candidates) > 1:
        origin = mode_origin
        if origin == "by default":
            origin += f", unqualified-search-registries in {conf.search_origin}"
        raise FailedPrecondition(
            f'short name "{text}" is ambiguous: it could be {", ".join(str(c) for c in candidates)} '
            f'(short-name-mode "enforcing" {origin}); use a fully-qualified name or add an alias'
        )
    return ShortNameResolution(
        candidates,
        alias=False,
        mode=mode,
        description=f"resolving short name {text!r} with unqualified-search-registries "
        f"({conf.search_origin})",
    )


def local_candidates(text: str, conf: RegistriesConf) -> list[str]:
    """The names to look ``text`` up under in the local store, in order, without duplicates.

    A fully-qualified name is itself. A short name: its alias, each unqualified-search registry's
    candidate, then the docker.io normalization (how crio named short-name pulls before, and Docker does).
    Raises :class:`InvalidArgument` for a malformed name."""
    ref = parse_docker_reference(text)
    if not is_short_name(text):
        return [str(ref)]
    name, suffix = _split(text)
    found: list[DockerReference] = []
    alias = conf.alias(name)
    if alias is not None and alias.value is not None:
        found.append(_with_suffix(alias.value, suffix))
    found.extend(_search_candidates(text, conf))
    found.append(ref)
    return list(dict.fromkeys(str(r) for r in found))

"""Policy scopes: which configured names apply to an image, most specific first.

The rules are containers/image's ``PolicyConfigurationIdentity``/``PolicyConfigurationNamespaces``
(``docker/policyconfiguration/naming.go``), shared by containers-policy.json(5) and
containers-registries.d(5):

* docker: the identity is ``domain/path:tag`` or ``domain/path@digest`` (a reference carrying both keeps
  only the digest: containers/image refuses such references, and the digest is the more precise name);
  then the repository ``domain/path``, each parent namespace up to the bare ``domain``, and then wildcard
  domains built from the host without its port (``a.b.example.com:5000`` → ``*.b.example.com``,
  ``*.example.com``, ``*.com``).
* oci, oci-archive, docker-archive (and dir): the identity is ``/path:ref`` (or ``/path``), then the path,
  then each parent directory except ``/``. Paths are taken as given; resolving symlinks is the caller's job.
"""

from __future__ import annotations

import os

from crio.core.errors import InvalidArgument
from crio.core.images.reference import (
    DIGEST_RE,
    DOMAIN_RE,
    PATH_RE,
    TAG_RE,
    DockerReference,
    parse_docker_reference,
)

DOCKER = "docker"
PATH_TRANSPORTS = ("oci", "oci-archive", "docker-archive", "dir")


def docker_identity(ref: DockerReference) -> str:
    """The most specific docker scope of ``ref``: ``domain/path@digest``, else ``domain/path:tag``, else the
    repository."""
    if ref.digest:
        return f"{ref.name}@{ref.digest}"
    if ref.tag:
        return f"{ref.name}:{ref.tag}"
    return ref.name


def docker_namespaces(ref: DockerReference) -> list[str]:
    """The less specific docker scopes of ``ref``: repository, parent namespaces, host, then wildcards."""
    result: list[str] = []
    name = ref.name
    while True:
        result.append(name)
        slash = name.rfind("/")
        if slash < 0:
            break
        name = name[:slash]
    host = name.partition(":")[0]
    while "." in host:
        host = host.partition(".")[2]
        result.append("*." + host)
    return result


def docker_scopes(ref: DockerReference) -> list[str]:
    """Every docker scope that applies to ``ref``, most specific first (without the default ``""``)."""
    identity = docker_identity(ref)
    namespaces = docker_namespaces(ref)
    return namespaces if identity == namespaces[0] else [identity, *namespaces]


def parse_docker_scope_reference(text: str) -> DockerReference:
    """Parse the fully qualified ``domain/path[:tag][@digest]`` a caller looks a docker image up with."""
    ref = parse_docker_reference(text, default_tag=False)
    return DockerReference(ref.domain, ref.path, None, ref.digest) if ref.digest else ref


def path_scopes(scope: str) -> list[str]:
    """The scopes of an ``oci:``-like ``/path[:ref]``, most specific first (without ``""``)."""
    path, colon, _ = scope.partition(":")
    result = [scope] if colon else []
    while path and path != "/":
        result.append(path)
        path = os.path.dirname(path)
    return result


def validate_docker_scope(scope: str) -> None:
    """Check a docker scope: ``*.domain``, ``domain``, ``domain/namespace...`` or a full
    ``domain/path:tag`` / ``domain/path@digest``. Raises :class:`InvalidArgument` with the reason."""
    if scope.startswith("*."):
        if ":" in scope or "/" in scope or not DOMAIN_RE.fullmatch(scope[2:]):
            raise InvalidArgument(f"invalid wildcard scope {scope!r}: expected '*.domain' without a port")
        return
    name, at, digest = scope.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f"invalid scope {scope!r}: bad digest {digest!r}")
    domain, slash, path = name.partition("/")
    if slash and not at:
        colon = path.rfind(":")
        if colon > path.rfind("/"):
            path, tag = path[:colon], path[colon + 1 :]
            if not TAG_RE.fullmatch(tag):
                raise InvalidArgument(f"invalid scope {scope!r}: bad tag {tag!r}")
    if not DOMAIN_RE.fullmatch(domain) or (slash and not PATH_RE.fullmatch(path)) or (at and not slash):
        raise InvalidArgument(
            f"invalid scope {scope!r}: expected host[:port][/namespace...][/repo[:tag|@digest]] "
            "in the fully expanded form, or '*.domain'"
        )


def validate_path_scope(scope: str) -> None:
    """Check an ``oci:``-like scope: an absolute, clean path other than ``/``, with an optional ``:ref``."""
    path = scope.partition(":")[0]
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid scope {scope!r}: must be an absolute path")
    if path == "/":
        raise InvalidArgument('invalid scope "/": use the transport default scope ""')
    if os.path.normpath(path) != path:
        raise InvalidArgument(f"invalid scope {scope!r}: not a clean path (use {os.path.normpath(path)!r})")


def validate_scope(transport: str, scope: str) -> None:
    """Validate ``scope`` for the transports this module knows; other transports' scopes are opaque."""
    if transport == DOCKER:
        validate_docker_scope(scope)
    elif transport in PATH_TRANSPORTS:
        validate_path_scope(scope)


def scopes_for(transport: str, scope: str) -> list[str]:
    """All configured scopes that may apply to ``scope`` of ``transport``, most specific first, without the
    transport default ``""``. Docker scopes are parsed (:class:`InvalidArgument` when malformed); an empty
    scope has no candidates (only the transport default and the global default apply)."""
    if not scope:
        return []
    if transport == DOCKER:
        return docker_scopes(parse_docker_scope_reference(scope))
    if transport in PATH_TRANSPORTS:
        return path_scopes(scope)
    return [scope] if scope else []

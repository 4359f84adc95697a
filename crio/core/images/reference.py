"""Image references: docker names normalized as Docker does, and transport-prefixed references.

``busybox`` is ``docker.io/library/busybox:latest``; ``host:5000/a/b@sha256:...`` keeps its digest;
``name:tag@sha256:...`` keeps both. A reference may carry a transport prefix (``docker://``, ``oci:``,
``oci-archive:``, ``docker-archive:``); without one it is a docker reference. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crio.core.errors import InvalidArgument
from crio.core.types import ImageReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

DOCKER = "docker"
OCI = "oci"
OCI_ARCHIVE = "oci-archive"
DOCKER_ARCHIVE = "docker-archive"
TRANSPORTS = (DOCKER, OCI, OCI_ARCHIVE, DOCKER_ARCHIVE)

# The grammar of github.com/distribution/reference, written out here.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
PATH_COMPONENT_RE = re.compile(_PATH_COMPONENT)
PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DOMAIN_RE = re.compile(_DOMAIN)
TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
DIGEST_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_ANCHORED_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)")
_HEX64_RE = re.compile(r"[a-f0-9]{64}")
# The image-layout ``org.opencontainers.image.ref.name`` grammar: alphanumeric components joined by
# runs of ``-._:@/+``.
OCI_REF_NAME_RE = re.compile(r"[A-Za-z0-9]+(?:[-._:@/+]+[A-Za-z0-9]+)*")

# Digest algorithms we accept, with the length of their lowercase hex encoding.
DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True)
class DockerReference:
    """A parsed docker reference: ``domain/path[:tag][@digest]`` (at least one of tag and digest set once
    normalized)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name with its domain: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository name as Docker shows it: ``busybox``, ``user/app``, ``quay.io/x/y``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]:
                return path[len(OFFICIAL_REPO_PREFIX) :]
            return path
        return self.name

    @property
    def familiar(self) -> str:
        """The whole reference as Docker shows it: ``busybox:latest``, ``quay.io/x/y@sha256:...``."""
        return self.familiar_name + self._suffix()

    @property
    def remote(self) -> str:
        """What to ask a registry's manifest endpoint for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def with_domain_path(self, domain: str, path: str) -> DockerReference:
        """The same tag and digest on another repository."""
        return DockerReference(domain, path, self.tag, self.digest)

    def __str__(self) -> str:
        return self.name + self._suffix()


def validate_digest(digest: str, what: str = "") -> str:
    """Check ``algorithm:hex`` (sha256 with 64, sha512 with 128 lowercase hex digits); return it.

    Raises :class:`InvalidArgument` naming ``what`` (or the digest) on a malformed or unsupported digest.
    """
    subject = what or repr(digest)
    if not DIGEST_RE.fullmatch(digest):
        raise InvalidArgument(f"{subject}: invalid digest format {digest!r}")
    algorithm, _, hex_part = digest.partition(":")
    length = DIGEST_ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidArgument(f"{subject}: unsupported digest algorithm {algorithm!r} (sha256 or sha512)")
    if len(hex_part) != length or hex_part != hex_part.lower():
        raise InvalidArgument(
            f"{subject}: invalid {algorithm} digest {digest!r}: need {length} lowercase hex"
        )
    return digest


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, remainder) as Docker does: the first component is a domain when it
    contains ``.`` or ``:``, is ``localhost``, or has uppercase letters; otherwise the domain is docker.io."""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _split_tag_digest(text: str, original: str) -> tuple[str, str | None, str | None]:
    name, at, digest = text.partition("@")
    if at:
        validate_digest(digest, f"invalid reference {original!r}")
    tag: str | None = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise InvalidArgument(f"invalid reference {original!r}: invalid tag {tag!r}")
    return name, tag, digest if at else None


def parse_docker_reference(text: str, default_tag: bool = True) -> DockerReference:
    """Parse and normalize a docker reference (no transport prefix).

    ``busybox`` → ``docker.io/library/busybox:latest`` (``:latest`` only with ``default_tag`` and when
    there is neither tag nor digest). Raises :class:`InvalidArgument` naming the reference.
    """
    if not text:
        raise InvalidArgument("invalid reference '': empty image name")
    if _HEX64_RE.fullmatch(text):
        raise InvalidArgument(
            f"invalid reference {text!r}: cannot specify 64-byte hexadecimal strings as a repository name"
        )
    name, tag, digest = _split_tag_digest(text, text)
    if not name:
        raise InvalidArgument(f"invalid reference {text!r}: empty repository name")
    domain, path = _split_domain(name)
    if not DOMAIN_RE.fullmatch(domain):
        raise InvalidArgument(f"invalid reference {text!r}: invalid registry domain {domain!r}")
    if not PATH_RE.fullmatch(path):
        if path.lower() != path and PATH_RE.fullmatch(path.lower()):
            raise InvalidArgument(f"invalid reference {text!r}: repository name must be lowercase")
        raise InvalidArgument(f"invalid reference {text!r}: invalid repository name {path!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"invalid reference {text!r}: repository name longer than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return DockerReference(domain, path, tag, digest)


def parse_name_prefix(text: str) -> tuple[str, str]:
    """Check a non-normalized ``host[:port][/path...]`` (registries.conf prefixes and locations) and
    return (domain, path); ``path`` may be empty. Raises :class:`InvalidArgument`."""
    domain, _, path = text.partition("/")
    if not DOMAIN_RE.fullmatch(domain) or (path and not PATH_RE.fullmatch(path)):
        raise InvalidArgument(f"invalid repository prefix {text!r}")
    return domain, path


def _split_path_ref(transport: str, rest: str, original: str) -> tuple[str, str]:
    path, _, ref = rest.partition(":")
    if not path.startswith("/"):
        raise InvalidArgument(f"invalid reference {original!r}: {transport}: needs an absolute path")
    return path, ref


def parse_transport_reference(text: str) -> ImageReference:
    """Split an optional transport prefix off ``text`` and normalize what follows.

    ``docker://x`` and plain ``x`` → ("docker", normalized ``x``); ``oci:/dir[:tag]``,
    ``oci-archive:/f.tar[:tag]``, ``docker-archive:/f.tar[:name:tag|:@N]`` → (transport, path[:ref]) with
    a docker-archive name normalized. ``oci:1.0`` (a valid tag, not a path) is the docker image ``oci:1.0``.
    """
    original = text
    if text.startswith("docker://"):
        return ImageReference(DOCKER, str(parse_docker_reference(text[len("docker://") :])))
    transport, colon, rest = text.partition(":")
    if colon and transport in (OCI, OCI_ARCHIVE, DOCKER_ARCHIVE):
        if not rest.startswith("/") and TAG_RE.fullmatch(rest):
            return ImageReference(DOCKER, str(parse_docker_reference(text)))
        path, ref = _split_path_ref(transport, rest, original)
        if transport == DOCKER_ARCHIVE and ref and not ref.startswith("@"):
            parsed = parse_docker_reference(ref)
            if parsed.digest:
                raise InvalidArgument(f"invalid reference {original!r}: docker-archive names take no digest")
            ref = str(parsed)
        elif transport == DOCKER_ARCHIVE and ref and not ref[1:].isdigit():
            raise InvalidArgument(f"invalid reference {original!r}: @N must be an image index")
        elif transport != DOCKER_ARCHIVE and ref and not OCI_REF_NAME_RE.fullmatch(ref):
            raise InvalidArgument(f"invalid reference {original!r}: invalid image name {ref!r}")
        return ImageReference(transport, f"{path}:{ref}" if ref else path)
    return ImageReference(DOCKER, str(parse_docker_reference(text)))


def split_path_reference(name: str) -> tuple[str, str]:
    """Split the name of an ``oci``/``oci-archive``/``docker-archive`` reference into (path, ref)."""
    path, _, ref = name.partition(":")
    return path, ref

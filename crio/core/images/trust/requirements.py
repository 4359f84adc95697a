"""The requirement and ``signedIdentity`` objects of containers-policy.json(5), and identity matching.

Identity matching follows containers/image (``signature/policy_reference_match.go``): the signed
``docker-reference`` is parsed with Docker's normalization (``busybox`` = ``docker.io/library/busybox``),
an unparsable one never matches, and the image's own reference (``intended``) is the one it was requested
under. ``matchExact``, ``matchRepoDigestOrExact``, ``matchRepository`` and ``remapIdentity`` need that
reference, so they never match images of non-docker transports.
"""

from __future__ import annotations

from dataclasses import dataclass

from crio.core.errors import InvalidArgument
from crio.core.images.reference import DockerReference, parse_docker_reference

INSECURE_ACCEPT_ANYTHING = "insecureAcceptAnything"
REJECT = "reject"
SIGNED_BY = "signedBy"
SIGSTORE_SIGNED = "sigstoreSigned"
SIGNED_BASE_LAYER = "signedBaseLayer"
GPG_KEYS = "GPGKeys"


def _parse(text: str) -> DockerReference | None:
    try:
        return parse_docker_reference(text, default_tag=False)
    except InvalidArgument:
        return None


def _name_only(ref: DockerReference) -> bool:
    return ref.tag is None and ref.digest is None


def _intended(ref: DockerReference | None) -> DockerReference | None:
    """The image's identity as containers/image sees it: a tag next to a digest is dropped."""
    if ref is not None and ref.tag and ref.digest:
        return DockerReference(ref.domain, ref.path, None, ref.digest)
    return ref


def _repo_digest_or_exact(intended: DockerReference, signed: DockerReference) -> bool:
    if _name_only(signed):
        return False
    if intended.digest:
        return signed.name == intended.name
    if intended.tag:
        return str(signed) == str(intended)
    return False


@dataclass(frozen=True)
class MatchExact:
    """The signed identity must equal the image's reference (so a digest pull fails with tag signatures)."""

    type = "matchExact"

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted for an image requested as ``intended``."""
        intended, signed = _intended(intended), _parse(signed_text)
        if intended is None or signed is None or _name_only(intended) or _name_only(signed):
            return False
        return str(signed) == str(intended)


@dataclass(frozen=True)
class MatchRepoDigestOrExact:
    """A tag reference needs the exact identity; a digest reference needs the same repository (default)."""

    type = "matchRepoDigestOrExact"

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted for an image requested as ``intended``."""
        intended, signed = _intended(intended), _parse(signed_text)
        if intended is None or signed is None:
            return False
        return _repo_digest_or_exact(intended, signed)


@dataclass(frozen=True)
class MatchRepository:
    """The signed identity must be in the image's repository (any tag)."""

    type = "matchRepository"

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted for an image requested as ``intended``."""
        signed = _parse(signed_text)
        return intended is not None and signed is not None and signed.name == intended.name


@dataclass(frozen=True)
class ExactReference:
    """The signed identity must equal ``docker_reference`` (which has a tag or digest)."""

    docker_reference: str
    type = "exactReference"

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted (the image's own reference plays no part)."""
        wanted, signed = _parse(self.docker_reference), _parse(signed_text)
        if wanted is None or signed is None or _name_only(wanted) or _name_only(signed):
            return False
        return str(signed) == str(wanted)


@dataclass(frozen=True)
class ExactRepository:
    """The signed identity must be in the repository ``docker_repository``."""

    docker_repository: str
    type = "exactRepository"

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted (the image's own reference plays no part)."""
        wanted, signed = _parse(self.docker_repository), _parse(signed_text)
        return wanted is not None and signed is not None and signed.name == wanted.name


@dataclass(frozen=True)
class RemapIdentity:
    """Replace ``prefix`` of the image's repository name by ``signed_prefix``, then match as
    ``matchRepoDigestOrExact``; the prefix matches whole path components only."""

    prefix: str
    signed_prefix: str
    type = "remapIdentity"

    def remap(self, ref: DockerReference) -> DockerReference | None:
        """``ref`` with the prefix replaced (``ref`` itself when the prefix does not apply); None when the
        result is not a reference in its canonical fully expanded form."""
        name = ref.name
        if not (name == self.prefix or name.startswith(self.prefix + "/")):
            return ref
        text = self.signed_prefix + str(ref)[len(self.prefix) :]
        remapped = _parse(text)
        return remapped if remapped is not None and str(remapped) == text else None

    def matches(self, intended: DockerReference | None, signed_text: str) -> bool:
        """Whether ``signed_text`` is accepted for an image requested as ``intended``."""
        intended, signed = _intended(intended), _parse(signed_text)
        if intended is None or signed is None:
            return False
        remapped = self.remap(intended)
        return remapped is not None and _repo_digest_or_exact(remapped, signed)


IdentityMatch = (
    MatchExact | MatchRepoDigestOrExact | MatchRepository | ExactReference | ExactRepository | RemapIdentity
)


@dataclass(frozen=True)
class InsecureAcceptAnything:
    """Accepts every image."""

    type = INSECURE_ACCEPT_ANYTHING


@dataclass(frozen=True)
class Reject:
    """Refuses every image."""

    type = REJECT


@dataclass(frozen=True)
class SignedBy:
    """A simple-signing (OpenPGP) signature by one of the keys in the keyring(s) is required.

    Exactly one of ``key_path``, ``key_paths`` and ``key_data`` is set; key files are read when the
    requirement is evaluated, so a rotated key file takes effect without a restart.
    """

    key_type: str
    signed_identity: IdentityMatch
    key_path: str | None = None
    key_paths: tuple[str, ...] | None = None
    key_data: bytes | None = None
    type = SIGNED_BY

    @property
    def paths(self) -> tuple[str, ...]:
        """Every key file this requirement reads."""
        return (self.key_path,) if self.key_path is not None else self.key_paths or ()


@dataclass(frozen=True)
class SigstoreSigned:
    """A sigstore signature by one of the public keys is required.

    Keys come from ``key_paths`` (``keyPath`` or ``keyPaths``) or ``key_datas`` (``keyData`` or
    ``keyDatas``, PEM). ``unsupported`` names the configured options crio parses but cannot verify
    (``fulcio``, ``pki``, ``rekorPublicKey*``): a requirement using any of them refuses every image.
    """

    signed_identity: IdentityMatch
    key_paths: tuple[str, ...] = ()
    key_datas: tuple[bytes, ...] = ()
    unsupported: tuple[str, ...] = ()
    type = SIGSTORE_SIGNED

    @property
    def paths(self) -> tuple[str, ...]:
        """Every key file this requirement reads."""
        return self.key_paths


@dataclass(frozen=True)
class SignedBaseLayer:
    """Parsed for compatibility; containers/image never implemented it, so it refuses every image."""

    base_layer_identity: IdentityMatch
    type = SIGNED_BASE_LAYER


Requirement = InsecureAcceptAnything | Reject | SignedBy | SigstoreSigned | SignedBaseLayer

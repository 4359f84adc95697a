"""Policy evaluation: does an image, with its signatures, satisfy a list of requirements?

Semantics of containers/image (``signature/policy_eval*.go``): every requirement must hold;
``insecureAcceptAnything`` always does, ``reject`` never; ``signedBy``/``sigstoreSigned`` hold when at
least one signature of their kind verifies with a trusted key, claims the digest of the image's (top-level)
manifest and claims an identity the requirement's ``signedIdentity`` accepts. Signatures of the other kind
are ignored, as are sigstore attachments of another media type. A refusal is a :class:`PermissionDenied`
naming the image, the policy file and every reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from crio.core.errors import PermissionDenied
from crio.core.images.reference import DockerReference
from crio.core.images.trust.keys import KeyLoadError, load_gpg_keyring, load_sigstore_keys
from crio.core.images.trust.payload import SignatureRejected, SignedClaims, manifest_matches
from crio.core.images.trust.policy import Policy
from crio.core.images.trust.requirements import (
    ExactReference,
    ExactRepository,
    IdentityMatch,
    InsecureAcceptAnything,
    Reject,
    Requirement,
    SignedBaseLayer,
    SignedBy,
    SigstoreSigned,
)
from crio.core.images.trust.signature import MAX_SIGNATURE_SIZE, SIGSTORE_MIME_TYPE, Signature
from crio.core.images.trust.sigstore import verify_sigstore
from crio.core.images.trust.simplesigning import verify_simple_signing


@dataclass(frozen=True)
class CandidateImage:
    """An image to judge.

    ``reference``: the docker reference it was requested under (None for non-docker transports);
    ``manifest``: the exact bytes of the top-level manifest that reference names (an index included);
    ``signatures``: every signature found for it; ``policy_path``: the policy file, for messages;
    ``name``: how to call the image in messages when there is no docker reference.
    """

    reference: DockerReference | None
    manifest: bytes
    signatures: Sequence[Signature]
    policy_path: str
    name: str = ""

    @property
    def display_name(self) -> str:
        """The image as messages name it."""
        if self.reference is not None:
            return str(self.reference)
        return self.name or "(unnamed image)"


def _check_size(sig: Signature) -> None:
    if len(sig.data) > MAX_SIGNATURE_SIZE:
        raise SignatureRejected(f"{len(sig.data)} bytes is larger than the {MAX_SIGNATURE_SIZE}-byte limit")


def _check_claims(claims: SignedClaims, identity: IdentityMatch, image: CandidateImage) -> None:
    if not manifest_matches(image.manifest, claims.manifest_digest):
        raise SignatureRejected(f"it signs manifest {claims.manifest_digest}, not this image's manifest")
    if identity.matches(image.reference, claims.docker_reference):
        return
    reason = f"signed identity {claims.docker_reference!r} is not accepted by signedIdentity {identity.type}"
    if image.reference is None and not isinstance(identity, (ExactReference, ExactRepository)):
        reason += " (which needs a docker reference; this image has none)"
    raise SignatureRejected(reason)


def _missing(kind: str, image: CandidateImage, wanted: list[int]) -> str:
    others = len(image.signatures) - len(wanted)
    suffix = f" ({others} signature(s) of another kind ignored)" if others else ""
    return f"a {kind} signature is required, but the image has none{suffix}"


async def _signed_by(requirement: SignedBy, image: CandidateImage) -> str | None:
    try:
        keyring = load_gpg_keyring(requirement)
    except KeyLoadError as exc:
        return f"cannot load the trusted keys: {exc}"
    wanted = [i for i, sig in enumerate(image.signatures) if sig.kind == "simple-signing"]
    if not wanted:
        return _missing("simple-signing", image, wanted)
    failures: list[str] = []
    for index in wanted:
        sig = image.signatures[index]
        try:
            _check_size(sig)
            claims = await verify_simple_signing(sig.data, keyring)
            _check_claims(claims, requirement.signed_identity, image)
        except SignatureRejected as exc:
            failures.append(f"signature {index + 1}: {exc}")
            continue
        return None
    return "no signature verified: " + "; ".join(failures)


def _sigstore_signed(requirement: SigstoreSigned, image: CandidateImage) -> str | None:
    if requirement.unsupported:
        return f"sigstoreSigned with {', '.join(requirement.unsupported)} is not supported by crio"
    try:
        keys = load_sigstore_keys(requirement)
    except KeyLoadError as exc:
        return f"cannot load the trusted keys: {exc}"
    wanted = [
        i
        for i, sig in enumerate(image.signatures)
        if sig.kind == "sigstore" and sig.media_type == SIGSTORE_MIME_TYPE
    ]
    if not wanted:
        return _missing("sigstore", image, wanted)
    failures: list[str] = []
    for index in wanted:
        sig = image.signatures[index]
        try:
            _check_size(sig)
            _check_claims(verify_sigstore(sig, keys), requirement.signed_identity, image)
        except SignatureRejected as exc:
            failures.append(f"signature {index + 1}: {exc}")
            continue
        return None
    return "no signature verified: " + "; ".join(failures)


async def requirement_failure(requirement: Requirement, image: CandidateImage) -> str | None:
    """Why ``image`` does not satisfy ``requirement``, or None when it does."""
    if isinstance(requirement, InsecureAcceptAnything):
        return None
    if isinstance(requirement, Reject):
        return "every image is rejected"
    if isinstance(requirement, SignedBy):
        return await _signed_by(requirement, image)
    if isinstance(requirement, SigstoreSigned):
        return _sigstore_signed(requirement, image)
    if isinstance(requirement, SignedBaseLayer):
        return "signedBaseLayer is not implemented (containers/image does not implement it either)"
    raise TypeError(f"unknown requirement {requirement!r}")  # pragma: no cover


async def evaluate(requirements: Sequence[Requirement], image: CandidateImage) -> None:
    """Check ``image`` against every requirement; raise :class:`PermissionDenied` naming the image, the
    policy file and every reason when any fails."""
    reasons: list[str] = []
    if not requirements:
        reasons.append("the list of requirements is empty (an invalid policy)")
    for number, requirement in enumerate(requirements, 1):
        failure = await requirement_failure(requirement, image)
        if failure is not None:
            label = requirement.type if len(requirements) == 1 else f"{number} ({requirement.type})"
            reasons.append(f"requirement {label}: {failure}")
    if reasons:
        raise PermissionDenied(
            f"image {image.display_name} rejected by signature policy {image.policy_path}: "
            + "; ".join(reasons)
        )


async def check_image(policy: Policy, transport: str, reference_text: str, image: CandidateImage) -> None:
    """Evaluate ``image`` against the requirements ``policy`` has for ``reference_text`` of ``transport``
    (see :meth:`Policy.lookup`); raise :class:`PermissionDenied` when refused."""
    requirements = policy.requirements_for(transport, reference_text)
    if not image.policy_path:
        image = dataclasses.replace(image, policy_path=policy.path)
    await evaluate(requirements, image)

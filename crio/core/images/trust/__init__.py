"""Image trust: containers-policy.json(5) evaluation with real signature verification, and
containers-registries.d(5) lookaside configuration.

Typical use by a puller::

    policy = load_policy("/etc/containers/policy.json")
    if policy.needs_signatures("docker", str(ref)):
        ...fetch signatures (registries_d.load_registries_d(...).config_for(ref), sigstore attachments)...
    await check_image(policy, "docker", str(ref), CandidateImage(ref, manifest, signatures, policy.path))

Modules: :mod:`.policy` (parse, scope lookup), :mod:`.reqparse` (requirement objects in policy.json),
:mod:`.requirements` (requirement and identity objects, identity matching),
:mod:`.evaluate`, :mod:`.signature` (signatures and their containers/storage encoding),
:mod:`.simplesigning` (gpgv), :mod:`.sigstore` (cryptography), :mod:`.keys`, :mod:`.payload`,
:mod:`.registries_d`, :mod:`.scopes`, :mod:`.openpgp`, :mod:`.jsonpos`.
"""

from crio.core.images.trust.evaluate import CandidateImage, check_image, evaluate
from crio.core.images.trust.policy import DEFAULT_POLICY_PATH, Policy, load_policy, parse_policy
from crio.core.images.trust.registries_d import (
    LookasideConfig,
    RegistriesD,
    load_registries_d,
    lookaside_url,
)
from crio.core.images.trust.requirements import Requirement
from crio.core.images.trust.signature import (
    MAX_SIGNATURE_SIZE,
    Signature,
    decode_signatures,
    encode_signatures,
    signatures_big_data_key,
)

__all__ = [
    "DEFAULT_POLICY_PATH",
    "MAX_SIGNATURE_SIZE",
    "CandidateImage",
    "LookasideConfig",
    "Policy",
    "RegistriesD",
    "Requirement",
    "Signature",
    "check_image",
    "decode_signatures",
    "encode_signatures",
    "evaluate",
    "load_policy",
    "load_registries_d",
    "lookaside_url",
    "parse_policy",
    "signatures_big_data_key",
]

"""Verification of sigstore (cosign) signatures with public keys, using the ``cryptography`` package.

As in containers/image (``signature/internal/sigstore_payload.go`` ``VerifySigstorePayload``, which uses
sigstore's ``signature.LoadVerifier(key, crypto.SHA256)``): the base64 annotation
``dev.cosignproject.cosign/signature`` is a signature over the exact payload bytes; the hash is always
SHA-256; ECDSA signatures are ASN.1 DER (any of P-256, P-384, P-521), RSA signatures are PKCS #1 v1.5 (not
PSS), Ed25519 signs the payload itself. Only after a key verifies it is the payload parsed
(type ``cosign container image signature``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from crio.core.images.trust.keys import SigstorePublicKey
from crio.core.images.trust.payload import (
    SIGSTORE_TYPE,
    PayloadError,
    SignatureRejected,
    SignedClaims,
    parse_payload,
)
from crio.core.images.trust.signature import SIGSTORE_SIGNATURE_ANNOTATION, Signature


def _verifies(key: SigstorePublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        else:  # pragma: no cover - keys.parse_sigstore_key admits no other type
            return False
    except InvalidSignature:
        return False
    return True


def verify_sigstore(sig: Signature, keys: Sequence[SigstorePublicKey]) -> SignedClaims:
    """Verify a sigstore signature against ``keys`` (any one suffices) and parse its payload.

    The caller still has to check the claimed manifest digest and identity. Raises
    :class:`SignatureRejected` with the reason.
    """
    encoded = sig.annotations.get(SIGSTORE_SIGNATURE_ANNOTATION)
    if encoded is None:
        raise SignatureRejected(f"missing the {SIGSTORE_SIGNATURE_ANNOTATION} annotation")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected(
            f"the {SIGSTORE_SIGNATURE_ANNOTATION} annotation is not valid base64"
        ) from None
    if not any(_verifies(key, raw, sig.data) for key in keys):
        count = "the trusted key" if len(keys) == 1 else f"any of the {len(keys)} trusted keys"
        raise SignatureRejected(f"cryptographic verification failed: not signed by {count}")
    try:
        return parse_payload(sig.data, SIGSTORE_TYPE)
    except PayloadError as exc:
        raise SignatureRejected(f"invalid signed payload: {exc}") from None

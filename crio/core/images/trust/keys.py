"""Trusted key material of a requirement, loaded when the requirement is evaluated.

``signedBy`` keys are GPG keyrings (binary or ASCII-armored, one or more keys per file or ``keyData``);
they become one binary keyring for ``gpgv`` plus the set of primary key fingerprints. ``sigstoreSigned``
keys are PEM public keys: ECDSA, RSA or Ed25519, the types containers/image (via
sigstore's ``signature.LoadVerifier``) accepts. Every failure is a :class:`KeyLoadError` naming the file (or
the inline data) and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from crio.core.images.trust.openpgp import (
    PUBLIC_KEY_BLOCK,
    OpenPGPError,
    dearmor,
    is_armored,
    primary_fingerprints,
)
from crio.core.images.trust.requirements import SignedBy, SigstoreSigned

SigstorePublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
MAX_KEY_FILE_SIZE = 16 * 2**20


class KeyLoadError(Exception):
    """A trusted key cannot be loaded: the message names its source and the problem."""


@dataclass(frozen=True)
class GpgKeyring:
    """Trusted OpenPGP keys: a binary keyring for ``gpgv`` and the primary key fingerprints (upper hex)."""

    data: bytes
    fingerprints: frozenset[str]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_SIZE + 1)
    except OSError as exc:
        raise KeyLoadError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyLoadError(f"key file {path} is larger than {MAX_KEY_FILE_SIZE} bytes")
    return data


def parse_gpg_keys(data: bytes, source: str) -> tuple[bytes, list[str]]:
    """Turn keyring ``data`` (binary or armored) into (binary keyring, primary fingerprints).

    ``source`` names where the data came from in errors ("key file /x", "keyData").
    """
    try:
        if is_armored(data):
            blocks = [binary for kind, binary in dearmor(data) if kind == PUBLIC_KEY_BLOCK]
            if not blocks:
                raise OpenPGPError("has no PGP PUBLIC KEY BLOCK")
            data = b"".join(blocks)
        return data, primary_fingerprints(data)
    except OpenPGPError as exc:
        raise KeyLoadError(f"{source} is not a usable OpenPGP public keyring: {exc}") from None


def load_gpg_keyring(requirement: SignedBy) -> GpgKeyring:
    """Read and combine the keyrings of a ``signedBy`` requirement. Raises :class:`KeyLoadError`."""
    sources: list[tuple[bytes, str]]
    if requirement.key_data is not None:
        sources = [(requirement.key_data, "keyData")]
    else:
        sources = [(_read(path), f"key file {path}") for path in requirement.paths]
    parts: list[bytes] = []
    fingerprints: set[str] = set()
    for data, source in sources:
        binary, found = parse_gpg_keys(data, source)
        parts.append(binary)
        fingerprints.update(found)
    return GpgKeyring(b"".join(parts), frozenset(fingerprints))


def parse_sigstore_key(data: bytes, source: str) -> SigstorePublicKey:
    """Parse one PEM public key usable for sigstore signatures. Raises :class:`KeyLoadError`."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyLoadError(f"{source} is not a PEM public key: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, SUPPORTED_CURVES):
            raise KeyLoadError(
                f"{source}: ECDSA curve {key.curve.name} is not supported (P-256, P-384, P-521)"
            )
        return key
    if isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        return key
    raise KeyLoadError(f"{source}: {type(key).__name__} keys are not supported (ECDSA, RSA or Ed25519)")


def load_sigstore_keys(requirement: SigstoreSigned) -> list[SigstorePublicKey]:
    """Read the public keys of a ``sigstoreSigned`` requirement. Raises :class:`KeyLoadError`."""
    if requirement.key_datas:
        count = len(requirement.key_datas)
        return [
            parse_sigstore_key(data, "keyData" if count == 1 else f"keyDatas[{i}]")
            for i, data in enumerate(requirement.key_datas)
        ]
    if not requirement.key_paths:
        raise KeyLoadError("no public key configured")
    return [parse_sigstore_key(_read(path), f"key file {path}") for path in requirement.key_paths]

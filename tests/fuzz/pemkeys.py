"""Seed public keys for sigstoreSigned policies, PEM-encoded and fixed (CI's examples stay the same): the
supported kinds (ECDSA P-256/P-384, Ed25519, RSA) and some that must be refused (secp256k1, X25519)."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

_PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey | x25519.X25519PublicKey


def _pem(key: _PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


PUBLIC_KEYS = [
    _pem(ec.derive_private_key(0x5EED, ec.SECP256R1()).public_key()),
    _pem(ec.derive_private_key(0x5EED, ec.SECP384R1()).public_key()),
    _pem(ec.derive_private_key(0x5EED, ec.SECP256K1()).public_key()),
    _pem(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()),
    _pem(x25519.X25519PrivateKey.from_private_bytes(bytes(range(32))).public_key()),
    _pem(rsa.RSAPublicNumbers(65537, 2**2048 - 159).public_key()),
]

"""Synthetic OpenPGP seeds: packets framed per RFC 4880 §4.2 (old and new formats), a v4 public key, and
signed messages the shapes gpg writes (one-pass signed, compressed)."""

from __future__ import annotations

import base64
import zlib

from crio.core.images.trust import openpgp


def packet(tag: int, body: bytes, new_format: bool = True) -> bytes:
    """A packet with a definite length."""
    if new_format:
        if len(body) < 192:
            length = bytes([len(body)])
        elif len(body) < 8384:
            value = len(body) - 192
            length = bytes([(value >> 8) + 192, value & 0xFF])
        else:
            length = b"\xff" + len(body).to_bytes(4, "big")
        return bytes([0xC0 | tag]) + length + body
    if len(body) < 256:
        return bytes([0x80 | tag << 2]) + bytes([len(body)]) + body
    return bytes([0x80 | tag << 2 | 2]) + len(body).to_bytes(4, "big") + body


PUBLIC_KEY_BODY = bytes([4]) + b"\x65\x00\x00\x00" + bytes([22]) + b"\x00\x20" + bytes(32)
KEYRING = packet(openpgp.TAG_PUBLIC_KEY, PUBLIC_KEY_BODY) + packet(13, b"Test <test@example.com>")
ONE_PASS = packet(openpgp.TAG_ONE_PASS_SIGNATURE, bytes([3, 0, 8, 1]) + bytes(8) + b"\x01")
LITERAL = packet(openpgp.TAG_LITERAL, b"b\x00\x00\x00\x00\x00" + b'{"critical":{}}')
SIGNATURE = packet(openpgp.TAG_SIGNATURE, bytes([4, 0, 1, 8]) + bytes(20), new_format=False)
SIGNED_MESSAGE = ONE_PASS + LITERAL + SIGNATURE
# gpg --sign: a compressed packet of indeterminate length (old format, length type 3), zlib inside.
COMPRESSED_MESSAGE = bytes([0x80 | openpgp.TAG_COMPRESSED << 2 | 3, 2]) + zlib.compress(SIGNED_MESSAGE)
ARMORED_KEYRING = (
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
    + base64.encodebytes(KEYRING)
    + b"="
    + base64.b64encode(openpgp.crc24(KEYRING).to_bytes(3, "big"))
    + b"\n-----END PGP PUBLIC KEY BLOCK-----\n"
)

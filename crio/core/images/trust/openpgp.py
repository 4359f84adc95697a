"""Just enough OpenPGP (RFC 4880 / RFC 9580) framing to handle keyrings and signed messages in Python.

Cryptography is left to ``gpgv``; this module removes ASCII armor, walks packet headers, computes primary
key fingerprints (so a verified signature can be checked against the trusted keys) and finds where a signed
message ends inside a concatenation of signatures (the containers/storage signature blob).
"""

from __future__ import annotations

import base64
import binascii
import bz2
import hashlib
import re
import zlib
from dataclasses import dataclass

TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_ONE_PASS_SIGNATURE = 4
TAG_PUBLIC_KEY = 6
TAG_COMPRESSED = 8
TAG_MARKER = 10
TAG_LITERAL = 11
PUBLIC_KEY_BLOCK = "PUBLIC KEY BLOCK"

# First bytes of a signed message (containers/image ``internal/signature.FromBlob``): a compressed-data,
# one-pass-signature or signature packet, in the old or the new header format.
SIGNED_MESSAGE_FIRST_BYTES = frozenset(
    (0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2)
)
# Decompressing only to find where a compressed packet ends: refuse to expand beyond this.
MAX_EXPANSION = 64 * 2**20
MAX_NESTING = 8  # compressed packets inside compressed packets (gpg writes one level)

_ARMOR_BEGIN = re.compile(r"-----BEGIN PGP ([A-Z0-9 ,/]+)-----")
_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB


class OpenPGPError(ValueError):
    """Data that is not the expected OpenPGP structure; the message says what is wrong."""


@dataclass(frozen=True)
class Packet:
    """One packet: its tag, its body, the offset after it, and whether its length was indeterminate (the
    body then runs to the end of the data)."""

    tag: int
    body: bytes
    end: int
    indeterminate: bool = False


def _need(data: bytes, pos: int, count: int) -> None:
    if pos + count > len(data):
        raise OpenPGPError(f"truncated packet at offset {pos}")


def read_packet(data: bytes, pos: int) -> Packet:
    """Parse the packet starting at ``pos``. Raises :class:`OpenPGPError` on a malformed header."""
    _need(data, pos, 1)
    first = data[pos]
    if not first & 0x80:
        raise OpenPGPError(f"invalid packet header byte {first:#04x} at offset {pos}")
    pos += 1
    if first & 0x40:  # new format: the length may come in partial chunks
        chunks: list[bytes] = []
        while True:
            _need(data, pos, 1)
            octet = data[pos]
            final = True
            if octet < 192:
                length, pos = octet, pos + 1
            elif octet < 224:
                _need(data, pos, 2)
                length, pos = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2
            elif octet == 255:
                _need(data, pos, 5)
                length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
            else:
                length, pos, final = 1 << (octet & 0x1F), pos + 1, False
            _need(data, pos, length)
            chunks.append(data[pos : pos + length])
            pos += length
            if final:
                return Packet(first & 0x3F, b"".join(chunks), pos)
    tag, length_type = (first >> 2) & 0x0F, first & 0x03
    if length_type == 3:
        return Packet(tag, data[pos:], len(data), indeterminate=True)
    size = (1, 2, 4)[length_type]
    _need(data, pos, size)
    length, pos = int.from_bytes(data[pos : pos + size], "big"), pos + size
    _need(data, pos, length)
    return Packet(tag, data[pos : pos + length], pos + length)


def crc24(data: bytes) -> int:
    """The CRC-24 of ASCII armor checksums."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def is_armored(data: bytes) -> bool:
    """Whether ``data`` contains an ASCII-armored OpenPGP block."""
    return b"-----BEGIN PGP " in data


def dearmor(data: bytes) -> list[tuple[str, bytes]]:
    """Decode every ASCII-armored block in ``data``: a list of (kind, binary), e.g. ("PUBLIC KEY BLOCK", ...).

    Armor headers (``Version: ...``) are skipped; a ``=XXXX`` checksum, when present, must match.
    """
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise OpenPGPError("ASCII armor contains non-ASCII bytes") from None
    blocks: list[tuple[str, bytes]] = []
    index = 0
    while index < len(lines):
        match = _ARMOR_BEGIN.fullmatch(lines[index].strip())
        index += 1
        if match is None:
            continue
        kind = match.group(1)
        while index < len(lines) and ":" in lines[index]:
            index += 1  # armor headers
        body: list[str] = []
        checksum = ""
        end_line = f"-----END PGP {kind}-----"
        while index < len(lines) and lines[index].strip() != end_line:
            line = lines[index].strip()
            if line.startswith("=") and len(line) == 5:
                checksum = line[1:]
            elif line:
                body.append(line)
            index += 1
        if index >= len(lines):
            raise OpenPGPError(f"ASCII armor block {kind!r} has no end line")
        index += 1
        try:
            binary = base64.b64decode("".join(body), validate=True)
        except (binascii.Error, ValueError):
            raise OpenPGPError(f"ASCII armor block {kind!r} is not valid base64") from None
        if checksum:
            try:
                expected = int.from_bytes(base64.b64decode(checksum, validate=True), "big")
            except (binascii.Error, ValueError):
                raise OpenPGPError(f"ASCII armor block {kind!r} has a malformed checksum") from None
            if crc24(binary) != expected:
                raise OpenPGPError(f"ASCII armor block {kind!r} fails its checksum")
        blocks.append((kind, binary))
    return blocks


def fingerprint(body: bytes) -> str:
    """The fingerprint (uppercase hex, as gpg prints it) of a public-key packet body."""
    if not body:
        raise OpenPGPError("empty public key packet")
    version = body[0]
    if version == 4:
        if len(body) > 0xFFFF:  # the v4 fingerprint hashes a two-octet length
            raise OpenPGPError(f"version 4 public key packet of {len(body)} bytes (at most 65535)")
        return (
            hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False)
            .hexdigest()
            .upper()
        )
    if version in (5, 6):
        prefix = b"\x9a" if version == 5 else b"\x9b"
        return hashlib.sha256(prefix + len(body).to_bytes(4, "big") + body).hexdigest().upper()
    raise OpenPGPError(f"version {version} public keys are not supported")


def primary_fingerprints(keyring: bytes) -> list[str]:
    """The fingerprints of the primary keys in a binary keyring (one or more transferable public keys).

    Raises :class:`OpenPGPError` when the data is not a well-formed sequence of packets starting with a
    public key, or holds secret keys.
    """
    found: list[str] = []
    pos = 0
    while pos < len(keyring):
        packet = read_packet(keyring, pos)
        if packet.indeterminate:
            raise OpenPGPError("a keyring packet has an indeterminate length")
        if pos == 0 and packet.tag not in (TAG_PUBLIC_KEY, TAG_MARKER):
            if packet.tag == TAG_SECRET_KEY:
                raise OpenPGPError("holds a secret key; export the public key (gpg --export)")
            raise OpenPGPError(f"does not start with a public key (first packet has tag {packet.tag})")
        if packet.tag == TAG_SECRET_KEY:
            raise OpenPGPError("holds a secret key; export the public key (gpg --export)")
        if packet.tag == TAG_PUBLIC_KEY:
            found.append(fingerprint(packet.body))
        pos = packet.end
    if not found:
        raise OpenPGPError("contains no public key")
    return found


def _compressed_length(body: bytes, depth: int) -> int:
    """Where the data of a compressed packet with an indeterminate length ends (offset within ``body``)."""
    if not body:
        raise OpenPGPError("empty compressed packet")
    algorithm, stream = body[0], body[1:]
    if algorithm == 0:
        return 1 + _message_length(stream, 0, depth + 1)
    try:
        finished, rest = _inflated_end(algorithm, stream)
    except (zlib.error, OSError, EOFError) as exc:  # zlib.error; bz2 raises OSError for corrupt data
        raise OpenPGPError(f"compressed packet does not decompress: {exc}") from None
    if not finished:
        raise OpenPGPError("compressed packet is truncated or expands too much")
    return 1 + len(stream) - rest


def _inflated_end(algorithm: int, stream: bytes) -> tuple[bool, int]:
    """Decompress ``stream`` (ZIP, ZLIB or BZip2) up to :data:`MAX_EXPANSION`; return whether its end was
    reached and how many bytes follow it."""
    if algorithm in (1, 2):
        inflater = zlib.decompressobj(-15 if algorithm == 1 else 15)
        produced = len(inflater.decompress(stream, MAX_EXPANSION))
        while inflater.unconsumed_tail and not inflater.eof and produced < MAX_EXPANSION:
            produced += len(inflater.decompress(inflater.unconsumed_tail, MAX_EXPANSION))
        finished, rest = inflater.eof, len(inflater.unused_data)
    elif algorithm == 3:
        bunzip = bz2.BZ2Decompressor()
        produced = len(bunzip.decompress(stream, MAX_EXPANSION))
        while not bunzip.eof and bunzip.needs_input is False and produced < MAX_EXPANSION:
            produced += len(bunzip.decompress(b"", MAX_EXPANSION))
        finished, rest = bunzip.eof, len(bunzip.unused_data)
    else:
        raise OpenPGPError(f"unknown compression algorithm {algorithm}")
    return finished, rest


def message_length(data: bytes, start: int) -> int:
    """The offset just after the signed message starting at ``start`` (a compressed message, or one-pass
    signatures + literal data + signatures, or signatures + literal data). Raises :class:`OpenPGPError`."""
    return _message_length(data, start, 0)


def _message_length(data: bytes, start: int, depth: int) -> int:
    if depth > MAX_NESTING:
        raise OpenPGPError(f"compressed packets nested more than {MAX_NESTING} deep")
    packet = read_packet(data, start)
    while packet.tag == TAG_MARKER:
        packet = read_packet(data, packet.end)
    if packet.tag == TAG_COMPRESSED:
        if not packet.indeterminate:
            return packet.end
        return packet.end - len(packet.body) + _compressed_length(packet.body, depth)
    if packet.tag not in (TAG_ONE_PASS_SIGNATURE, TAG_SIGNATURE):
        raise OpenPGPError(f"not a signed message (first packet has tag {packet.tag})")
    one_pass = 0
    while packet.tag in (TAG_ONE_PASS_SIGNATURE, TAG_SIGNATURE):
        one_pass += packet.tag == TAG_ONE_PASS_SIGNATURE
        packet = read_packet(data, packet.end)
        if packet.indeterminate and packet.tag != TAG_LITERAL:
            raise OpenPGPError("a signature packet has an indeterminate length")
    if packet.tag != TAG_LITERAL:
        raise OpenPGPError(f"signed message without literal data (packet tag {packet.tag})")
    end = packet.end
    for _ in range(one_pass):
        if packet.indeterminate:
            raise OpenPGPError("literal data with an indeterminate length before its signatures")
        packet = read_packet(data, end)
        if packet.tag != TAG_SIGNATURE:
            raise OpenPGPError(f"one-pass signed message misses its signature (packet tag {packet.tag})")
        end = packet.end
    return end

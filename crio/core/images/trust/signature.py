"""Image signatures and their containers/storage encoding.

Facts, from containers/image (``internal/signature/signature.go``, ``internal/signature/sigstore.go``,
``storage/storage_dest.go`` ``PutSignaturesWithFormat``/``Commit``, ``storage/storage_image.go``):

* One signature is stored as ``signature.Blob(sig)``: a simple-signing signature is the raw OpenPGP signed
  message (for compatibility with old formats), any other kind is a zero byte, the format name, ``\\n`` and
  a format-specific chunk. The sigstore format name is ``sigstore-json`` and its chunk is the JSON object
  ``{"mimeType": ..., "payload": <base64 of the payload>, "annotations": {...}}``. ``FromBlob`` recognizes
  a raw OpenPGP message by its first byte (a compressed-data, one-pass-signature or signature packet).
* The signatures of a manifest are concatenated into one image big-data item; the blob does not delimit
  them: their sizes go into the image's metadata JSON. ``PutSignaturesWithFormat`` with no instance digest
  (the signatures of the image as copied) writes the item ``"signatures"`` with its sizes under
  ``"signature-sizes"``, and the same blob again under the key of the manifest written with
  ``PutManifest``; with an instance digest (one manifest of a list) only that per-manifest key. The
  per-manifest key is ``"signature-<digest hex>"`` (``signatureBigDataKey``: the digest's encoded part, no
  algorithm) and its sizes go under ``"signatures-sizes": {"<algorithm:hex>": [...]}``. The reader
  (``GetSignatures``) splits the item by those sizes and refuses leftover bytes.

:func:`decode_signatures` splits by the sizes when given, else by walking the blob (each OpenPGP message
and each sigstore JSON chunk has a findable end), so it also reads blobs whose sizes were lost.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from crio.core.errors import InvalidArgument
from crio.core.images.reference import validate_digest
from crio.core.images.trust.openpgp import SIGNED_MESSAGE_FIRST_BYTES, OpenPGPError, message_length

MAX_SIGNATURE_SIZE = 4 * 2**20  # containers/image iolimits.MaxSignatureBodySize
SIMPLE_SIGNING_FORMAT = "simple-signing"
SIGSTORE_FORMAT = "sigstore-json"
SIGSTORE_MIME_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGSTORE_BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TOPLEVEL_SIGNATURES_KEY = "signatures"
TOPLEVEL_SIZES_KEY = "signature-sizes"
INSTANCE_SIZES_KEY = "signatures-sizes"

SignatureKind = Literal["simple-signing", "sigstore"]


@dataclass(frozen=True)
class Signature:
    """One signature of an image.

    simple-signing: ``data`` is the OpenPGP signed message. sigstore: ``data`` is the payload (the signed
    JSON), ``annotations`` hold at least :data:`SIGSTORE_SIGNATURE_ANNOTATION` (base64 signature over
    ``data``), and ``mime_type`` is the layer media type it came with (None: the cosign signature type).
    """

    kind: SignatureKind
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    mime_type: str | None = None

    @property
    def media_type(self) -> str:
        """The sigstore media type (cosign's simple-signing type unless another was recorded)."""
        return self.mime_type if self.mime_type is not None else SIGSTORE_MIME_TYPE


def signature_blob(sig: Signature) -> bytes:
    """containers/image's ``signature.Blob``: the storage form of one signature."""
    if sig.kind == "simple-signing":
        return sig.data
    chunk = {
        "mimeType": sig.media_type,
        "payload": base64.b64encode(sig.data).decode(),
        "annotations": dict(sorted(sig.annotations.items())),
    }
    return b"\x00" + SIGSTORE_FORMAT.encode() + b"\n" + json.dumps(chunk, separators=(",", ":")).encode()


def _sigstore_from_chunk(chunk: bytes) -> Signature:
    try:
        value = json.loads(chunk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"invalid sigstore signature blob: {exc}") from None
    except RecursionError:
        raise InvalidArgument("invalid sigstore signature blob: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidArgument("invalid sigstore signature blob: not a JSON object")
    mime_type = value.get("mimeType", "")
    payload = value.get("payload") or ""
    annotations = value.get("annotations") or {}
    if not isinstance(mime_type, str) or not isinstance(payload, str) or not isinstance(annotations, dict):
        raise InvalidArgument("invalid sigstore signature blob: wrong member types")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise InvalidArgument("invalid sigstore signature blob: annotations must map strings to strings")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument("invalid sigstore signature blob: payload is not base64") from None
    return Signature("sigstore", data, annotations, None if mime_type == SIGSTORE_MIME_TYPE else mime_type)


def _split_format(blob: bytes) -> tuple[str, int]:
    """For a blob starting with a zero byte: its format name and where its chunk starts."""
    newline = blob.find(b"\n")
    if newline < 0:
        raise InvalidArgument("invalid signature blob: missing newline after the format name")
    name = blob[1:newline]
    if any(byte < 32 or byte >= 0x7F for byte in name):
        raise InvalidArgument("invalid signature blob: non-ASCII format name")
    return name.decode(), newline + 1


def signature_from_blob(blob: bytes) -> Signature:
    """containers/image's ``signature.FromBlob``: parse the storage form of one signature.

    Raises :class:`InvalidArgument` for an empty, unrecognized or malformed blob.
    """
    if not blob:
        raise InvalidArgument("empty signature blob")
    if blob[0] in SIGNED_MESSAGE_FIRST_BYTES:
        return Signature("simple-signing", blob)
    if blob[0] != 0:
        raise InvalidArgument(f"unrecognized signature format, starting with byte {blob[0]:#04x}")
    name, start = _split_format(blob)
    if name == SIMPLE_SIGNING_FORMAT:
        return Signature("simple-signing", blob[start:])
    if name == SIGSTORE_FORMAT:
        return _sigstore_from_chunk(blob[start:])
    raise InvalidArgument(f"unrecognized signature format {name!r}")


def encode_signatures(sigs: Sequence[Signature]) -> bytes:
    """The big-data value holding ``sigs``: their storage forms concatenated (see :func:`signature_sizes`)."""
    return b"".join(signature_blob(sig) for sig in sigs)


def signature_sizes(sigs: Sequence[Signature]) -> list[int]:
    """The sizes to record in the image metadata next to :func:`encode_signatures` of ``sigs``."""
    return [len(signature_blob(sig)) for sig in sigs]


def _blob_length(blob: bytes, start: int) -> int:
    """The length of the signature blob starting at ``start`` of a concatenation."""
    try:
        if blob[start] in SIGNED_MESSAGE_FIRST_BYTES:
            return message_length(blob, start) - start
        if blob[start] != 0:
            raise InvalidArgument(f"unrecognized signature format, starting with byte {blob[start]:#04x}")
        name, chunk = _split_format(blob[start:])
        chunk += start
        if name == SIMPLE_SIGNING_FORMAT:
            return message_length(blob, chunk) - start
        if name == SIGSTORE_FORMAT:
            text = blob[chunk:].decode("utf-8", errors="surrogateescape")
            _, end = json.JSONDecoder().raw_decode(text)
            return chunk + len(text[:end].encode("utf-8", errors="surrogateescape")) - start
        raise InvalidArgument(f"unrecognized signature format {name!r}")
    except (OpenPGPError, ValueError) as exc:
        raise InvalidArgument(f"cannot delimit the signature at offset {start}: {exc}") from None
    except RecursionError:
        raise InvalidArgument(
            f"cannot delimit the signature at offset {start}: JSON nested too deeply"
        ) from None


def decode_signatures(blob: bytes, sizes: Sequence[int] | None = None) -> list[Signature]:
    """Parse a signatures big-data value. With ``sizes`` (from the image metadata) split exactly as
    containers/image does; without, find each signature's end. Raises :class:`InvalidArgument`."""
    pieces: list[bytes] = []
    offset = 0
    if sizes is not None:
        for size in sizes:
            if size < 0 or offset + size > len(blob):
                raise InvalidArgument(f"signature sizes {list(sizes)} do not fit a {len(blob)}-byte blob")
            pieces.append(blob[offset : offset + size])
            offset += size
        if offset != len(blob):
            raise InvalidArgument(f"signatures blob has {len(blob) - offset} extra bytes")
    else:
        while offset < len(blob):
            length = _blob_length(blob, offset)
            pieces.append(blob[offset : offset + length])
            offset += length
    return [signature_from_blob(piece) for piece in pieces]


def signatures_big_data_key(manifest_digest: str) -> str:
    """The image big-data key of the signatures of the manifest with ``manifest_digest``:
    ``signature-<hex>``."""
    validate_digest(manifest_digest, "manifest digest")
    return "signature-" + manifest_digest.partition(":")[2]


def update_signature_metadata(
    metadata: Mapping[str, Any], manifest_digest: str, sigs: Sequence[Signature], toplevel: bool
) -> dict[str, Any]:
    """A copy of an image's metadata (parsed JSON) recording the sizes of ``sigs`` stored under
    :func:`signatures_big_data_key` (and, with ``toplevel``, under :data:`TOPLEVEL_SIGNATURES_KEY`)."""
    validate_digest(manifest_digest, "manifest digest")
    result = dict(metadata)
    sizes = signature_sizes(sigs)
    per_instance = dict(result.get(INSTANCE_SIZES_KEY) or {})
    per_instance[manifest_digest] = sizes
    result[INSTANCE_SIZES_KEY] = per_instance
    if toplevel:
        result[TOPLEVEL_SIZES_KEY] = sizes
    return result

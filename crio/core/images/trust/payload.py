"""The JSON payload both signature kinds sign, parsed as strictly as containers/image does.

Format (containers-signature(5); containers/image ``signature/internal/sigstore_payload.go``)::

    {"critical": {"type": <kind>, "image": {"docker-manifest-digest": "sha256:..."},
                  "identity": {"docker-reference": "host/repo:tag"}},
     "optional": {"creator": "...", "timestamp": 1700000000, ...}}

``critical`` and its sub-objects must hold exactly these members; duplicated members anywhere are refused;
``optional`` may hold anything (``creator`` must then be a string and ``timestamp`` an integer). cosign
writes ``"optional": null``, which only the sigstore kind accepts.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

SIMPLE_SIGNING_TYPE = "atomic container signature"
SIGSTORE_TYPE = "cosign container image signature"
# go-digest algorithms and the length of their hex encoding.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")


class SignatureRejected(Exception):
    """A signature does not verify or is unacceptable; the message is the reason (without the signature's
    number, which the evaluator adds)."""


class PayloadError(ValueError):
    """The payload is not a valid signature payload; the message says why."""


@dataclass(frozen=True)
class SignedClaims:
    """What a verified signature claims: the manifest digest and the image identity."""

    manifest_digest: str
    docker_reference: str


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PayloadError(f"duplicate member {json.dumps(key)}")
        result[key] = value
    return result


def _exact(value: Any, where: str, members: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} is not a JSON object")
    for key in value:
        if key not in members:
            raise PayloadError(f"unexpected member {json.dumps(key)} in {where}")
    for key in members:
        if key not in value:
            raise PayloadError(f"missing {where}.{key}")
    return value


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} is not a string")
    return value


def validate_digest(text: str) -> str:
    """Check a go-digest ``algorithm:hex`` string of a supported algorithm; return it or raise
    :class:`PayloadError`."""
    match = _DIGEST.fullmatch(text)
    if match is None:
        raise PayloadError(f"invalid docker-manifest-digest {json.dumps(text)}")
    length = DIGEST_HEX_LENGTHS.get(match.group(1))
    if length is None:
        raise PayloadError(f"unsupported digest algorithm {json.dumps(match.group(1))}")
    if not re.fullmatch(f"[a-f0-9]{{{length}}}", match.group(2)):
        raise PayloadError(f"invalid {match.group(1)} digest {json.dumps(text)}")
    return text


def manifest_matches(manifest: bytes, digest: str) -> bool:
    """Whether ``digest`` (a validated ``algorithm:hex``) is the digest of the ``manifest`` bytes."""
    algorithm, _, expected = digest.partition(":")
    if algorithm not in DIGEST_HEX_LENGTHS:
        return False
    return hashlib.new(algorithm, manifest).hexdigest() == expected


def parse_payload(data: bytes, signature_type: str) -> SignedClaims:
    """Parse a signed payload of ``signature_type`` (:data:`SIMPLE_SIGNING_TYPE` or :data:`SIGSTORE_TYPE`).

    Call it only on cryptographically verified bytes. Raises :class:`PayloadError` with the reason.
    """
    try:
        document = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_constant)
    except PayloadError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("payload is not valid JSON: nested too deeply") from None
    top = _exact(document, "the payload", ("critical", "optional"))
    optional = top["optional"]
    if optional is not None or signature_type != SIGSTORE_TYPE:
        if not isinstance(optional, dict):
            raise PayloadError("optional is not a JSON object")
        if "creator" in optional and not isinstance(optional["creator"], str):
            raise PayloadError("optional.creator is not a string")
        timestamp = optional.get("timestamp")
        if "timestamp" in optional and (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, (int, float))
            or not math.isfinite(timestamp)
            or timestamp != int(timestamp)
        ):
            raise PayloadError("optional.timestamp is not an integer")
    critical = _exact(top["critical"], "critical", ("type", "image", "identity"))
    kind = _text(critical, "type", "critical")
    if kind != signature_type:
        raise PayloadError(
            f"unrecognized signature type {json.dumps(kind)} (expected {json.dumps(signature_type)})"
        )
    image = _exact(critical["image"], "critical.image", ("docker-manifest-digest",))
    identity = _exact(critical["identity"], "critical.identity", ("docker-reference",))
    digest = validate_digest(_text(image, "docker-manifest-digest", "critical.image"))
    return SignedClaims(digest, _text(identity, "docker-reference", "critical.identity"))


def _constant(name: str) -> Any:
    raise PayloadError(f"payload is not valid JSON: {name}")


def make_payload(
    signature_type: str, manifest_digest: str, docker_reference: str, optional: dict[str, Any] | None = None
) -> bytes:
    """Serialize a payload (for tools and tests that create signatures)."""
    document = {
        "critical": {
            "type": signature_type,
            "image": {"docker-manifest-digest": manifest_digest},
            "identity": {"docker-reference": docker_reference},
        },
        "optional": optional if optional is not None else {},
    }
    return json.dumps(document, separators=(",", ":")).encode()

"""Fuzz the OpenPGP framing (keyrings, armor, signed messages), the containers/storage signature blobs and
the signed payloads: only OpenPGPError, InvalidArgument and PayloadError may come out."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crio.core.errors import InvalidArgument
from crio.core.images.trust import openpgp, payload, signature
from crio.core.images.trust.keys import KeyLoadError, parse_gpg_keys, parse_sigstore_key
from tests.fuzz import pemkeys, pgp
from tests.fuzz.harness import counted, mutated_bytes, mutated_json, only

_pgp_seeds = st.sampled_from(
    [
        pgp.KEYRING,
        pgp.SIGNED_MESSAGE,
        pgp.COMPRESSED_MESSAGE,
        pgp.ARMORED_KEYRING,
        pgp.SIGNATURE + pgp.LITERAL,
    ]
)
pgp_bytes = st.one_of(_pgp_seeds.flatmap(mutated_bytes), _pgp_seeds, st.binary(max_size=48))


@given(data=pgp_bytes)
@counted
def test_openpgp(data: bytes) -> None:
    """Keyrings, armor and signed messages."""
    with only(openpgp.OpenPGPError):
        openpgp.primary_fingerprints(data)
    with only(openpgp.OpenPGPError):
        openpgp.dearmor(data)
    with only(openpgp.OpenPGPError):
        openpgp.message_length(data, 0)
    with only(KeyLoadError):
        parse_gpg_keys(data, "/etc/pki/fuzz.gpg")


_SIGSTORE_CHUNK = {"mimeType": signature.SIGSTORE_MIME_TYPE, "payload": "eyJ9", "annotations": {"a": "b"}}
_blobs = st.one_of(
    st.sampled_from([pgp.SIGNED_MESSAGE, pgp.COMPRESSED_MESSAGE]),
    st.just(b"\x00simple-signing\n" + pgp.SIGNED_MESSAGE),
    mutated_json(_SIGSTORE_CHUNK).map(lambda doc: b"\x00sigstore-json\n" + json.dumps(doc).encode()),
)
signature_blobs = (
    st.lists(_blobs, min_size=1, max_size=3)
    .map(b"".join)
    .flatmap(lambda blob: st.one_of(st.just(blob), mutated_bytes(blob)))
)


@given(blob=signature_blobs, sizes=st.none() | st.lists(st.integers(-1, 200), max_size=3))
@counted
def test_signature_blobs(blob: bytes, sizes: list[int] | None) -> None:
    """Concatenated signatures, split by recorded sizes or by walking them."""
    with only(InvalidArgument):
        signature.decode_signatures(blob, sizes)
    with only(InvalidArgument):
        signature.signature_from_blob(blob)


_PAYLOAD: dict[str, Any] = {
    "critical": {
        "type": payload.SIMPLE_SIGNING_TYPE,
        "image": {"docker-manifest-digest": "sha256:" + "a" * 64},
        "identity": {"docker-reference": "quay.io/x/y:1"},
    },
    "optional": {"creator": "atomic", "timestamp": 1700000000},
}
payload_bytes = st.one_of(
    mutated_json(_PAYLOAD).map(lambda doc: json.dumps(doc).encode()),
    mutated_bytes(json.dumps(_PAYLOAD).encode()),
    st.sampled_from([b'{"critical":{},"optional":{"timestamp":1e400}}', b"[" * 5000]),
)


@given(data=payload_bytes, kind=st.sampled_from([payload.SIMPLE_SIGNING_TYPE, payload.SIGSTORE_TYPE]))
@counted
def test_signed_payload(data: bytes, kind: str) -> None:
    """The JSON a signature signs."""
    with only(payload.PayloadError):
        payload.parse_payload(data, kind)


@given(data=st.sampled_from(pemkeys.PUBLIC_KEYS).flatmap(lambda pem: st.just(pem) | mutated_bytes(pem)))
@counted
def test_sigstore_keys(data: bytes) -> None:
    """PEM public keys of sigstoreSigned policies: a supported key, or KeyLoadError."""
    with only(KeyLoadError):
        parse_sigstore_key(data, "keyData")

"""Signature verification and policy evaluation with real GPG keys (gpg/gpgv) and real sigstore keys
(cryptography), plus the containers/storage signature encoding."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from crio.core.errors import InvalidArgument, PermissionDenied
from crio.core.images.reference import parse_docker_reference
from crio.core.images.trust.evaluate import CandidateImage, check_image, evaluate
from crio.core.images.trust.payload import SIGSTORE_TYPE, SIMPLE_SIGNING_TYPE, make_payload
from crio.core.images.trust.policy import parse_policy
from crio.core.images.trust.requirements import (
    ExactReference,
    ExactRepository,
    IdentityMatch,
    InsecureAcceptAnything,
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    Reject,
    RemapIdentity,
    Requirement,
    SignedBaseLayer,
    SignedBy,
    SigstoreSigned,
)
from crio.core.images.trust.signature import (
    MAX_SIGNATURE_SIZE,
    SIGSTORE_SIGNATURE_ANNOTATION,
    Signature,
    decode_signatures,
    encode_signatures,
    signature_blob,
    signature_from_blob,
    signature_sizes,
    signatures_big_data_key,
    update_signature_metadata,
)
from tests import trustkit

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
DIGEST = trustkit.sha256_digest(MANIFEST)
OTHER_DIGEST = trustkit.sha256_digest(b"another manifest")
REF = "127.0.0.1:5000/trust/app:1"
POLICY = "/etc/containers/policy.json"


@dataclass(frozen=True)
class Gpg:
    """The module's GPG material: a trusted key, an untrusted one, an expired and a revoked one."""

    trusted: trustkit.GpgKey
    other: trustkit.GpgKey
    trusted_armored: str
    trusted_binary: str
    other_binary: str
    expired_sig: bytes
    expired_keyring: str
    revoked_sig: bytes
    revoked_keyring: str


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gpg]:
    base = tmp_path_factory.mktemp("gpg")
    homes = [str(base / name) for name in ("trusted", "other", "expired", "revoked")]
    try:
        trusted = trustkit.create_gpg_key(homes[0])
        other = trustkit.create_gpg_key(homes[1], uid="other <other@example.invalid>")
        expired = trustkit.create_gpg_key(homes[2], faked_time="20200101T000000", expire="1d")
        expired_sig = trustkit.gpg_sign(
            homes[2],
            expired.fingerprint,
            trustkit.simple_signing_payload(REF, DIGEST),
            faked_time="20200101T120000",
        )
        revoked = trustkit.create_gpg_key(homes[3])
        revoked_sig = trustkit.gpg_sign_simple(homes[3], revoked.fingerprint, REF, DIGEST)
        revoked_public = trustkit.revoke_gpg_key(revoked)
        files = {
            "trusted.asc": trusted.public_armored,
            "trusted.gpg": trusted.public_binary,
            "other.gpg": other.public_binary,
            "expired.gpg": expired.public_binary,
            "revoked.gpg": revoked_public,
        }
        for name, data in files.items():
            (base / name).write_bytes(data)
        yield Gpg(
            trusted,
            other,
            str(base / "trusted.asc"),
            str(base / "trusted.gpg"),
            str(base / "other.gpg"),
            expired_sig,
            str(base / "expired.gpg"),
            revoked_sig,
            str(base / "revoked.gpg"),
        )
    finally:
        for home in homes:
            trustkit.stop_gpg_agent(home)


def simple(
    gpg: Gpg, reference: str = REF, digest: str = DIGEST, key: trustkit.GpgKey | None = None
) -> Signature:
    key = key or gpg.trusted
    return Signature("simple-signing", trustkit.gpg_sign_simple(key.home, key.fingerprint, reference, digest))


def signed_by(path: str, identity: IdentityMatch | None = None) -> SignedBy:
    return SignedBy("GPGKeys", identity or MatchRepoDigestOrExact(), key_path=path)


def candidate(
    sigs: Sequence[Signature], reference: str | None = REF, manifest: bytes = MANIFEST
) -> CandidateImage:
    ref = parse_docker_reference(reference) if reference else None
    return CandidateImage(ref, manifest, list(sigs), POLICY, name="oci:/srv/images/app:1")


def accept(requirements: Sequence[Requirement], image: CandidateImage) -> None:
    asyncio.run(evaluate(requirements, image))


def refusal(requirements: Sequence[Requirement], image: CandidateImage) -> str:
    with pytest.raises(PermissionDenied) as info:
        asyncio.run(evaluate(requirements, image))
    message = str(info.value)
    assert message.startswith(f"image {image.display_name} rejected by signature policy {POLICY}: "), message
    return message


# --------------------------------------------------------------------------------------------------
# insecureAcceptAnything, reject, signedBaseLayer
# --------------------------------------------------------------------------------------------------


def test_insecure_accept_anything_and_reject() -> None:
    image = candidate([])
    accept([InsecureAcceptAnything()], image)
    assert refusal([Reject()], image).endswith("requirement reject: every image is rejected")
    message = refusal([InsecureAcceptAnything(), Reject()], image)
    assert message.endswith("requirement 2 (reject): every image is rejected")
    assert "not implemented" in refusal([SignedBaseLayer(MatchRepository())], image)
    assert "the list of requirements is empty" in refusal([], image)


# --------------------------------------------------------------------------------------------------
# signedBy (simple signing, gpgv)
# --------------------------------------------------------------------------------------------------


def test_signed_by_accepts_a_correct_signature_with_every_key_source(gpg: Gpg) -> None:
    image = candidate([simple(gpg)])
    accept([signed_by(gpg.trusted_armored)], image)
    accept([signed_by(gpg.trusted_binary)], image)
    both = SignedBy("GPGKeys", MatchRepoDigestOrExact(), key_paths=(gpg.other_binary, gpg.trusted_armored))
    accept([both], image)
    inline = SignedBy("GPGKeys", MatchRepoDigestOrExact(), key_data=gpg.trusted.public_armored)
    accept([inline], image)


def test_signed_by_refuses_an_unsigned_image(gpg: Gpg) -> None:
    message = refusal([signed_by(gpg.trusted_binary)], candidate([]))
    assert message.endswith(
        "requirement signedBy: a simple-signing signature is required, but the image has none"
    )
    only_sigstore = candidate([trustkit.sigstore_signature(b"{}", "AAAA")])
    assert "(1 signature(s) of another kind ignored)" in refusal(
        [signed_by(gpg.trusted_binary)], only_sigstore
    )


def test_signed_by_refuses_a_signature_by_another_key(gpg: Gpg) -> None:
    message = refusal([signed_by(gpg.trusted_binary)], candidate([simple(gpg, key=gpg.other)]))
    key_id = gpg.other.fingerprint[-16:]
    assert f"signature 1: signed by key 0x{key_id}, which is not a trusted key" in message


def test_signed_by_refuses_a_signature_for_another_manifest(gpg: Gpg) -> None:
    message = refusal([signed_by(gpg.trusted_binary)], candidate([simple(gpg, digest=OTHER_DIGEST)]))
    assert f"signature 1: it signs manifest {OTHER_DIGEST}, not this image's manifest" in message


def test_signed_by_refuses_an_identity_mismatch(gpg: Gpg) -> None:
    sig = simple(gpg, reference="127.0.0.1:5000/trust/app:2")
    message = refusal([signed_by(gpg.trusted_binary)], candidate([sig]))
    assert (
        "signature 1: signed identity '127.0.0.1:5000/trust/app:2' is not accepted by signedIdentity "
        "matchRepoDigestOrExact" in message
    )
    accept([signed_by(gpg.trusted_binary, MatchRepository())], candidate([sig]))
    refusal([signed_by(gpg.trusted_binary, MatchExact())], candidate([sig]))


def test_signed_by_with_every_signed_identity(gpg: Gpg) -> None:
    exact = simple(gpg)
    accept([signed_by(gpg.trusted_binary, MatchExact())], candidate([exact]))
    pinned = f"127.0.0.1:5000/trust/app@{DIGEST}"
    accept([signed_by(gpg.trusted_binary)], candidate([exact], reference=pinned))
    refusal([signed_by(gpg.trusted_binary, MatchExact())], candidate([exact], reference=pinned))
    vendor = simple(gpg, reference="vendor.example.com/product/app:1")
    accept(
        [signed_by(gpg.trusted_binary, ExactReference("vendor.example.com/product/app:1"))],
        candidate([vendor]),
    )
    refusal(
        [signed_by(gpg.trusted_binary, ExactReference("vendor.example.com/product/app:2"))],
        candidate([vendor]),
    )
    remap = RemapIdentity("127.0.0.1:5000/trust", "vendor.example.com/product")
    accept([signed_by(gpg.trusted_binary, remap)], candidate([vendor]))
    refusal([signed_by(gpg.trusted_binary)], candidate([vendor]))
    # An image of another transport has no docker reference: only exactReference/exactRepository can work.
    accept([signed_by(gpg.trusted_binary, ExactReference(REF))], candidate([exact], reference=None))
    message = refusal([signed_by(gpg.trusted_binary)], candidate([exact], reference=None))
    assert message.startswith("image oci:/srv/images/app:1 rejected")
    assert "(which needs a docker reference; this image has none)" in message


def test_every_reason_is_named(gpg: Gpg) -> None:
    sigs = [simple(gpg, key=gpg.other), simple(gpg, digest=OTHER_DIGEST)]
    message = refusal([Reject(), signed_by(gpg.trusted_binary)], candidate(sigs))
    assert (
        "requirement 1 (reject): every image is rejected; requirement 2 (signedBy): no signature verified: "
        in message
    )
    assert "signature 1: signed by key 0x" in message
    assert "; signature 2: it signs manifest" in message
    # One good signature among bad ones is enough.
    accept([signed_by(gpg.trusted_binary)], candidate([*sigs, simple(gpg)]))


def test_expired_revoked_and_altered_signatures_are_refused(gpg: Gpg) -> None:
    expired = refusal(
        [signed_by(gpg.expired_keyring)], candidate([Signature("simple-signing", gpg.expired_sig)])
    )
    assert "signature 1: signing key 0x" in expired and expired.endswith("has expired")
    revoked = refusal(
        [signed_by(gpg.revoked_keyring)], candidate([Signature("simple-signing", gpg.revoked_sig)])
    )
    assert revoked.endswith("has been revoked")
    payload = trustkit.simple_signing_payload(REF, DIGEST)
    plain = trustkit.gpg_sign(gpg.trusted.home, gpg.trusted.fingerprint, payload, compress=False)
    assert payload in plain
    accept([signed_by(gpg.trusted_binary)], candidate([Signature("simple-signing", plain)]))
    altered = plain.replace(b"crio trustkit", b"crio trustkiT")
    message = refusal([signed_by(gpg.trusted_binary)], candidate([Signature("simple-signing", altered)]))
    assert "signature 1: bad signature by key 0x" in message


def test_malformed_simple_signing_signatures_are_refused_with_a_reason(gpg: Gpg) -> None:
    requirement = [signed_by(gpg.trusted_binary)]
    garbage = refusal(requirement, candidate([Signature("simple-signing", b"\x00\x01garbage bytes")]))
    assert "signature 1: " in garbage and (
        "not an OpenPGP signed message" in garbage or "no OpenPGP" in garbage
    )
    home, fpr = gpg.trusted.home, gpg.trusted.fingerprint
    cases = {
        b"{not json": "invalid signed payload: payload is not valid JSON",
        make_payload(
            SIGSTORE_TYPE, DIGEST, REF
        ): 'unrecognized signature type "cosign container image signature"',
        make_payload(SIMPLE_SIGNING_TYPE, "sha256:abc", REF): 'invalid sha256 digest "sha256:abc"',
        json.dumps(
            {
                "critical": {
                    "type": SIMPLE_SIGNING_TYPE,
                    "image": {"docker-manifest-digest": DIGEST},
                    "identity": {"docker-reference": REF},
                    "extra": 1,
                },
                "optional": {},
            }
        ).encode(): 'unexpected member "extra" in critical',
        b'{"critical": {}, "critical": {}, "optional": {}}': 'duplicate member "critical"',
        make_payload(SIMPLE_SIGNING_TYPE, DIGEST, REF).replace(b'"optional":{}', b'"optional":null'): (
            "optional is not a JSON object"
        ),
    }
    for payload, reason in cases.items():
        sig = Signature("simple-signing", trustkit.gpg_sign(home, fpr, payload))
        message = refusal(requirement, candidate([sig]))
        assert reason in message, message


def test_oversized_signatures_are_refused(gpg: Gpg) -> None:
    huge = Signature("simple-signing", b"\xa3" + b"\x00" * MAX_SIGNATURE_SIZE)
    message = refusal([signed_by(gpg.trusted_binary)], candidate([huge]))
    assert (
        f"signature 1: {MAX_SIGNATURE_SIZE + 1} bytes is larger than the {MAX_SIGNATURE_SIZE}-byte limit"
        in message
    )
    _, pem = trustkit.make_sigstore_key()
    big = trustkit.sigstore_signature(b" " * (MAX_SIGNATURE_SIZE + 1), "AAAA")
    message = refusal([SigstoreSigned(MatchRepository(), key_datas=(pem,))], candidate([big]))
    assert "is larger than the" in message


def test_unusable_gpg_key_files_give_a_clear_reason(gpg: Gpg, tmp_path: Path) -> None:
    image = candidate([simple(gpg)])
    garbage = tmp_path / "garbage.gpg"
    garbage.write_bytes(b"not a keyring at all")
    message = refusal([signed_by(str(garbage))], image)
    assert (
        f"requirement signedBy: cannot load the trusted keys: key file {garbage} is not a usable OpenPGP"
        in message
    )
    missing = tmp_path / "missing.gpg"
    assert f"cannot read key file {missing}: No such file or directory" in refusal(
        [signed_by(str(missing))], image
    )
    bad_armor = tmp_path / "bad.asc"
    bad_armor.write_bytes(re.sub(rb"\n=[A-Za-z0-9+/]{4}\n", b"\n=AAAA\n", gpg.trusted.public_armored))
    assert "ASCII armor block 'PUBLIC KEY BLOCK' fails its checksum" in refusal(
        [signed_by(str(bad_armor))], image
    )
    # Rotating the key file takes effect at the next evaluation.
    rotated = tmp_path / "rotated.gpg"
    rotated.write_bytes(gpg.other.public_binary)
    refusal([signed_by(str(rotated))], image)
    rotated.write_bytes(gpg.trusted.public_binary)
    accept([signed_by(str(rotated))], image)
    policy = parse_policy(
        json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(garbage)}]}), POLICY
    )
    assert len(policy.validate_keys()) == 1
    good = json.dumps(
        {"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": gpg.trusted_armored}]}
    )
    assert parse_policy(good, POLICY).validate_keys() == []


# --------------------------------------------------------------------------------------------------
# sigstoreSigned (cryptography)
# --------------------------------------------------------------------------------------------------


def pem_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sigstore_requirement(pem: bytes, identity: IdentityMatch | None = None) -> SigstoreSigned:
    return SigstoreSigned(identity or MatchRepoDigestOrExact(), key_datas=(pem,))


def test_sigstore_accepts_a_correct_signature(tmp_path: Path) -> None:
    key, pem = trustkit.make_sigstore_key()
    payload, signature = trustkit.sigstore_sign(key, REF, DIGEST)
    image = candidate([trustkit.sigstore_signature(payload, signature)])
    accept([sigstore_requirement(pem)], image)
    path = tmp_path / "cosign.pub"
    path.write_bytes(pem)
    accept([SigstoreSigned(MatchRepoDigestOrExact(), key_paths=(str(path),))], image)
    _, other_pem = trustkit.make_sigstore_key()
    accept([SigstoreSigned(MatchRepoDigestOrExact(), key_datas=(other_pem, pem))], image)
    policy = parse_policy(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {"127.0.0.1:5000/trust": [{"type": "sigstoreSigned", "keyPath": str(path)}]}
                },
            }
        ),
        POLICY,
    )
    asyncio.run(check_image(policy, "docker", REF, image))
    with pytest.raises(PermissionDenied, match="requirement reject"):
        asyncio.run(check_image(policy, "docker", "127.0.0.1:5000/elsewhere/app:1", image))


@pytest.mark.parametrize("kind", ["p384", "p521", "rsa", "ed25519"])
def test_sigstore_key_types(kind: str) -> None:
    payload = trustkit.sigstore_payload(REF, DIGEST)
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        raw = key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        raw = key.sign(payload)
    else:
        key = ec.generate_private_key(ec.SECP384R1() if kind == "p384" else ec.SECP521R1())
        raw = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    image = candidate([trustkit.sigstore_signature(payload, base64.b64encode(raw).decode())])
    accept([sigstore_requirement(pem_of(key))], image)
    if isinstance(key, rsa.RSAPrivateKey):  # PSS is not what containers/image verifies
        pss = key.sign(payload, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        refusal(
            [sigstore_requirement(pem_of(key))],
            candidate([trustkit.sigstore_signature(payload, base64.b64encode(pss).decode())]),
        )


PINNED = f"127.0.0.1:5000/trust/app@{DIGEST}"


@pytest.mark.parametrize(
    ("identity", "reference", "signed", "accepted"),
    [
        (MatchExact(), REF, REF, True),
        (MatchExact(), PINNED, REF, False),
        (MatchRepoDigestOrExact(), PINNED, "127.0.0.1:5000/trust/app:7", True),
        (MatchRepoDigestOrExact(), REF, "127.0.0.1:5000/trust/app:7", False),
        (MatchRepository(), REF, "127.0.0.1:5000/trust/app:7", True),
        (MatchRepository(), REF, "127.0.0.1:5000/trust/other:1", False),
        (ExactReference("vendor.example.com/app:1"), REF, "vendor.example.com/app:1", True),
        (ExactReference("vendor.example.com/app:1"), REF, REF, False),
        (ExactRepository("vendor.example.com/app"), REF, "vendor.example.com/app:9", True),
        (ExactRepository("vendor.example.com/app"), None, "vendor.example.com/app:9", True),
        (ExactRepository("vendor.example.com/app"), REF, "vendor.example.com/other:9", False),
        (RemapIdentity("127.0.0.1:5000/trust", "vendor.example.com"), REF, "vendor.example.com/app:1", True),
        (RemapIdentity("127.0.0.1:5000/trust", "vendor.example.com"), REF, REF, False),
    ],
)
def test_sigstore_with_every_signed_identity(
    identity: IdentityMatch, reference: str | None, signed: str, accepted: bool
) -> None:
    key, pem = trustkit.make_sigstore_key()
    image = candidate([trustkit.sigstore_signature(*trustkit.sigstore_sign(key, signed, DIGEST))], reference)
    if accepted:
        accept([sigstore_requirement(pem, identity)], image)
    else:
        message = refusal([sigstore_requirement(pem, identity)], image)
        assert f"signed identity {signed!r} is not accepted by signedIdentity {identity.type}" in message


def test_sigstore_refusals() -> None:
    key, pem = trustkit.make_sigstore_key()
    _, other_pem = trustkit.make_sigstore_key()
    requirement = [sigstore_requirement(pem)]
    message = refusal(requirement, candidate([]))
    assert message.endswith(
        "requirement sigstoreSigned: a sigstore signature is required, but the image has none"
    )
    payload, signature = trustkit.sigstore_sign(key, REF, DIGEST)
    good = trustkit.sigstore_signature(payload, signature)
    wrong_key = refusal([sigstore_requirement(other_pem)], candidate([good]))
    assert "signature 1: cryptographic verification failed: not signed by the trusted key" in wrong_key
    other_digest = trustkit.sigstore_signature(*trustkit.sigstore_sign(key, REF, OTHER_DIGEST))
    assert f"it signs manifest {OTHER_DIGEST}" in refusal(requirement, candidate([other_digest]))
    other_ref = trustkit.sigstore_signature(
        *trustkit.sigstore_sign(key, "127.0.0.1:5000/trust/app:2", DIGEST)
    )
    assert "is not accepted by signedIdentity matchRepoDigestOrExact" in refusal(
        requirement, candidate([other_ref])
    )
    accept([sigstore_requirement(pem, MatchRepository())], candidate([other_ref]))
    bad_base64 = trustkit.sigstore_signature(payload, "not base64!")
    assert f"the {SIGSTORE_SIGNATURE_ANNOTATION} annotation is not valid base64" in refusal(
        requirement, candidate([bad_base64])
    )
    missing = Signature("sigstore", payload, {})
    assert f"missing the {SIGSTORE_SIGNATURE_ANNOTATION} annotation" in refusal(
        requirement, candidate([missing])
    )
    bad_json = b'{"critical": '
    bad = trustkit.sigstore_signature(bad_json, trustkit.sigstore_sign_payload(key, bad_json))
    assert "invalid signed payload: payload is not valid JSON" in refusal(requirement, candidate([bad]))
    wrong_type = make_payload(SIMPLE_SIGNING_TYPE, DIGEST, REF)
    typed = trustkit.sigstore_signature(wrong_type, trustkit.sigstore_sign_payload(key, wrong_type))
    assert 'unrecognized signature type "atomic container signature"' in refusal(
        requirement, candidate([typed])
    )
    attachment = Signature(
        "sigstore", payload, {SIGSTORE_SIGNATURE_ANNOTATION: signature}, "application/x-other"
    )
    assert "(1 signature(s) of another kind ignored)" in refusal(requirement, candidate([attachment]))
    # Every signature is tried: a good one after bad ones is accepted.
    accept(requirement, candidate([bad, other_digest, good]))


def test_sigstore_unusable_keys_and_unsupported_options(tmp_path: Path) -> None:
    key, _ = trustkit.make_sigstore_key()
    image = candidate([trustkit.sigstore_signature(*trustkit.sigstore_sign(key, REF, DIGEST))])
    garbage = tmp_path / "garbage.pub"
    garbage.write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    message = refusal([SigstoreSigned(MatchRepoDigestOrExact(), key_paths=(str(garbage),))], image)
    assert f"cannot load the trusted keys: key file {garbage} is not a PEM public key" in message
    assert "keyData is not a PEM public key" in refusal([sigstore_requirement(b"junk")], image)
    unsupported = SigstoreSigned(MatchRepoDigestOrExact(), unsupported=("fulcio", "rekorPublicKeyPath"))
    message = refusal([unsupported], image)
    assert message.endswith("sigstoreSigned with fulcio, rekorPublicKeyPath is not supported by crio")
    p224 = ec.generate_private_key(ec.SECP224R1())
    assert "ECDSA curve secp224r1 is not supported" in refusal([sigstore_requirement(pem_of(p224))], image)


def test_both_kinds_required_together(gpg: Gpg) -> None:
    key, pem = trustkit.make_sigstore_key()
    both: list[Requirement] = [signed_by(gpg.trusted_binary), sigstore_requirement(pem)]
    cosign = trustkit.sigstore_signature(*trustkit.sigstore_sign(key, REF, DIGEST))
    accept(both, candidate([cosign, simple(gpg)]))
    message = refusal(both, candidate([cosign]))
    assert "requirement 1 (signedBy): a simple-signing signature is required" in message
    assert "requirement 2" not in message


# --------------------------------------------------------------------------------------------------
# containers/storage encoding
# --------------------------------------------------------------------------------------------------


def test_storage_encoding_round_trip(gpg: Gpg) -> None:
    key, _ = trustkit.make_sigstore_key()
    compressed = simple(gpg)
    plain = Signature(
        "simple-signing",
        trustkit.gpg_sign(
            gpg.trusted.home,
            gpg.trusted.fingerprint,
            trustkit.simple_signing_payload(REF, DIGEST),
            compress=False,
        ),
    )
    cosign = trustkit.sigstore_signature(*trustkit.sigstore_sign(key, REF, DIGEST))
    other_type = Signature("sigstore", b"payload", {"a": "b"}, "application/x-other")
    sigs = [compressed, cosign, plain, other_type, compressed]
    blob = encode_signatures(sigs)
    assert decode_signatures(blob, signature_sizes(sigs)) == sigs
    assert decode_signatures(blob) == sigs  # without the sizes: each signature's end is found
    assert signature_blob(compressed) == compressed.data  # raw OpenPGP, as containers/image stores it
    assert signature_blob(cosign).startswith(b"\x00sigstore-json\n{")
    chunk = json.loads(signature_blob(cosign)[len(b"\x00sigstore-json\n") :])
    assert chunk == {
        "mimeType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "payload": base64.b64encode(cosign.data).decode(),
        "annotations": dict(cosign.annotations),
    }
    assert signature_from_blob(b"\x00simple-signing\n" + compressed.data) == compressed
    assert decode_signatures(b"") == []
    assert signatures_big_data_key(DIGEST) == "signature-" + DIGEST.split(":")[1]
    metadata = update_signature_metadata({"other": 1}, DIGEST, sigs, toplevel=True)
    assert metadata == {
        "other": 1,
        "signatures-sizes": {DIGEST: signature_sizes(sigs)},
        "signature-sizes": signature_sizes(sigs),
    }


@pytest.mark.parametrize(
    ("blob", "sizes", "problem"),
    [
        (b"garbage", None, "unrecognized signature format, starting with byte 0x67"),
        (b"\x00sigstore-json", None, "missing newline"),
        (b"\x00unknown\nxyz", None, "unrecognized signature format 'unknown'"),
        (b"\x00sigstore-json\n{not json", None, "cannot delimit the signature at offset 0"),
        (b"\x00sigstore-json\n{}", [30], "do not fit"),
        (b"\x00sigstore-json\n{}x", [17], "1 extra bytes"),
        (b"\xa3\x01\x00\x01\x02", None, "cannot delimit the signature at offset 0"),
        (b"\x00sigstore-json\n" + b'{"payload": "%%%"}', [33], "payload is not base64"),
    ],
)
def test_malformed_storage_blobs(blob: bytes, sizes: list[int] | None, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        decode_signatures(blob, sizes)

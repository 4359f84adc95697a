"""Test kit for image trust: real GPG keys and simple-signing signatures, real sigstore keys and signatures,
sigstore attachments pushed to a registry, and lookaside signature trees.

Used by the unit tests of ``crio.core.images.trust`` and by integration tests. GPG runs in a throwaway
GNUPGHOME; call :func:`stop_gpg_agent` (or use :func:`gpg_home`) when done with it so no agent lingers.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pathlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crio.core.images.reference import DockerReference
from crio.core.images.trust.payload import SIGSTORE_TYPE, SIMPLE_SIGNING_TYPE, make_payload
from crio.core.images.trust.registries_d import lookaside_file, lookaside_url
from crio.core.images.trust.signature import SIGSTORE_MIME_TYPE, SIGSTORE_SIGNATURE_ANNOTATION, Signature

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DEFAULT_UID = "crio trust test <trust-test@example.invalid>"


@dataclass(frozen=True)
class GpgKey:
    """A generated key pair: its GNUPGHOME, primary fingerprint and exported public key."""

    home: str
    fingerprint: str
    public_armored: bytes
    public_binary: bytes


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data`` (a manifest digest)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _gpg(home: str, *args: str, stdin: bytes | None = None) -> bytes:
    argv = ["gpg", "--batch", "--quiet", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""]
    result = subprocess.run([*argv, *args], input=stdin, capture_output=True, check=False, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def create_gpg_key(
    home: str, uid: str = DEFAULT_UID, algorithm: str = "ed25519", expire: str = "never", faked_time: str = ""
) -> GpgKey:
    """Generate an unprotected signing key in GNUPGHOME ``home`` (created mode 0700 when missing).

    ``algorithm`` and ``expire`` are ``gpg --quick-gen-key`` values; ``faked_time`` (e.g.
    ``20200101T000000``) generates the key as of that time, to make keys that have since expired.
    """
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    extra = ["--faked-system-time", faked_time] if faked_time else []
    status = _gpg(home, *extra, "--status-fd", "1", "--quick-gen-key", uid, algorithm, "sign", expire)
    created = [
        line.split() for line in status.decode().splitlines() if line.startswith("[GNUPG:] KEY_CREATED ")
    ]
    if not created:
        raise RuntimeError(f"gpg did not report the new key: {status.decode(errors='replace')}")
    fingerprint = created[-1][3]
    return GpgKey(
        home, fingerprint, _gpg(home, "--armor", "--export", fingerprint), _gpg(home, "--export", fingerprint)
    )


def revoke_gpg_key(key: GpgKey) -> bytes:
    """Revoke ``key`` with the revocation certificate gpg made at generation; return the revoked public key
    (binary) for a keyring."""
    path = os.path.join(key.home, "openpgp-revocs.d", key.fingerprint + ".rev")
    with open(path, "rb") as handle:
        certificate = handle.read().replace(b"\n:-----BEGIN", b"\n-----BEGIN")
    _gpg(key.home, "--import", stdin=certificate)
    return _gpg(key.home, "--export", key.fingerprint)


def stop_gpg_agent(home: str) -> None:
    """Stop the gpg-agent gpg started for GNUPGHOME ``home`` (if any)."""
    subprocess.run(
        ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, check=False, timeout=30
    )


@contextlib.contextmanager
def gpg_home(path: str) -> Iterator[str]:
    """A GNUPGHOME at ``path`` whose gpg-agent is stopped on exit."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    try:
        yield path
    finally:
        stop_gpg_agent(path)


def gpg_sign(
    home: str, fingerprint: str, payload: bytes, faked_time: str = "", compress: bool = True
) -> bytes:
    """An OpenPGP signed message (binary, ``gpg --sign``) of ``payload`` by the key ``fingerprint``
    (``compress=False``: one-pass signature + literal data + signature, with the payload readable)."""
    extra = ["--faked-system-time", faked_time] if faked_time else []
    extra += [] if compress else ["--compress-level", "0"]
    return _gpg(home, *extra, "--local-user", fingerprint, "--sign", stdin=payload)


def simple_signing_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The JSON payload of a simple-signing signature."""
    return make_payload(SIMPLE_SIGNING_TYPE, manifest_digest, docker_reference, {"creator": "crio trustkit"})


def gpg_sign_simple(home: str, fingerprint: str, docker_reference: str, manifest_digest: str) -> bytes:
    """A simple-signing signature: ``docker_reference`` and ``manifest_digest`` signed by ``fingerprint``."""
    return gpg_sign(home, fingerprint, simple_signing_payload(docker_reference, manifest_digest))


def make_sigstore_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A new ECDSA P-256 key (cosign's default) and its PEM public key."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def sigstore_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The JSON payload of a sigstore signature (cosign writes ``"optional": null``)."""
    return make_payload(SIGSTORE_TYPE, manifest_digest, docker_reference, None).replace(
        b'"optional":{}', b'"optional":null'
    )


def sigstore_sign_payload(private_key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """The base64 ECDSA/SHA-256 signature of ``payload``, as in the cosign signature annotation."""
    return base64.b64encode(private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def sigstore_sign(
    private_key: ec.EllipticCurvePrivateKey, docker_reference: str, manifest_digest: str
) -> tuple[bytes, str]:
    """A sigstore signature: (payload bytes, base64 signature)."""
    payload = sigstore_payload(docker_reference, manifest_digest)
    return payload, sigstore_sign_payload(private_key, payload)


def sigstore_signature(payload: bytes, signature_b64: str) -> Signature:
    """The :class:`Signature` of a sigstore attachment layer carrying ``payload`` and ``signature_b64``."""
    return Signature("sigstore", payload, {SIGSTORE_SIGNATURE_ANNOTATION: signature_b64})


def _upload_blob(client: httpx.Client, base: str, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    if client.head(f"{base}/v2/{repo}/blobs/{digest}").status_code == 200:
        return digest
    started = client.post(f"{base}/v2/{repo}/blobs/uploads/")
    started.raise_for_status()
    location = httpx.URL(base).join(started.headers["Location"]).copy_merge_params({"digest": digest})
    client.put(
        location, content=data, headers={"Content-Type": "application/octet-stream"}
    ).raise_for_status()
    return digest


def sigstore_attachment_tag(manifest_digest: str) -> str:
    """The tag cosign and containers/image keep an image's signatures under: ``sha256-<hex>.sig``."""
    return manifest_digest.replace(":", "-") + ".sig"


def push_sigstore_attachment(
    registry_base_url: str, repo: str, manifest_digest: str, payload: bytes, signature_b64: str
) -> str:
    """Attach a sigstore signature to ``repo@manifest_digest`` on a plain-HTTP registry; return the tag.

    The layout is cosign's and containers/image's (``docker/docker_image_dest.go``
    ``putSignaturesToSigstoreAttachments``): an OCI image manifest tagged ``sha256-<hex>.sig`` whose layers
    are the payloads (media type ``application/vnd.dev.cosign.simplesigning.v1+json``, annotation
    ``dev.cosignproject.cosign/signature``), with an OCI config listing them as ``rootfs.diff_ids``. An
    existing attachment manifest is extended, not replaced.
    """
    base = registry_base_url.rstrip("/")
    tag = sigstore_attachment_tag(manifest_digest)
    with httpx.Client(timeout=30) as client:
        existing = client.get(f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        layers: list[dict[str, object]] = (
            existing.json().get("layers", []) if existing.status_code == 200 else []
        )
        layer = {
            "mediaType": SIGSTORE_MIME_TYPE,
            "digest": _upload_blob(client, base, repo, payload),
            "size": len(payload),
            "annotations": {SIGSTORE_SIGNATURE_ANNOTATION: signature_b64},
        }
        if layer not in layers:
            layers.append(layer)
        config = {
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [item["digest"] for item in layers]},
        }
        config_blob = json.dumps(config, separators=(",", ":")).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": _upload_blob(client, base, repo, config_blob),
                "size": len(config_blob),
            },
            "layers": layers,
        }
        client.put(
            f"{base}/v2/{repo}/manifests/{tag}",
            content=json.dumps(manifest, separators=(",", ":")).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        ).raise_for_status()
    return tag


def write_lookaside_signature(
    directory: str, ref: DockerReference, manifest_digest: str, index: int, data: bytes
) -> str:
    """Store signature number ``index`` (from 1) of ``ref``'s manifest in the file:// lookaside tree rooted at
    ``directory`` (the layout of ``lookaside_url``); return the file's path."""
    url = lookaside_url(pathlib.Path(directory).absolute().as_uri(), ref, manifest_digest, index)
    path = lookaside_file(url)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path

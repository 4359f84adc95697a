"""Verification of simple-signing (OpenPGP) signatures with ``gpgv``.

``gpgv --status-fd 2 --keyring <trusted keys> --output - <signature>`` checks the signed message against
only the trusted keys and writes the signed payload to stdout; its machine-readable status lines
(``[GNUPG:] GOODSIG/VALIDSIG/BADSIG/ERRSIG/EXPSIG/EXPKEYSIG/REVKEYSIG/NODATA ...``, gnupg's
doc/DETAILS) decide. Like containers/image, the message must carry exactly one signature, made by a trusted
key (the primary key fingerprint of ``VALIDSIG`` is checked against the keyring's), neither expired nor
revoked; only then is the payload parsed.
"""

from __future__ import annotations

import os
import tempfile

from crio.core import proc
from crio.core.images.trust.keys import GpgKeyring
from crio.core.images.trust.payload import (
    SIMPLE_SIGNING_TYPE,
    PayloadError,
    SignatureRejected,
    SignedClaims,
    parse_payload,
)

GPGV = "/usr/bin/gpgv"
GPGV_TIMEOUT = 60.0
MAX_PAYLOAD_SIZE = 4 * 2**20
_SIGNATURE_STATUSES = ("GOODSIG", "BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG")
_ERRSIG_NO_PUBKEY = "9"
_ERRSIG_UNSUPPORTED_ALGORITHM = "4"


def _statuses(stderr: bytes) -> list[list[str]]:
    prefix = "[GNUPG:] "
    lines = stderr.decode("utf-8", errors="replace").splitlines()
    return [line[len(prefix) :].split() for line in lines if line.startswith(prefix)]


def _key(fields: list[str]) -> str:
    return "0x" + fields[1] if len(fields) > 1 else "(unknown key)"


def _judge(statuses: list[list[str]], keyring: GpgKeyring, returncode: int, stderr: bytes) -> None:
    """Raise :class:`SignatureRejected` unless the statuses show one good signature by a trusted key."""
    found = [fields for fields in statuses if fields and fields[0] in _SIGNATURE_STATUSES]
    if not found:
        if any(fields[:1] == ["NODATA"] for fields in statuses):
            raise SignatureRejected("not an OpenPGP signed message")
        detail = stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise SignatureRejected("no OpenPGP signature found" + (f" ({detail[-1]})" if detail else ""))
    if len(found) != 1:
        raise SignatureRejected(f"the message carries {len(found)} signatures; exactly one is expected")
    fields = found[0]
    status = fields[0]
    if status == "BADSIG":
        raise SignatureRejected(f"bad signature by key {_key(fields)}: the signed data was altered")
    if status == "ERRSIG":
        code = fields[6] if len(fields) > 6 else ""
        if code == _ERRSIG_NO_PUBKEY:
            raise SignatureRejected(f"signed by key {_key(fields)}, which is not a trusted key")
        if code == _ERRSIG_UNSUPPORTED_ALGORITHM:
            raise SignatureRejected(f"signature by key {_key(fields)} uses an unsupported algorithm")
        raise SignatureRejected(f"cannot check the signature by key {_key(fields)} (gpgv error code {code})")
    if status == "EXPSIG":
        raise SignatureRejected(f"the signature by key {_key(fields)} has expired")
    if status == "EXPKEYSIG":
        raise SignatureRejected(f"signing key {_key(fields)} has expired")
    if status == "REVKEYSIG":
        raise SignatureRejected(f"signing key {_key(fields)} has been revoked")
    valid = [fields for fields in statuses if fields[:1] == ["VALIDSIG"]]
    if returncode != 0 or len(valid) != 1 or len(valid[0]) < 2:
        raise SignatureRejected(
            f"gpgv did not confirm the signature by key {_key(fields)} (exit {returncode})"
        )
    primary = valid[0][10] if len(valid[0]) > 10 else valid[0][1]
    if primary.upper() not in keyring.fingerprints:
        raise SignatureRejected(f"signed by key {primary}, which is not a trusted key")


async def verify_message(
    data: bytes, keyring: GpgKeyring, *, gpgv: str = GPGV, timeout: float = GPGV_TIMEOUT
) -> bytes:
    """Verify the OpenPGP signed message ``data`` against ``keyring``; return the signed payload.

    Raises :class:`SignatureRejected` with the reason.
    """
    with tempfile.TemporaryDirectory(prefix="crio-gpgv-") as home:
        keyring_path = os.path.join(home, "trusted.gpg")
        signature_path = os.path.join(home, "signature")
        with open(keyring_path, "wb") as handle:
            handle.write(keyring.data)
        with open(signature_path, "wb") as handle:
            handle.write(data)
        argv = [
            gpgv,
            "--homedir",
            home,
            "--status-fd",
            "2",
            "--keyring",
            keyring_path,
            "--output",
            "-",
            signature_path,
        ]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "GNUPGHOME": home}
        try:
            result = await proc.run(
                argv, env=env, timeout=timeout, output_limit=MAX_PAYLOAD_SIZE + 1, check=False
            )
        except proc.ProcessError as exc:
            raise SignatureRejected(f"cannot run {gpgv}: {exc}") from None
        except TimeoutError:
            raise SignatureRejected(f"{gpgv} did not finish within {timeout:g}s") from None
    _judge(_statuses(result.stderr), keyring, result.returncode, result.stderr)
    if len(result.stdout) > MAX_PAYLOAD_SIZE:
        raise SignatureRejected(f"the signed payload is larger than {MAX_PAYLOAD_SIZE} bytes")
    return result.stdout


async def verify_simple_signing(data: bytes, keyring: GpgKeyring, *, gpgv: str = GPGV) -> SignedClaims:
    """Verify a simple-signing signature and parse its payload (type ``atomic container signature``).

    The caller still has to check the claimed manifest digest and identity. Raises
    :class:`SignatureRejected`.
    """
    payload = await verify_message(data, keyring, gpgv=gpgv)
    try:
        return parse_payload(payload, SIMPLE_SIGNING_TYPE)
    except PayloadError as exc:
        raise SignatureRejected(f"invalid signed payload: {exc}") from None

"""Inputs the fuzz suite (tests/fuzz) found to escape a parser as a bare Python exception; each must now be
the parser's own error with a message saying what was wrong."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.images import manifest, registries
from crio.core.images.reference import parse_docker_reference
from crio.core.images.trust import openpgp, payload, policy, registries_d, signature
from crio.core.sandbox.validate import validate_sysctls
from crio.core.streaming import portforward, remotecommand, websocket
from crio.core.types import RegistryAuth
from crio.plugins.image_transports import auth, client

DEEP_JSON = b"[" * 100_000
# A compressed packet of indeterminate length (old format, length type 3) whose ZLIB stream is corrupt.
CORRUPT_COMPRESSED = b"\xa3\x02\x00x\x9c;\xc2\xcb\xcc\xc0\xc1\xc8\x00\x05\x8c\xa7E\x93"


def _raises(call: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("name", "call", "error", "match"),
    [
        (
            "manifest nested 100000 deep",
            lambda: manifest.parse_manifest(DEEP_JSON),
            InvalidArgument,
            "too deeply",
        ),
        ("image config nested deep", lambda: manifest.parse_config(DEEP_JSON), InvalidArgument, "too deeply"),
        (
            "policy.json nested 600 deep",
            lambda: policy.parse_policy('{"default":' + "[" * 600 + "]" * 600 + "}", "/p.json"),
            InvalidArgument,
            "/p.json:1:1: invalid JSON: .*nested too deeply",
        ),
        (
            "registries.d YAML nested deep",
            lambda: registries_d.parse_registries_file("docker: " + "[" * 100_000, "/r.yaml"),
            InvalidArgument,
            "/r.yaml: invalid YAML: .*nested too deeply",
        ),
        (
            "registries.conf TOML nested 900 deep",
            lambda: registries.parse("a = " + "[" * 900 + "]" * 900, "/r.conf"),
            InvalidArgument,
            "/r.conf:1: invalid TOML: .*nested too deeply",
        ),
        (
            "sigstore blob nested deep",
            lambda: signature.signature_from_blob(b"\x00sigstore-json\n" + DEEP_JSON),
            InvalidArgument,
            "nested too deeply",
        ),
        (
            "sigstore blob walked without sizes",
            lambda: signature.decode_signatures(b"\x00sigstore-json\n" + DEEP_JSON),
            InvalidArgument,
            "offset 0: JSON nested too deeply",
        ),
        (
            "corrupt ZLIB in a compressed signed message",
            lambda: openpgp.message_length(CORRUPT_COMPRESSED, 0),
            openpgp.OpenPGPError,
            "does not decompress",
        ),
        (
            "corrupt ZLIB in a signature blob",
            lambda: signature.decode_signatures(CORRUPT_COMPRESSED),
            InvalidArgument,
            "offset 0: compressed packet does not decompress",
        ),
        (
            "corrupt BZip2 in a compressed signed message",
            lambda: openpgp.message_length(b"\xa3\x03BZh9garbage", 0),
            openpgp.OpenPGPError,
            "does not decompress",
        ),
        (
            "uncompressed packets nested 3000 deep",
            lambda: openpgp.message_length(b"\xa3\x00" * 3000, 0),
            openpgp.OpenPGPError,
            "nested more than",
        ),
        (
            "v4 public key longer than its two-octet hashed length",
            lambda: openpgp.primary_fingerprints(b"\xc6\xff\x00\x01\x00\x00\x04" + bytes(65535)),
            openpgp.OpenPGPError,
            "at most 65535",
        ),
        (
            "payload timestamp 1e400 (infinity)",
            lambda: payload.parse_payload(
                json.dumps({"critical": {}, "optional": {}})
                .encode()
                .replace(b"{}}", b'{"timestamp":1e400}}'),
                payload.SIMPLE_SIGNING_TYPE,
            ),
            payload.PayloadError,
            "timestamp is not an integer",
        ),
        (
            "payload nested deep",
            lambda: payload.parse_payload(DEEP_JSON, payload.SIMPLE_SIGNING_TYPE),
            payload.PayloadError,
            "nested too deeply",
        ),
        (
            "resize stream nested deep",
            lambda: remotecommand.ResizeDecoder().feed(b"[" * 5000),
            ValueError,
            "resize message nested too deeply",
        ),
        (
            "port-forward port in Arabic-Indic digits",
            lambda: portforward.parse_port("\u0668\u0660"),
            portforward.BadStream,
            "invalid port",
        ),
        (
            "sysctl value that is not ASCII",
            lambda: validate_sysctls({"net.core.somaxconn": "\x80"}, False, False),
            InvalidArgument,
            "only printable ASCII",
        ),
        (
            "sysctl vector in Arabic-Indic digits",
            lambda: validate_sysctls({"kernel.sem": "\u0663 \u0663"}, False, False),
            InvalidArgument,
            "only printable ASCII",
        ),
        (
            "CRI auth config 'auth' that is not ASCII",
            lambda: auth.from_registry_auth(RegistryAuth(auth="\u00e9")),
            InvalidArgument,
            "'auth' is not base64 of user:password",
        ),
    ],
)
def test_fuzz_finding(name: str, call: Callable[[], object], error: type[Exception], match: str) -> None:
    """Each finding now raises the parser's own error, naming the problem."""
    _raises(call, error, match)


def test_deep_registry_error_body_has_no_codes() -> None:
    """A registry error body nested too deeply has no error codes (it was a RecursionError)."""
    assert client.error_codes(DEEP_JSON) == []


def test_deep_auth_file(tmp_path: Path) -> None:
    """An auth.json nested too deeply is a malformed auth file naming the file."""
    path = tmp_path / "auth.json"
    path.write_bytes(DEEP_JSON)
    with pytest.raises(InvalidArgument, match=f"{path}: cannot read auth file: JSON nested too deeply"):
        auth.lookup_auth_file(str(path), parse_docker_reference("quay.io/a/b"))


def test_close_reason_is_cut_between_characters() -> None:
    """A long non-ASCII Close reason is cut on a character boundary (it was cut mid-character: invalid
    UTF-8, which a client must treat as a protocol error)."""
    payload = websocket.close_payload(1000, "\u00e9" * 100)
    assert len(payload) <= websocket.MAX_CONTROL_PAYLOAD
    assert payload[2:].decode("utf-8") == "\u00e9" * 61

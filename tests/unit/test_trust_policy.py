"""containers-policy.json parsing, error locations, scope precedence and signedIdentity semantics."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.images.reference import parse_docker_reference
from crio.core.images.trust import policy as policymod
from crio.core.images.trust.policy import load_policy, parse_policy
from crio.core.images.trust.requirements import (
    ExactReference,
    ExactRepository,
    InsecureAcceptAnything,
    MatchExact,
    MatchRepoDigestOrExact,
    MatchRepository,
    Reject,
    RemapIdentity,
    SignedBy,
    SigstoreSigned,
)
from crio.core.images.trust.scopes import docker_scopes, parse_docker_scope_reference
from tests import trustkit

PATH = "/etc/containers/policy.json"
DIGEST = "sha256:" + "ab" * 32
ACCEPT = [{"type": "insecureAcceptAnything"}]


def _join(items: list[str], indent: str) -> list[str]:
    return [indent + item + ("," if i < len(items) - 1 else "") for i, item in enumerate(items)]


def policy_text(transports: Mapping[str, Mapping[str, Sequence[object]]] | None = None) -> str:
    """A policy with ``default: reject``, one requirement object per line (for position assertions)."""
    lines = ["{", '    "default": [{"type": "reject"}]' + ("," if transports is not None else "")]
    if transports is not None:
        lines.append('    "transports": {')
        blocks: list[str] = []
        for transport, scopes in transports.items():
            scope_blocks = []
            for scope, requirements in scopes.items():
                body = _join([json.dumps(r) for r in requirements], " " * 16)
                scope_blocks.append("\n".join([f"{json.dumps(scope)}: [", *body, " " * 12 + "]"]))
            inner = _join(scope_blocks, " " * 12)
            blocks.append("\n".join([f"{json.dumps(transport)}: {{", *inner, " " * 8 + "}"]))
        lines.extend(_join(blocks, " " * 8))
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines)


def error_of(text: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse_policy(text, PATH)
    return str(info.value)


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first ``needle`` in ``text``."""
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def test_parses_every_requirement_type() -> None:
    key_data = base64.b64encode(b"keyring").decode()
    text = policy_text(
        {
            "docker": {
                "a.example.com": ACCEPT,
                "b.example.com": [{"type": "reject"}],
                "c.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}],
                "d.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": ["/a", "/b"]}],
                "e.example.com": [{"type": "signedBy", "keyType": "GPGKeys", "keyData": key_data}],
                "f.example.com": [{"type": "sigstoreSigned", "keyPath": "/cosign.pub"}],
                "g.example.com": [{"type": "sigstoreSigned", "keyDatas": [key_data, key_data]}],
            }
        }
    )
    policy = parse_policy(text, PATH)
    assert policy.default == (Reject(),)

    def first(host: str) -> object:
        return policy.requirements_for("docker", f"{host}/x:1")[0]

    assert first("a.example.com") == InsecureAcceptAnything()
    assert first("b.example.com") == Reject()
    assert first("c.example.com") == SignedBy("GPGKeys", MatchRepoDigestOrExact(), key_path="/k.gpg")
    signed_by = first("d.example.com")
    assert isinstance(signed_by, SignedBy) and signed_by.paths == ("/a", "/b")
    assert first("e.example.com") == SignedBy("GPGKeys", MatchRepoDigestOrExact(), key_data=b"keyring")
    assert first("f.example.com") == SigstoreSigned(MatchRepoDigestOrExact(), key_paths=("/cosign.pub",))
    assert first("g.example.com") == SigstoreSigned(
        MatchRepoDigestOrExact(), key_datas=(b"keyring", b"keyring")
    )


def test_parses_every_signed_identity_type() -> None:
    identities: list[dict[str, str]] = [
        {"type": "matchExact"},
        {"type": "matchRepoDigestOrExact"},
        {"type": "matchRepository"},
        {"type": "exactReference", "dockerReference": "quay.io/vendor/app:1"},
        {"type": "exactRepository", "dockerRepository": "quay.io/vendor/app"},
        {"type": "remapIdentity", "prefix": "mirror.local:5000/vendor", "signedPrefix": "vendor.example.com"},
    ]
    scopes = {
        f"h{i}.example.com": [{"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": ident}]
        for i, ident in enumerate(identities)
    }
    policy = parse_policy(policy_text({"docker": scopes}), PATH)
    found = []
    for i in range(len(identities)):
        requirement = policy.requirements_for("docker", f"h{i}.example.com/x:1")[0]
        assert isinstance(requirement, SigstoreSigned)
        found.append(requirement.signed_identity)
    assert found == [
        MatchExact(),
        MatchRepoDigestOrExact(),
        MatchRepository(),
        ExactReference("quay.io/vendor/app:1"),
        ExactRepository("quay.io/vendor/app"),
        RemapIdentity("mirror.local:5000/vendor", "vendor.example.com"),
    ]


def test_sigstore_fulcio_and_rekor_parse_but_are_marked_unsupported() -> None:
    requirement = {
        "type": "sigstoreSigned",
        "fulcio": {"caPath": "/ca.pem", "oidcIssuer": "https://issuer", "subjectEmail": "a@example.com"},
        "rekorPublicKeyPath": "/rekor.pub",
    }
    policy = parse_policy(policy_text({"docker": {"": [requirement]}}), PATH)
    parsed = policy.requirements_for("docker", "quay.io/x:1")[0]
    assert isinstance(parsed, SigstoreSigned)
    assert parsed.unsupported == ("fulcio", "rekorPublicKeyPath")
    with_key = {"type": "sigstoreSigned", "keyPath": "/k.pub", "rekorPublicKeyData": "cmVrb3I="}
    policy = parse_policy(policy_text({"docker": {"": [with_key]}}), PATH)
    only = policy.requirements_for("docker", "quay.io/x:1")[0]
    assert isinstance(only, SigstoreSigned) and only.unsupported == ("rekorPublicKeyData",)


def test_json_syntax_error_names_line_and_column() -> None:
    text = '{\n    "default": [{"type": "reject"}],\n}\n'
    assert error_of(text).startswith(f"{PATH}:3:1: invalid JSON: ")
    duplicate = '{\n  "default": [{"type": "reject"}],\n  "default": []\n}'
    assert error_of(duplicate) == f'{PATH}:3:3: invalid JSON: duplicate key "default"'
    constant = '{\n  "default": [{"type": "reject", "x": NaN}]\n}'
    line, col = position(constant, "NaN")
    assert error_of(constant) == f"{PATH}:{line}:{col}: invalid JSON: NaN is not valid JSON"


def test_unknown_requirement_type_names_line_and_column() -> None:
    text = policy_text({"docker": {"quay.io/x": [{"type": "signedBY"}]}})
    line, col = position(text, '"signedBY"')
    assert error_of(text) == (
        f'{PATH}:{line}:{col}: transports.docker["quay.io/x"][0]: unknown requirement type "signedBY"'
    )


@pytest.mark.parametrize(
    ("requirement", "needle", "problem"),
    [
        (
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyPth": "/k"},
            '"keyPth"',
            'unknown key "keyPth"',
        ),
        ({"type": "reject", "extra": 1}, '"extra"', 'unknown key "extra"'),
        (
            {"type": "signedBy", "keyPath": "/k"},
            '{"type": "signedBy"',
            'missing "keyType" (must be "GPGKeys")',
        ),
        (
            {"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"},
            '"X509Certificates"',
            '"X509Certificates" is not supported (only "GPGKeys")',
        ),
        (
            {"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyData": "YQ=="},
            '"keyData"',
            "exactly one of keyPath, keyPaths and keyData must be specified, more than one present: "
            "keyPath, keyData",
        ),
        (
            {"type": "signedBy", "keyType": "GPGKeys"},
            '{"type": "signedBy"',
            "exactly one of keyPath, keyPaths and keyData must be specified, none present",
        ),
        ({"type": "signedBy", "keyType": "GPGKeys", "keyData": "%%%"}, '"%%%"', "is not valid base64"),
        (
            {"type": "signedBy", "keyType": "GPGKeys", "keyPaths": []},
            "[]",
            "must be a non-empty array of strings",
        ),
        ({"type": "signedBy", "keyType": "GPGKeys", "keyPath": 7}, "7", "must be a string, not a number"),
        (
            {
                "type": "sigstoreSigned",
                "keyPath": "/k",
                "signedIdentity": {"type": "exactReference", "dockerReference": "quay.io/a"},
            },
            '"quay.io/a"',
            '"quay.io/a" contains neither a tag nor a digest',
        ),
        (
            {"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchSomething"}},
            '"matchSomething"',
            'unknown signedIdentity type "matchSomething"',
        ),
        (
            {"type": "sigstoreSigned", "keyPath": "/k", "signedIdentity": {"type": "matchExact", "x": 1}},
            '"x"',
            'unknown key "x"',
        ),
        (
            {
                "type": "sigstoreSigned",
                "keyPath": "/k",
                "signedIdentity": {
                    "type": "remapIdentity",
                    "prefix": "Bad Prefix",
                    "signedPrefix": "quay.io",
                },
            },
            '"Bad Prefix"',
            '"Bad Prefix" is not a host[:port][/namespace...] prefix',
        ),
        (
            {"type": "sigstoreSigned", "fulcio": {"caPath": "/ca", "oidcIssuer": "i", "subjectEmail": "e"}},
            '"fulcio"',
            "fulcio needs one of rekorPublicKeyPath, rekorPublicKeyPaths, rekorPublicKeyData, "
            "rekorPublicKeyDatas",
        ),
        ({"keyPath": "/k"}, '{"keyPath"', 'missing "type"'),
        ("reject", '"reject"', "must be an object, not a string"),
    ],
)
def test_semantic_errors_name_the_line(requirement: object, needle: str, problem: str) -> None:
    text = policy_text({"docker": {"quay.io/x": [requirement]}})
    line, _ = position(text.split('"transports"', 1)[1], needle)
    line += text.split('"transports"', 1)[0].count("\n")
    message = error_of(text)
    assert message.startswith(f"{PATH}:{line}:"), message
    assert message.endswith(problem), message
    assert 'transports.docker["quay.io/x"][0]' in message


def test_structural_errors() -> None:
    missing = '{\n  "transports": {}\n}'
    assert error_of(missing) == f'{PATH}:1:1: policy: the global "default" requirements are missing'
    empty = '{\n  "default": []\n}'
    assert error_of(empty) == f"{PATH}:2:14: default: the list of requirements must not be empty"
    unknown = '{\n  "default": [{"type": "reject"}],\n  "defaults": []\n}'
    assert error_of(unknown) == f'{PATH}:3:3: policy: unknown key "defaults"'
    scope_list = policy_text({"docker": {"quay.io": []}})
    assert error_of(scope_list).endswith(
        'transports.docker["quay.io"]: the list of requirements must not be empty'
    )
    assert error_of("[]") == f"{PATH}:1:1: policy: must be an object, not an array"


@pytest.mark.parametrize(
    ("transport", "scope"),
    [
        ("docker", "Quay.io/Upper/Case"),
        ("docker", "*.example.com:5000"),
        ("docker", "quay.io/x:bad tag"),
        ("docker", "quay.io/x@sha256:short"),
        ("oci", "relative/dir"),
        ("oci", "/"),
        ("oci-archive", "/a/../b.tar"),
    ],
)
def test_invalid_scopes_are_refused_with_their_line(transport: str, scope: str) -> None:
    text = policy_text({transport: {scope: ACCEPT}})
    line, col = position(text, json.dumps(scope))
    message = error_of(text)
    assert message.startswith(f"{PATH}:{line}:{col}: transports.{transport}[{json.dumps(scope)}]: "), message


def test_unknown_transports_are_accepted_with_opaque_scopes() -> None:
    policy = parse_policy(
        policy_text({"atomic": {"anything goes": ACCEPT}, "docker-daemon": {"": ACCEPT}}), PATH
    )
    assert policy.requirements_for("atomic", "anything goes") == (InsecureAcceptAnything(),)
    assert policy.requirements_for("atomic", "other") == (Reject(),)
    assert policy.requirements_for("docker-daemon", "x") == (InsecureAcceptAnything(),)


# --------------------------------------------------------------------------------------------------
# Scope precedence
# --------------------------------------------------------------------------------------------------

DOCKER_LEVELS = [
    "a.b.example.com:5000/ns/sub/repo:1",
    "a.b.example.com:5000/ns/sub/repo",
    "a.b.example.com:5000/ns/sub",
    "a.b.example.com:5000/ns",
    "a.b.example.com:5000",
    "*.b.example.com",
    "*.example.com",
    "*.com",
    "",
]


def test_docker_scope_precedence_most_specific_first() -> None:
    assert docker_scopes(parse_docker_scope_reference(DOCKER_LEVELS[0])) == DOCKER_LEVELS[:-1]
    for start in range(len(DOCKER_LEVELS)):
        levels = DOCKER_LEVELS[start:]
        policy = parse_policy(policy_text({"docker": {scope: ACCEPT for scope in reversed(levels)}}), PATH)
        where, requirements = policy.lookup("docker", "a.b.example.com:5000/ns/sub/repo:1")
        assert where == f"transports.docker[{json.dumps(levels[0])}]"
        assert requirements == (InsecureAcceptAnything(),)
    policy = parse_policy(policy_text({"oci": {"": ACCEPT}}), PATH)
    assert policy.lookup("docker", "a.b.example.com:5000/ns/sub/repo:1") == ("default", (Reject(),))
    assert policy.lookup("docker", "") == ("default", (Reject(),))


def test_docker_scope_identity_uses_digest_and_other_tags_do_not_match() -> None:
    pinned = f"quay.io/ns/repo@{DIGEST}"
    policy = parse_policy(
        policy_text({"docker": {pinned: ACCEPT, "quay.io/ns/repo:2": [{"type": "reject"}], "": ACCEPT}}), PATH
    )
    assert policy.lookup("docker", pinned)[0] == f"transports.docker[{json.dumps(pinned)}]"
    assert (
        policy.lookup("docker", f"quay.io/ns/repo:1@{DIGEST}")[0]
        == f"transports.docker[{json.dumps(pinned)}]"
    )
    assert policy.lookup("docker", "quay.io/ns/repo:1")[0] == 'transports.docker[""]'
    assert policy.lookup("docker", "quay.io/ns/repo:2")[1] == (Reject(),)
    # A wildcard covers subdomains only, not the domain itself; a host scope ignores other ports.
    wild = parse_policy(policy_text({"docker": {"*.example.com": ACCEPT, "example.com": ACCEPT}}), PATH)
    assert wild.lookup("docker", "example.com/x:1")[0] == 'transports.docker["example.com"]'
    assert wild.lookup("docker", "r.example.com/x:1")[0] == 'transports.docker["*.example.com"]'
    assert wild.lookup("docker", "example.com:5000/x:1")[0] == "default"
    with pytest.raises(InvalidArgument):
        wild.lookup("docker", "Not A Reference")


def test_path_transport_scope_precedence() -> None:
    levels = ["/var/lib/images/app:v1", "/var/lib/images/app", "/var/lib/images", "/var/lib", "/var", ""]
    for start in range(len(levels)):
        scopes = {scope: ACCEPT for scope in levels[start:]}
        policy = parse_policy(policy_text({"oci": scopes}), PATH)
        assert (
            policy.lookup("oci", "/var/lib/images/app:v1")[0]
            == f"transports.oci[{json.dumps(levels[start])}]"
        )
    policy = parse_policy(policy_text({"oci": {"/var/lib/images/app:v1": ACCEPT}}), PATH)
    assert policy.lookup("oci", "/var/lib/images/app:v2")[0] == "default"
    assert policy.lookup("docker-archive", "/var/lib/images/app:v1")[0] == "default"


def test_needs_signatures() -> None:
    text = policy_text(
        {
            "docker": {
                "quay.io/signed": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}],
                "quay.io/cosign": [
                    {"type": "sigstoreSigned", "keyPath": "/k"},
                    {"type": "insecureAcceptAnything"},
                ],
                "quay.io/open": ACCEPT,
            }
        }
    )
    policy = parse_policy(text, PATH)
    assert policy.needs_signatures("docker", "quay.io/signed:1")
    assert policy.signature_kinds("docker", "quay.io/signed:1") == {"simple-signing"}
    assert policy.needs_signatures("docker", "quay.io/cosign/x:1")
    assert policymod.needs_sigstore(policy.requirements_for("docker", "quay.io/cosign/x:1"))
    assert not policymod.needs_simple_signing(policy.requirements_for("docker", "quay.io/cosign/x:1"))
    assert not policy.needs_signatures("docker", "quay.io/open:1")
    assert not policy.needs_signatures("docker", "docker.io/library/busybox:latest")  # default: reject


# --------------------------------------------------------------------------------------------------
# Loading and key validation
# --------------------------------------------------------------------------------------------------


def test_load_policy_caches_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    with pytest.raises(InvalidArgument, match=f"signature policy {path} does not exist"):
        load_policy(str(path))
    path.write_text(policy_text())
    first = load_policy(str(path))
    assert load_policy(str(path)) is first
    path.write_text(policy_text({"docker": {"": ACCEPT}}))
    os.utime(path, ns=(1, 1))
    second = load_policy(str(path))
    assert second is not first
    assert second.requirements_for("docker", "quay.io/x:1") == (InsecureAcceptAnything(),)
    path.write_text("{")
    with pytest.raises(InvalidArgument, match=f"^{path}:1:2: invalid JSON"):
        load_policy(str(path))


def test_validate_keys_reports_unreadable_and_unparsable_keys(tmp_path: Path) -> None:
    _, pem = trustkit.make_sigstore_key()
    good = tmp_path / "cosign.pub"
    good.write_bytes(pem)
    garbage = tmp_path / "garbage.gpg"
    garbage.write_bytes(b"this is not a key\n")
    missing = tmp_path / "missing.gpg"
    text = policy_text(
        {
            "docker": {
                "quay.io/good": [{"type": "sigstoreSigned", "keyPath": str(good)}],
                "quay.io/bad": [{"type": "sigstoreSigned", "keyPath": str(garbage)}],
                "quay.io/gpg": [{"type": "signedBy", "keyType": "GPGKeys", "keyPaths": [str(missing)]}],
            }
        }
    )
    problems = parse_policy(text, PATH).validate_keys()
    assert len(problems) == 2
    assert any(f"key file {garbage} is not a PEM public key" in p for p in problems)
    assert any(f"cannot read key file {missing}: No such file or directory" in p for p in problems)
    assert all(p.startswith(f"{PATH}: transports.docker[") for p in problems)
    assert (
        parse_policy(
            policy_text({"docker": {"": [{"type": "sigstoreSigned", "keyPath": str(good)}]}}), PATH
        ).validate_keys()
        == []
    )


# --------------------------------------------------------------------------------------------------
# signedIdentity semantics
# --------------------------------------------------------------------------------------------------

TAGGED = parse_docker_reference("docker.io/library/busybox:1")
PINNED = parse_docker_reference(f"docker.io/library/busybox@{DIGEST}")


@pytest.mark.parametrize(
    ("identity", "intended", "signed", "accepted"),
    [
        (MatchExact(), TAGGED, "busybox:1", True),
        (MatchExact(), TAGGED, "docker.io/library/busybox:2", False),
        (MatchExact(), TAGGED, "docker.io/library/busybox", False),
        (MatchExact(), PINNED, "docker.io/library/busybox:1", False),
        (MatchExact(), PINNED, f"docker.io/library/busybox@{DIGEST}", True),
        (MatchExact(), None, "docker.io/library/busybox:1", False),
        (MatchRepoDigestOrExact(), TAGGED, "docker.io/library/busybox:1", True),
        (MatchRepoDigestOrExact(), TAGGED, "docker.io/library/busybox:2", False),
        (MatchRepoDigestOrExact(), PINNED, "docker.io/library/busybox:any", True),
        (MatchRepoDigestOrExact(), PINNED, "docker.io/library/other:1", False),
        (MatchRepoDigestOrExact(), PINNED, "docker.io/library/busybox", False),
        (MatchRepoDigestOrExact(), TAGGED, "not a reference", False),
        (MatchRepository(), TAGGED, "docker.io/library/busybox:2", True),
        (MatchRepository(), TAGGED, "docker.io/library/busybox", True),
        (MatchRepository(), TAGGED, "quay.io/library/busybox:1", False),
        (ExactReference("quay.io/vendor/app:1"), TAGGED, "quay.io/vendor/app:1", True),
        (ExactReference("quay.io/vendor/app:1"), None, "quay.io/vendor/app:1", True),
        (ExactReference("quay.io/vendor/app:1"), TAGGED, "quay.io/vendor/app:2", False),
        (ExactRepository("quay.io/vendor/app"), None, "quay.io/vendor/app:9", True),
        (ExactRepository("quay.io/vendor/app"), TAGGED, "quay.io/vendor/other:9", False),
    ],
)
def test_identity_matching(identity: object, intended: object, signed: str, accepted: bool) -> None:
    assert identity.matches(intended, signed) is accepted  # type: ignore[attr-defined]


def test_remap_identity() -> None:
    remap = RemapIdentity("mirror.local:5000/vendor", "vendor.example.com")
    mirrored = parse_docker_reference("mirror.local:5000/vendor/app:1")
    assert remap.matches(mirrored, "vendor.example.com/app:1")
    assert not remap.matches(mirrored, "mirror.local:5000/vendor/app:1")
    assert not remap.matches(mirrored, "vendor.example.com/app:2")
    pinned = parse_docker_reference(f"mirror.local:5000/vendor/app@{DIGEST}")
    assert remap.matches(pinned, "vendor.example.com/app:any")
    # The prefix matches whole path components only; an unmatched reference is compared unchanged.
    sibling = parse_docker_reference("mirror.local:5000/vendorx/app:1")
    assert not remap.matches(sibling, "vendor.example.comx/app:1")
    assert remap.matches(sibling, "mirror.local:5000/vendorx/app:1")
    # A remapped name that is not in canonical form (docker.io/busybox) never matches.
    to_hub = RemapIdentity("mirror.local:5000/vendor", "docker.io")
    hub_image = parse_docker_reference("mirror.local:5000/vendor/busybox:1")
    assert not to_hub.matches(hub_image, "docker.io/library/busybox:1")
    assert RemapIdentity("mirror.local:5000/vendor", "docker.io/library").matches(hub_image, "busybox:1")
    assert not remap.matches(None, "vendor.example.com/app:1")

"""Parsing the requirement objects of containers-policy.json(5), with error locations.

Rules of containers/image (``signature/policy_config.go``, ``policy_config_sigstore.go``): each object's
members are exactly the known ones; ``signedBy`` needs ``keyType`` (only ``GPGKeys`` is verifiable) and
exactly one of ``keyPath``/``keyPaths``/``keyData``; ``sigstoreSigned`` exactly one of ``keyPath``,
``keyPaths``, ``keyData``, ``keyDatas``, ``fulcio`` and ``pki``, at most one ``rekorPublicKey*``, which
``fulcio`` requires; ``signedIdentity`` defaults to ``matchRepoDigestOrExact``; ``exactReference`` needs a tag
or digest; ``remapIdentity`` prefixes are ``host[:port][/namespace...]``. Errors are :class:`InvalidArgument`
naming ``file:line:column``, the JSON path and the problem.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from crio.core.errors import InvalidArgument
from crio.core.images.reference import DOMAIN_RE, PATH_RE, parse_docker_reference
from crio.core.images.trust import jsonpos
from crio.core.images.trust.jsonpos import JArray, JObject
from crio.core.images.trust.requirements import (
    GPG_KEYS,
    INSECURE_ACCEPT_ANYTHING,
    REJECT,
    SIGNED_BASE_LAYER,
    SIGNED_BY,
    SIGSTORE_SIGNED,
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

# keyType values containers/image recognizes but (like it) crio cannot verify.
_UNSUPPORTED_KEY_TYPES = ("signedByGPGKeys", "X509Certificates", "signedByX509CAs")


class Source:
    """The text being parsed and its path, for error messages with line and column."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path

    def error(self, pos: int, where: str, problem: str) -> InvalidArgument:
        """An error at text offset ``pos``: ``path:line:column: where: problem``."""
        line, col = jsonpos.line_col(self.text, pos)
        return InvalidArgument(f"{self.path}:{line}:{col}: {where}: {problem}")


def type_name(value: Any) -> str:
    """How a JSON value's type is named in messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a number"


def expect_object(src: Source, value: Any, pos: int, where: str) -> JObject:
    """``value`` when it is a JSON object, else an error at ``pos``."""
    if not isinstance(value, JObject):
        raise src.error(pos, where, f"must be an object, not {type_name(value)}")
    return value


def check_keys(
    src: Source, obj: JObject, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> None:
    for key in obj:
        if key not in allowed:
            raise src.error(obj.key_pos[key], where, f"unknown key {json.dumps(key)}")
    for key in required:
        if key not in obj:
            raise src.error(obj.pos, where, f"missing {json.dumps(key)}")


def _string(src: Source, obj: JObject, key: str, where: str, empty_ok: bool = False) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise src.error(obj.value_pos[key], f"{where}.{key}", f"must be a string, not {type_name(value)}")
    if not value and not empty_ok:
        raise src.error(obj.value_pos[key], f"{where}.{key}", "must not be empty")
    return value


def _strings(src: Source, obj: JObject, key: str, where: str) -> tuple[str, ...]:
    value = obj[key]
    if not isinstance(value, JArray) or not value:
        raise src.error(obj.value_pos[key], f"{where}.{key}", "must be a non-empty array of strings")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise src.error(value.item_pos[index], f"{where}.{key}[{index}]", "must be a non-empty string")
    return tuple(value)


def _base64(src: Source, text: str, pos: int, where: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise src.error(pos, where, "is not valid base64") from None
    if not data:
        raise src.error(pos, where, "must not be empty")
    return data


def _base64_field(src: Source, obj: JObject, key: str, where: str) -> bytes:
    return _base64(src, _string(src, obj, key, where), obj.value_pos[key], f"{where}.{key}")


def _base64_list(src: Source, obj: JObject, key: str, where: str) -> tuple[bytes, ...]:
    items = _strings(src, obj, key, where)
    positions = obj[key].item_pos
    return tuple(_base64(src, text, positions[i], f"{where}.{key}[{i}]") for i, text in enumerate(items))


def _check_remap_prefix(src: Source, obj: JObject, key: str, where: str) -> str:
    value = _string(src, obj, key, where)
    domain, slash, path = value.partition("/")
    if not DOMAIN_RE.fullmatch(domain) or (slash and not PATH_RE.fullmatch(path)):
        raise src.error(
            obj.value_pos[key],
            f"{where}.{key}",
            f"{json.dumps(value)} is not a host[:port][/namespace...] prefix",
        )
    return value


def _identity(src: Source, value: Any, pos: int, where: str) -> IdentityMatch:
    obj = expect_object(src, value, pos, where)
    if "type" not in obj:
        raise src.error(obj.pos, where, 'missing "type"')
    kind = _string(src, obj, "type", where)
    if kind in (MatchExact.type, MatchRepoDigestOrExact.type, MatchRepository.type):
        check_keys(src, obj, where, ("type",))
        simple: dict[str, IdentityMatch] = {
            MatchExact.type: MatchExact(),
            MatchRepoDigestOrExact.type: MatchRepoDigestOrExact(),
            MatchRepository.type: MatchRepository(),
        }
        return simple[kind]
    if kind == ExactReference.type:
        check_keys(src, obj, where, ("type", "dockerReference"), ("dockerReference",))
        text = _string(src, obj, "dockerReference", where)
        try:
            ref = parse_docker_reference(text, default_tag=False)
        except InvalidArgument as exc:
            raise src.error(obj.value_pos["dockerReference"], f"{where}.dockerReference", str(exc)) from None
        if ref.tag is None and ref.digest is None:
            raise src.error(
                obj.value_pos["dockerReference"],
                f"{where}.dockerReference",
                f"{json.dumps(text)} contains neither a tag nor a digest",
            )
        return ExactReference(text)
    if kind == ExactRepository.type:
        check_keys(src, obj, where, ("type", "dockerRepository"), ("dockerRepository",))
        text = _string(src, obj, "dockerRepository", where)
        try:
            parse_docker_reference(text, default_tag=False)
        except InvalidArgument as exc:
            raise src.error(
                obj.value_pos["dockerRepository"], f"{where}.dockerRepository", str(exc)
            ) from None
        return ExactRepository(text)
    if kind == RemapIdentity.type:
        check_keys(src, obj, where, ("type", "prefix", "signedPrefix"), ("prefix", "signedPrefix"))
        return RemapIdentity(
            _check_remap_prefix(src, obj, "prefix", where),
            _check_remap_prefix(src, obj, "signedPrefix", where),
        )
    raise src.error(obj.value_pos["type"], where, f"unknown signedIdentity type {json.dumps(kind)}")


def _signed_identity(src: Source, obj: JObject, where: str) -> IdentityMatch:
    if "signedIdentity" not in obj:
        return MatchRepoDigestOrExact()
    return _identity(src, obj["signedIdentity"], obj.value_pos["signedIdentity"], f"{where}.signedIdentity")


def _one_of(src: Source, obj: JObject, where: str, keys: tuple[str, ...]) -> str:
    present = [key for key in keys if key in obj]
    if len(present) != 1:
        names = ", ".join(keys[:-1]) + f" and {keys[-1]}"
        state = "none present" if not present else "more than one present: " + ", ".join(present)
        pos = obj.key_pos[present[1]] if len(present) > 1 else obj.pos
        raise src.error(pos, where, f"exactly one of {names} must be specified, {state}")
    return present[0]


def _signed_by(src: Source, obj: JObject, where: str) -> SignedBy:
    keys = ("keyPath", "keyPaths", "keyData")
    check_keys(src, obj, where, ("type", "keyType", *keys, "signedIdentity"))
    if "keyType" not in obj:
        raise src.error(obj.pos, where, f'missing "keyType" (must be "{GPG_KEYS}")')
    key_type = _string(src, obj, "keyType", where)
    if key_type != GPG_KEYS:
        problem = "is not supported" if key_type in _UNSUPPORTED_KEY_TYPES else "is unknown"
        raise src.error(
            obj.value_pos["keyType"],
            f"{where}.keyType",
            f'{json.dumps(key_type)} {problem} (only "{GPG_KEYS}")',
        )
    source = _one_of(src, obj, where, keys)
    identity = _signed_identity(src, obj, where)
    if source == "keyPath":
        return SignedBy(key_type, identity, key_path=_string(src, obj, "keyPath", where))
    if source == "keyPaths":
        return SignedBy(key_type, identity, key_paths=_strings(src, obj, "keyPaths", where))
    return SignedBy(key_type, identity, key_data=_base64_field(src, obj, "keyData", where))


_FULCIO_KEYS = ("caPath", "caData", "oidcIssuer", "subjectEmail")
_PKI_KEYS = (
    "caRootsPath",
    "caRootsData",
    "caIntermediatesPath",
    "caIntermediatesData",
    "subjectEmail",
    "subjectHostname",
)
_REKOR_KEYS = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")


def _fulcio(src: Source, obj: JObject, where: str) -> None:
    fulcio = expect_object(src, obj["fulcio"], obj.value_pos["fulcio"], f"{where}.fulcio")
    where = f"{where}.fulcio"
    check_keys(src, fulcio, where, _FULCIO_KEYS, ("oidcIssuer", "subjectEmail"))
    _one_of(src, fulcio, where, ("caPath", "caData"))
    for key in fulcio:
        _string(src, fulcio, key, where)


def _pki(src: Source, obj: JObject, where: str) -> None:
    pki = expect_object(src, obj["pki"], obj.value_pos["pki"], f"{where}.pki")
    where = f"{where}.pki"
    check_keys(src, pki, where, _PKI_KEYS)
    _one_of(src, pki, where, ("caRootsPath", "caRootsData"))
    if "caIntermediatesPath" in pki and "caIntermediatesData" in pki:
        raise src.error(pki.pos, where, "caIntermediatesPath and caIntermediatesData cannot be used together")
    if "subjectEmail" not in pki and "subjectHostname" not in pki:
        raise src.error(pki.pos, where, "at least one of subjectEmail and subjectHostname must be specified")
    for key in pki:
        _string(src, pki, key, where)


def _sigstore_signed(src: Source, obj: JObject, where: str) -> SigstoreSigned:
    sources = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
    check_keys(src, obj, where, ("type", *sources, *_REKOR_KEYS, "signedIdentity"))
    source = _one_of(src, obj, where, sources)
    rekor = [key for key in _REKOR_KEYS if key in obj]
    if len(rekor) > 1:
        raise src.error(
            obj.key_pos[rekor[1]], where, "at most one of " + ", ".join(_REKOR_KEYS) + " may be used"
        )
    if source == "fulcio" and not rekor:
        raise src.error(obj.key_pos["fulcio"], where, "fulcio needs one of " + ", ".join(_REKOR_KEYS))
    for key in rekor:
        if key.endswith("s"):
            _strings(src, obj, key, where)
        else:
            _string(src, obj, key, where)
    identity = _signed_identity(src, obj, where)
    unsupported = tuple(key for key in ("fulcio", "pki", *rekor) if key in obj)
    if source == "fulcio":
        _fulcio(src, obj, where)
        return SigstoreSigned(identity, unsupported=unsupported)
    if source == "pki":
        _pki(src, obj, where)
        return SigstoreSigned(identity, unsupported=unsupported)
    if source == "keyPath":
        return SigstoreSigned(
            identity, key_paths=(_string(src, obj, "keyPath", where),), unsupported=unsupported
        )
    if source == "keyPaths":
        return SigstoreSigned(
            identity, key_paths=_strings(src, obj, "keyPaths", where), unsupported=unsupported
        )
    if source == "keyData":
        return SigstoreSigned(
            identity, key_datas=(_base64_field(src, obj, "keyData", where),), unsupported=unsupported
        )
    return SigstoreSigned(
        identity, key_datas=_base64_list(src, obj, "keyDatas", where), unsupported=unsupported
    )


def _simple(kind: str) -> Callable[[Source, JObject, str], Requirement]:
    def parse(src: Source, obj: JObject, where: str) -> Requirement:
        check_keys(src, obj, where, ("type",))
        return InsecureAcceptAnything() if kind == INSECURE_ACCEPT_ANYTHING else Reject()

    return parse


def _signed_base_layer(src: Source, obj: JObject, where: str) -> SignedBaseLayer:
    check_keys(src, obj, where, ("type", "baseLayerIdentity"), ("baseLayerIdentity",))
    identity = _identity(
        src, obj["baseLayerIdentity"], obj.value_pos["baseLayerIdentity"], f"{where}.baseLayerIdentity"
    )
    return SignedBaseLayer(identity)


_PARSERS: dict[str, Callable[[Source, JObject, str], Requirement]] = {
    INSECURE_ACCEPT_ANYTHING: _simple(INSECURE_ACCEPT_ANYTHING),
    REJECT: _simple(REJECT),
    SIGNED_BY: _signed_by,
    SIGSTORE_SIGNED: _sigstore_signed,
    SIGNED_BASE_LAYER: _signed_base_layer,
}


def _requirement(src: Source, value: Any, pos: int, where: str) -> Requirement:
    obj = expect_object(src, value, pos, where)
    if "type" not in obj:
        raise src.error(obj.pos, where, 'missing "type"')
    kind = _string(src, obj, "type", where)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise src.error(obj.value_pos["type"], where, f"unknown requirement type {json.dumps(kind)}")
    return parser(src, obj, where)


def parse_requirements(src: Source, value: Any, pos: int, where: str) -> tuple[Requirement, ...]:
    """Parse a non-empty JSON array of requirement objects found at ``pos`` (``where`` names it)."""
    if not isinstance(value, JArray):
        raise src.error(pos, where, f"must be an array of requirements, not {type_name(value)}")
    if not value:
        raise src.error(pos, where, "the list of requirements must not be empty")
    return tuple(_requirement(src, item, value.item_pos[i], f"{where}[{i}]") for i, item in enumerate(value))

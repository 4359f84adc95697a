"""containers-policy.json(5): parsing, validation and scope lookup.

Parsing is as strict as containers/image's (``signature/policy_config*.go``): unknown or duplicate keys,
wrong types, an empty requirement list and a missing ``default`` are errors (requirement objects:
:mod:`.reqparse`); docker and oci-like scopes are validated (:mod:`.scopes`). Every error is an
:class:`InvalidArgument` naming ``file:line:column``, the JSON path of the offending value and the problem.
Key files are not read here but at evaluation time (:mod:`.keys`); :meth:`Policy.validate_keys` reports
unreadable ones early. ``sigstoreSigned`` options crio cannot verify (``fulcio``, ``pki``,
``rekorPublicKey*``) are parsed and validated, and the requirement then refuses every image at evaluation
with a "not supported" reason, so one such scope does not stop the rest of the policy from working.
"""

from __future__ import annotations

import json
import os
import threading
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crio.core.errors import InvalidArgument
from crio.core.images.trust import jsonpos, scopes
from crio.core.images.trust.jsonpos import JObject
from crio.core.images.trust.keys import KeyLoadError, load_gpg_keyring, load_sigstore_keys
from crio.core.images.trust.reqparse import Source, check_keys, expect_object, parse_requirements
from crio.core.images.trust.requirements import Requirement, SignedBy, SigstoreSigned

DEFAULT_POLICY_PATH = "/etc/containers/policy.json"


@dataclass(frozen=True, eq=False)
class Policy:
    """A parsed policy: the global ``default`` and ``transports`` → scope → requirements."""

    path: str
    default: tuple[Requirement, ...]
    transports: Mapping[str, Mapping[str, tuple[Requirement, ...]]]

    def lookup(self, transport: str, scope: str) -> tuple[str, tuple[Requirement, ...]]:
        """The most specific matching entry for ``scope`` of ``transport``: a description of where it is
        (``transports.docker["quay.io"]`` or ``default``) and its requirements.

        For docker ``scope`` is the fully qualified ``domain/path[:tag][@digest]``; for oci-like transports
        ``/path[:ref]``. Raises :class:`InvalidArgument` for a malformed docker reference.
        """
        candidates = scopes.scopes_for(transport, scope)
        per_transport = self.transports.get(transport)
        if per_transport is not None:
            for candidate in [*candidates, ""]:
                requirements = per_transport.get(candidate)
                if requirements is not None:
                    return f"transports.{transport}[{json.dumps(candidate)}]", requirements
        return "default", self.default

    def requirements_for(self, transport: str, scope: str) -> tuple[Requirement, ...]:
        """The requirements that apply to ``scope`` of ``transport`` (see :meth:`lookup`)."""
        return self.lookup(transport, scope)[1]

    def needs_signatures(self, transport: str, scope: str) -> bool:
        """Whether evaluating ``scope`` may look at signatures (a signedBy or sigstoreSigned applies), so
        the caller can skip fetching them otherwise."""
        return needs_signatures(self.requirements_for(transport, scope))

    def signature_kinds(self, transport: str, scope: str) -> frozenset[str]:
        """The signature kinds (``simple-signing``, ``sigstore``) the applicable requirements verify."""
        return signature_kinds(self.requirements_for(transport, scope))

    def all_requirements(self) -> list[tuple[str, Requirement]]:
        """Every requirement with a description of where it is, for diagnostics."""
        found = [(f"default[{i}]", r) for i, r in enumerate(self.default)]
        for transport, by_scope in self.transports.items():
            for scope, requirements in by_scope.items():
                where = f"transports.{transport}[{json.dumps(scope)}]"
                found.extend((f"{where}[{i}]", r) for i, r in enumerate(requirements))
        return found

    def validate_keys(self) -> list[str]:
        """Load every key the policy names (files and inline data) and return one message per problem:
        a missing or unreadable file, or content that is not a usable key. An empty list means all keys
        load; the daemon can call this at start-up to report problems before a pull fails on them."""
        problems: list[str] = []
        for where, requirement in self.all_requirements():
            try:
                if isinstance(requirement, SignedBy):
                    load_gpg_keyring(requirement)
                elif isinstance(requirement, SigstoreSigned) and not requirement.unsupported:
                    load_sigstore_keys(requirement)
            except KeyLoadError as exc:
                problems.append(f"{self.path}: {where}: {exc}")
        return problems


def signature_kinds(requirements: Sequence[Requirement]) -> frozenset[str]:
    """The signature kinds (``simple-signing``, ``sigstore``) ``requirements`` verify."""
    kinds: set[str] = set()
    for requirement in requirements:
        if isinstance(requirement, SignedBy):
            kinds.add("simple-signing")
        elif isinstance(requirement, SigstoreSigned):
            kinds.add("sigstore")
    return frozenset(kinds)


def needs_signatures(requirements: Sequence[Requirement]) -> bool:
    """Whether evaluating ``requirements`` may look at signatures at all."""
    return bool(signature_kinds(requirements))


def needs_sigstore(requirements: Sequence[Requirement]) -> bool:
    """Whether ``requirements`` verify sigstore signatures (so sigstore attachments should be fetched)."""
    return "sigstore" in signature_kinds(requirements)


def needs_simple_signing(requirements: Sequence[Requirement]) -> bool:
    """Whether ``requirements`` verify simple-signing signatures (lookaside or storage)."""
    return "simple-signing" in signature_kinds(requirements)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def _transports(src: Source, top: JObject) -> dict[str, Mapping[str, tuple[Requirement, ...]]]:
    result: dict[str, Mapping[str, tuple[Requirement, ...]]] = {}
    raw = expect_object(src, top["transports"], top.value_pos["transports"], "transports")
    for transport, value in raw.items():
        where = f"transports.{transport}"
        by_scope = expect_object(src, value, raw.value_pos[transport], where)
        parsed: dict[str, tuple[Requirement, ...]] = {}
        for scope, requirements in by_scope.items():
            scope_where = f"{where}[{json.dumps(scope)}]"
            if scope:
                try:
                    scopes.validate_scope(transport, scope)
                except InvalidArgument as exc:
                    raise src.error(by_scope.key_pos[scope], scope_where, str(exc)) from None
            parsed[scope] = parse_requirements(src, requirements, by_scope.value_pos[scope], scope_where)
        result[transport] = types.MappingProxyType(parsed)
    return result


def parse_policy(text: str, path: str) -> Policy:
    """Parse policy.json ``text`` read from ``path`` (used in messages). Raises :class:`InvalidArgument`
    naming ``path:line:column``, the JSON path and the problem."""
    try:
        top_value = jsonpos.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    src = Source(text, path)
    top = expect_object(src, top_value, _skip_space(text), "policy")
    check_keys(src, top, "policy", ("default", "transports"))
    if "default" not in top:
        raise src.error(top.pos, "policy", 'the global "default" requirements are missing')
    default = parse_requirements(src, top["default"], top.value_pos["default"], "default")
    transports = _transports(src, top) if "transports" in top else {}
    return Policy(path, default, types.MappingProxyType(transports))


def _skip_space(text: str) -> int:
    return len(text) - len(text.lstrip(" \t\r\n"))


_CACHE: dict[str, tuple[tuple[int, int, int], Policy]] = {}
_CACHE_LOCK = threading.Lock()


def load_policy(path: str) -> Policy:
    """Load and parse ``path``, cached while its (mtime_ns, size, inode) stay the same.

    A missing or unreadable file raises :class:`InvalidArgument` naming the path (whether that is fatal is
    the caller's decision), as does any parse error.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidArgument(f"signature policy {path} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"signature policy {path}: cannot read: {exc.strerror}") from None
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        raise InvalidArgument(f"signature policy {path} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"signature policy {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"signature policy {path}: not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    policy = parse_policy(text, path)
    with _CACHE_LOCK:
        _CACHE[path] = (key, policy)
    return policy

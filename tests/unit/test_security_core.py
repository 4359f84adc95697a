"""How the CRI profile fields are read (crio.core.security_profiles) and the core's refusal to run a request
unconfined when no loaded plugin serves the confinement it asks for (crio.core.security)."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core import security
from crio.core import security_profiles as sp
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.plugins import DISABLED, LOADED, SKIPPED, PluginReport
from crio.core.types import SecurityRequest

LOCAL = {"profile_type": "Localhost", "localhost_ref": "/profiles/x.json"}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, sp.ProfileChoice(sp.UNCONFINED, explicit=False)),
        ({"seccomp": {}}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        ({"seccomp": {"profile_type": "Unconfined"}}, sp.ProfileChoice(sp.UNCONFINED)),
        ({"seccomp": LOCAL}, sp.ProfileChoice(sp.LOCALHOST, "/profiles/x.json")),
        ({"seccomp_profile_path": "runtime/default"}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        ({"seccomp_profile_path": "docker/default"}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        ({"seccomp_profile_path": "unconfined"}, sp.ProfileChoice(sp.UNCONFINED)),
        ({"seccomp_profile_path": "localhost//p.json"}, sp.ProfileChoice(sp.LOCALHOST, "/p.json")),
        ({"seccomp": {}, "seccomp_profile_path": "unconfined"}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
    ],
)
def test_seccomp_choice(context: dict[str, Any], expected: sp.ProfileChoice) -> None:
    assert sp.seccomp_choice(context) == expected


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, sp.ProfileChoice(sp.RUNTIME_DEFAULT, explicit=False)),
        ({"seccomp_profile_path": ""}, sp.ProfileChoice(sp.RUNTIME_DEFAULT, explicit=False)),
        ({"seccomp": {"profile_type": "Unconfined"}}, sp.ProfileChoice(sp.UNCONFINED)),
        ({"seccomp_profile_path": "unconfined"}, sp.ProfileChoice(sp.UNCONFINED)),
        ({"seccomp": {}}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        ({"seccomp": LOCAL}, sp.ProfileChoice(sp.LOCALHOST, "/profiles/x.json")),
    ],
)
def test_seccomp_choice_with_default_when_empty(context: dict[str, Any], expected: sp.ProfileChoice) -> None:
    """seccomp_use_default_when_empty: only a nil profile changes meaning; an explicit Unconfined stays."""
    assert sp.seccomp_choice(context, default_when_empty=True) == expected


def test_a_default_when_empty_profile_is_not_a_need() -> None:
    """The configured default is not something the request asked for: without a seccomp plugin the container
    is not refused (as with CRI-O on a host without seccomp)."""
    request = SecurityRequest(kind="container", name="c", security_context={})
    assert security.SECCOMP not in [n.feature for n in security.needs(request)]


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({}, sp.ProfileChoice(sp.RUNTIME_DEFAULT, explicit=False)),
        ({"apparmor": {}}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        ({"apparmor": {"profile_type": "Unconfined"}}, sp.ProfileChoice(sp.UNCONFINED)),
        (
            {"apparmor": {"profile_type": "Localhost", "localhost_ref": "localhost/p"}},
            sp.ProfileChoice(sp.LOCALHOST, "p"),
        ),
        ({"apparmor_profile": "localhost/deny-write"}, sp.ProfileChoice(sp.LOCALHOST, "deny-write")),
        ({"apparmor_profile": "unconfined"}, sp.ProfileChoice(sp.UNCONFINED)),
        ({"apparmor_profile": "runtime/default"}, sp.ProfileChoice(sp.RUNTIME_DEFAULT)),
        (  # the new field wins over the deprecated one
            {"apparmor": {"profile_type": "Unconfined"}, "apparmor_profile": "localhost/p"},
            sp.ProfileChoice(sp.UNCONFINED),
        ),
    ],
)
def test_apparmor_choice(context: dict[str, Any], expected: sp.ProfileChoice) -> None:
    assert sp.apparmor_choice(context) == expected


@pytest.mark.parametrize(
    "context",
    [
        {"seccomp": {"profile_type": "Localhost"}},
        {"seccomp": {"profile_type": "Bogus"}},
        {"seccomp": "runtime/default"},
        {"seccomp_profile_path": "localhost/"},
        {"seccomp_profile_path": "whatever"},
    ],
)
def test_bad_seccomp_fields(context: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        sp.seccomp_choice(context)


@pytest.mark.parametrize(
    "context",
    [{"apparmor": {"profile_type": "Localhost", "localhost_ref": "localhost/"}}, {"apparmor_profile": "x"}],
)
def test_bad_apparmor_fields(context: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        sp.apparmor_choice(context)


def test_selinux_options() -> None:
    assert sp.selinux_options({}) == {}
    assert sp.selinux_options({"selinux_options": {"level": "s0:c1,c2", "user": ""}}) == {"level": "s0:c1,c2"}


# -------------------------------------------------------------------------------- unserved requests

SECCOMP_ONLY = {"seccomp": {"enabled": True}}
REPORTS = [
    PluginReport("seccomp", "crio.plugins.seccomp", "crio", LOADED),
    PluginReport("apparmor", "crio.plugins.apparmor", "crio", SKIPPED, "AppArmor is not enabled (kernel)"),
    PluginReport("selinux", "crio.plugins.selinux", "crio", SKIPPED, "SELinux is not enabled on this host"),
]


def request(context: dict[str, Any], privileged: bool = False) -> SecurityRequest:
    return SecurityRequest(kind="container", name="c", security_context=context, privileged=privileged)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"apparmor": {"profile_type": "Localhost", "localhost_ref": "deny-write"}},
            "plugin apparmor is skipped",
        ),
        ({"apparmor_profile": "localhost/deny-write"}, "AppArmor profile localhost deny-write"),
        ({"selinux_options": {"level": "s0:c1,c2"}}, "SELinux options (level=s0:c1,c2)"),
        ({"selinux_options": {"type": "spc_t"}}, "SELinux is not enabled on this host"),
    ],
)
def test_confinement_without_its_plugin_is_refused(context: dict[str, Any], message: str) -> None:
    with pytest.raises(FailedPrecondition) as err:
        security.refuse_unserved(request(context), SECCOMP_ONLY, REPORTS)
    assert message in str(err.value) and "unconfined" in str(err.value)


@pytest.mark.parametrize(
    "context",
    [
        {},  # AppArmor's runtime default where the kernel has no AppArmor: nothing to apply
        {"apparmor": {}},
        {"apparmor": {"profile_type": "Unconfined"}},
        {"seccomp": {}},
        {"seccomp": LOCAL},
        {"selinux_options": {}},
    ],
)
def test_served_or_harmless_requests_pass(context: dict[str, Any]) -> None:
    security.refuse_unserved(request(context), SECCOMP_ONLY, REPORTS)


def test_privileged_requests_ignore_profiles() -> None:
    context = {"seccomp": LOCAL, "apparmor_profile": "localhost/x"}
    security.refuse_unserved(request(context, privileged=True), {}, REPORTS)


@pytest.mark.parametrize(
    ("reports", "message"),
    [
        ([PluginReport("seccomp", "v", "d", SKIPPED, "missing optional dependency pyseccomp")], "pyseccomp"),
        ([PluginReport("seccomp", "v", "d", DISABLED, "listed in crio.plugins.disabled")], "disabled"),
        ([], "no loaded plugin serves seccomp"),
    ],
)
def test_seccomp_without_its_plugin_is_refused(reports: list[PluginReport], message: str) -> None:
    with pytest.raises(FailedPrecondition, match=message):
        security.refuse_unserved(request({"seccomp": {}}), {}, reports)


def test_apparmor_default_is_refused_when_the_plugin_was_disabled() -> None:
    reports = [PluginReport("apparmor", "v", "d", DISABLED, "listed in crio.plugins.disabled")]
    with pytest.raises(FailedPrecondition, match="disabled"):
        security.refuse_unserved(request({}), SECCOMP_ONLY, reports)


def test_served_needs_enabled_true() -> None:
    features = {"seccomp": {"enabled": True}, "apparmor": {"enabled": False}, "x": 1}
    assert security.served(features) == {"seccomp"}

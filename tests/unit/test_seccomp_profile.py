"""The seccomp plugin's profile logic: validation of seccomp.json documents (table-driven), rendering for a
container's capabilities and the host architecture, crio's RuntimeDefault profile and its clone/clone3/unshare
rules, and the libseccomp dry run."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from crio.core.errors import InvalidArgument
from crio.plugins.seccomp import libseccomp
from crio.plugins.seccomp.default_profile import ALLOWED, CLONE_NAMESPACE_FLAGS, DENIED, default_profile
from crio.plugins.seccomp.profile import Host, parse_kernel_version, parse_profile, render

AMD64 = Host("amd64", "SCMP_ARCH_X86_64", (6, 1))
S390X = Host("s390x", "SCMP_ARCH_S390X", (6, 1))
ADMIN = ["CAP_SYS_ADMIN"]
ALLOW, ERRNO = "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"


def doc(*rules: dict[str, Any], default: str = ERRNO, **top: Any) -> dict[str, Any]:
    """A profile document: ``default`` action, the given syscall rules and other top-level keys."""
    return {"defaultAction": default, "syscalls": list(rules), **top}


def read_rule(**extra: Any) -> dict[str, Any]:
    """A rule allowing read(2), with extra keys."""
    return {"names": ["read"], "action": ALLOW, **extra}


def rules_for(seccomp: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in seccomp["syscalls"] if name in r["names"]]


# ----------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "must be a JSON object"),
        ({}, "unknown action None"),
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "unknown action 'SCMP_ACT_BOGUS'"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "notifier"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}, "notifier"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "errnoRet is only valid"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}, "out of range"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "1"}, "not an integer"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "unknown architecture"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86"}, "not a list of strings"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_X"]}, "unknown flag"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "syscalls: must be a list"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": ["chmod"]}, "must be an object"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "needs names"),
        (doc({"names": ["ch mod"], "action": ERRNO}, default=ALLOW), "not a syscall name"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"]}]}, "syscalls[0].action"),
        (doc(read_rule(errnoRet=1)), "errnoRet is only valid"),
        (doc(read_rule(args=[{"index": 6, "op": "SCMP_CMP_EQ"}])), "args[0].index"),
        (doc(read_rule(args=[{"index": 0, "op": "EQ"}])), "unknown operator"),
        (doc(read_rule(args=[{"index": 0, "value": 1 << 64, "op": "SCMP_CMP_EQ"}])), "out of range"),
        (doc(read_rule(args={"index": 0})), "args: must be a list"),
        (doc(read_rule(includes={"caps": ["SYS_ADMIN"]})), "not a capability name"),
        (doc(read_rule(includes={"minKernel": "new"})), "not a kernel version"),
        (
            doc(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["x"]}]),
            "unknown architecture 'x'",
        ),
    ],
)
def test_malformed_profiles_are_refused(document: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_profile(document)
    assert message in str(err.value)


def test_valid_profile_with_legacy_name_and_unknown_keys() -> None:
    profile = parse_profile(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "comment": "ignored, like Go's JSON decoding ignores it",
            "syscalls": [{"name": "chmod", "action": "SCMP_ACT_ALLOW", "comment": "old single-name form"}],
        }
    )
    assert profile.rules[0].names == ("chmod",)
    assert render(profile, [], AMD64) == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["chmod"], "action": "SCMP_ACT_ALLOW"}],
    }


# ------------------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize(
    ("rule", "caps", "host", "kept"),
    [
        ({"includes": {"caps": ["CAP_SYS_ADMIN"]}}, ADMIN, AMD64, True),
        ({"includes": {"caps": ["CAP_SYS_ADMIN"]}}, [], AMD64, False),
        ({"includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}}, ADMIN, AMD64, False),
        ({"excludes": {"caps": ["CAP_SYS_ADMIN"]}}, ADMIN, AMD64, False),
        ({"excludes": {"caps": ["CAP_SYS_ADMIN"]}}, [], AMD64, True),
        ({"includes": {"arches": ["s390", "s390x"]}}, [], AMD64, False),
        ({"includes": {"arches": ["s390", "s390x"]}}, [], S390X, True),
        ({"excludes": {"arches": ["s390", "s390x"]}}, [], S390X, False),
        ({"includes": {"minKernel": "6.2"}}, [], AMD64, False),
        ({"includes": {"minKernel": "5.4"}}, [], AMD64, True),
        ({"excludes": {"minKernel": "5.4"}}, [], AMD64, False),
    ],
)
def test_conditions(rule: dict[str, Any], caps: list[str], host: Host, kept: bool) -> None:
    profile = parse_profile(doc(read_rule(**rule)))
    assert bool(render(profile, caps, host)["syscalls"]) is kept


def test_arch_map_picks_the_host_entry() -> None:
    profile = parse_profile(default_profile())
    x86 = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert render(profile, [], AMD64)["architectures"] == x86
    assert render(profile, [], S390X)["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    plain = parse_profile({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"]})
    assert render(plain, [], AMD64)["architectures"] == ["SCMP_ARCH_X86"]


def test_kernel_versions() -> None:
    assert parse_kernel_version("6.18.44-fc-v657") == (6, 18)
    assert parse_kernel_version("garbage") is None


# ------------------------------------------------------------------------------------ RuntimeDefault


def test_runtime_default_shape() -> None:
    seccomp = render(parse_profile(default_profile()), [], AMD64)
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp["defaultErrnoRet"] == errno.ENOSYS
    plain = [r for r in seccomp["syscalls"] if r["action"] == ALLOW and "args" not in r]
    allowed = {n for r in plain for n in r["names"]}
    for name in ("read", "write", "execve", "chmod", "capset", "setgroups", "arch_prctl", "mount"):
        assert name in allowed, name
    for name in ("clone", "clone3", "unshare", "socket", "sethostname", "ptrace", "kexec_load", "bpf"):
        assert name not in allowed, name
    assert {n for r in rules_for(seccomp, "kexec_load") for n in r["names"]} >= set(DENIED)
    assert all(r["errnoRet"] == errno.EPERM for r in rules_for(seccomp, "sethostname"))
    assert not set(DENIED) & set(ALLOWED)


def test_clone_clone3_unshare_without_sys_admin() -> None:
    seccomp = render(parse_profile(default_profile()), ["CAP_CHOWN"], AMD64)
    namespace_free = [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert CLONE_NAMESPACE_FLAGS == 0x7E020000
    assert rules_for(seccomp, "clone") == [{"names": ["clone"], "action": ALLOW, "args": namespace_free}]
    assert rules_for(seccomp, "unshare") == [
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": namespace_free}
    ]
    assert rules_for(seccomp, "clone3") == [
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
    ]


def test_clone_clone3_unshare_with_sys_admin() -> None:
    seccomp = render(parse_profile(default_profile()), ADMIN, AMD64)
    for name in ("clone", "clone3", "unshare"):
        assert rules_for(seccomp, name) == [{"names": ["clone", "clone3", "unshare"], "action": ALLOW}]
    (sethostname,) = rules_for(seccomp, "sethostname")
    assert sethostname["action"] == ALLOW and "setns" in sethostname["names"]


def test_clone_flags_are_the_second_argument_on_s390() -> None:
    seccomp = render(parse_profile(default_profile()), [], S390X)
    (clone,) = rules_for(seccomp, "clone")
    assert clone["args"][0]["index"] == 1


def test_audit_sockets_need_audit_write() -> None:
    without = rules_for(render(parse_profile(default_profile()), [], AMD64), "socket")
    assert [r["action"] for r in without] == ["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_ALLOW"]
    assert without[0]["errnoRet"] == errno.EINVAL
    with_cap = rules_for(render(parse_profile(default_profile()), ["CAP_AUDIT_WRITE"], AMD64), "socket")
    assert with_cap == [{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]


@pytest.mark.parametrize("caps", [[], ADMIN, ["CAP_AUDIT_WRITE", "CAP_SYS_PTRACE"]])
def test_libseccomp_accepts_the_default_profile(caps: list[str]) -> None:
    seccomp = render(parse_profile(default_profile()), caps, Host.current())
    unknown = libseccomp.dry_run(seccomp)
    assert "read" not in unknown and "clone3" not in unknown


def test_libseccomp_reports_unknown_names_and_skips_default_action_rules() -> None:
    seccomp = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["chmod", "no_such_call"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    assert libseccomp.dry_run(seccomp) == ["no_such_call"]

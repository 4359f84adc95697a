"""AppArmor and SELinux label logic as pure functions (this host has neither LSM, so the plugins are
skipped here; their decisions are tested without a kernel)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from crio.core.errors import InvalidArgument, NotFound, Unavailable
from crio.core.types import SecurityRequest
from crio.plugins.apparmor import profiles as aa
from crio.plugins.selinux import labels as se


def request(context: dict[str, Any], privileged: bool = False, kind: str = "container") -> SecurityRequest:
    return SecurityRequest(kind=kind, name="x", security_context=context, privileged=privileged)


# -------------------------------------------------------------------------------------------- AppArmor


@pytest.mark.parametrize(
    ("context", "privileged", "expected"),
    [
        ({}, False, "crio-default"),
        ({"apparmor": {}}, False, "crio-default"),
        ({"apparmor_profile": "runtime/default"}, False, "crio-default"),
        ({"apparmor": {"profile_type": "Unconfined"}}, False, None),
        ({"apparmor_profile": "unconfined"}, False, None),
        ({"apparmor": {"profile_type": "Localhost", "localhost_ref": "deny-write"}}, False, "deny-write"),
        ({"apparmor": {"profile_type": "Localhost", "localhost_ref": "localhost/audit"}}, False, "audit"),
        ({"apparmor_profile": "localhost/deny-write"}, False, "deny-write"),
        (  # both fields: the new one wins
            {
                "apparmor": {"profile_type": "Localhost", "localhost_ref": "new"},
                "apparmor_profile": "localhost/old",
            },
            False,
            "new",
        ),
        ({"apparmor": {"profile_type": "Localhost", "localhost_ref": "deny-write"}}, True, None),
    ],
)
def test_apparmor_profile_for(context: dict[str, Any], privileged: bool, expected: str | None) -> None:
    assert aa.profile_for(request(context, privileged)) == expected


def test_apparmor_configured_default_and_bad_names() -> None:
    assert aa.profile_for(request({}), "site-default") == "site-default"
    for bad in ("evil}\nprofile x {", "with space", ""):
        with pytest.raises(InvalidArgument):
            aa.profile_for(request({"apparmor_profile": f"localhost/{bad}"}))


def test_apparmor_loaded_profiles() -> None:
    text = "crio-default (enforce)\ndeny-write (enforce)\naudit profile (complain)\n\n"
    loaded = aa.parse_loaded(text)
    assert loaded == {"crio-default", "deny-write", "audit profile"}
    aa.require_loaded("deny-write", loaded)
    with pytest.raises(NotFound, match="not loaded"):
        aa.require_loaded("unloaded", loaded)


def test_apparmor_default_profile_text() -> None:
    text = aa.default_profile_text("crio-default")
    assert text.count("profile crio-default ") == 1
    assert "deny mount," in text and "peer=crio-default" in text and "#include <tunables/global>" in text
    assert text.count("{") == text.count("}")


# --------------------------------------------------------------------------------------------- SELinux


def test_pod_and_container_labels_share_the_level() -> None:
    process, mount = se.pod_labels({}, privileged=False, taken=set())
    pod = se.Label.parse(process)
    assert (pod.user, pod.role, pod.type) == ("system_u", "system_r", "container_t")
    assert mount == f"system_u:object_r:container_file_t:{pod.level}"
    se.check_level(pod.level)
    container_process, container_mount = se.container_labels(process, {}, privileged=False)
    assert container_process == process and container_mount == mount


def test_privileged_runs_as_spc_t() -> None:
    process, _ = se.pod_labels({"level": "s0:c1,c2"}, privileged=True, taken=set())
    assert process == "system_u:system_r:spc_t:s0:c1,c2"
    container, _ = se.container_labels(process, {}, privileged=True)
    assert container == "system_u:system_r:spc_t:s0:c1,c2"


def test_options_override_fields() -> None:
    options = {"user": "user_u", "role": "user_r", "type": "user_t", "level": "s0:c5,c6"}
    process, mount = se.labels(options, privileged=False, level="s0:c5,c6")
    assert process == "user_u:user_r:user_t:s0:c5,c6"
    assert mount == "user_u:object_r:container_file_t:s0:c5,c6"
    pod_label = "system_u:system_r:container_t:s0:c1,c2"
    own_level, _ = se.container_labels(pod_label, {"level": "s0:c9,c10"}, False)
    assert own_level.endswith("s0:c9,c10")


@pytest.mark.parametrize("level", ["s0:c1,c2", "s0", "s0-s0:c0.c1023", "s2:c3"])
def test_good_levels(level: str) -> None:
    assert se.check_level(level) == level


@pytest.mark.parametrize("level", ["s0:c1,c2,", "bogus", "s0:c1024", "s0:c1;rm -rf", "s0:c1\nc2"])
def test_bad_levels(level: str) -> None:
    with pytest.raises(InvalidArgument):
        se.labels({"level": level}, privileged=False, level=level)


def test_bad_option_names_and_labels() -> None:
    with pytest.raises(InvalidArgument):
        se.check_options({"type": "container_t:s0"})
    with pytest.raises(InvalidArgument):
        se.Label.parse("system_u:system_r")


def test_new_levels_are_unique() -> None:
    rng = random.Random(7)
    taken: set[str] = set()
    for _ in range(200):
        level = se.new_level(taken, rng)
        low, high = (int(c[1:]) for c in level.split(":")[1].split(","))
        assert 0 <= low < high < se.CATEGORIES
        taken.add(level)
    assert len(taken) == 200


def test_levels_run_out() -> None:
    class Everything:
        def __contains__(self, item: object) -> bool:
            return True

    with pytest.raises(Unavailable):
        se.new_level(Everything(), random.Random(1), attempts=5)


def test_selinux_plugin_state_shares_pod_level() -> None:
    from crio.plugins.selinux import SELinuxState

    state = SELinuxState()
    pod_process, _ = state.labels_for(
        SecurityRequest(kind="pod", name="p", pod_id="pod1", security_context={"selinux_options": {}})
    )
    container = SecurityRequest(
        kind="container", name="c", pod_id="pod1", pod_spec={"process": {"selinuxLabel": pod_process}}
    )
    assert state.labels_for(container)[0] == pod_process
    assert state.levels["pod1"] == se.Label.parse(pod_process).level

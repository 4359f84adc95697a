"""The process user: security context vs image USER, passwd/group lookups, additional gids."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.crirecords import LinuxContainerSecurityContext
from crio.core.errors import InvalidArgument
from crio.core.spec.user import ProcessUser, parse_group, parse_passwd, resolve_user
from tests.unit.test_spec_builders import GROUP, PASSWD


def context(**fields: Any) -> LinuxContainerSecurityContext:
    return LinuxContainerSecurityContext.from_message(api.LinuxContainerSecurityContext(**fields))


UID = api.Int64Value

# (security context, image USER, expected uid, gid, additional gids, home)
CASES: list[tuple[LinuxContainerSecurityContext, str, int, int, tuple[int, ...], str]] = [
    (context(), "", 0, 0, (0,), "/root"),
    (context(), "1002", 1002, 0, (0,), "/"),  # numeric user not in passwd
    (context(), "www-data", 33, 33, (33, 100), "/var/www"),
    (context(), "1003:1004", 1003, 1004, (1004,), "/"),
    (context(), "www-data:1004", 33, 1004, (1004, 100), "/var/www"),
    (context(), "www-data:extra", 33, 50000, (50000, 100), "/var/www"),
    (context(), "1000", 1000, 1000, (1000, 100, 50000), "/home/user1000"),
    (context(), "nohome", 1001, 1001, (1001,), "/"),
    (context(run_as_user=UID(value=1001)), "www-data", 1001, 1001, (1001,), "/"),
    (context(run_as_user=UID(value=0)), "www-data:1004", 0, 0, (0,), "/root"),  # image group dropped
    (context(run_as_user=UID(value=1001), run_as_group=UID(value=1002)), "", 1001, 1002, (1002,), "/"),
    (context(run_as_username="nobody"), "", 65534, 65534, (65534,), "/nonexistent"),
    (context(run_as_username="www-data", run_as_group=UID(value=0)), "", 33, 0, (0, 100), "/var/www"),
    (context(supplemental_groups=[5, 0, 5]), "", 0, 0, (0, 5), "/root"),
    (
        context(run_as_user=UID(value=1000), supplemental_groups_policy=api.Strict, supplemental_groups=[7]),
        "",
        1000,
        1000,
        (1000, 7),
        "/home/user1000",
    ),
]


@pytest.mark.parametrize(("security", "image_user", "uid", "gid", "gids", "home"), CASES)
def test_resolve_user(
    security: LinuxContainerSecurityContext,
    image_user: str,
    uid: int,
    gid: int,
    gids: tuple[int, ...],
    home: str,
) -> None:
    user = resolve_user(security, image_user, PASSWD, GROUP)
    assert (user.uid, user.gid, user.additional_gids, user.home) == (uid, gid, gids, home)
    assert user.additional_gids[0] == user.gid  # the primary gid is always there (CVE-2022-2995)


def test_username_is_reported() -> None:
    assert resolve_user(context(), "33", PASSWD, GROUP) == ProcessUser(
        33, 33, (33, 100), "/var/www", "www-data"
    )
    assert resolve_user(context(), "", "", "") == ProcessUser(0, 0, (0,), "/", "")  # no passwd at all


BAD: list[tuple[LinuxContainerSecurityContext, str, str]] = [
    (context(run_as_group=UID(value=1002)), "", "run_as_group is set without"),
    (context(run_as_group=UID(value=1002)), "www-data", "run_as_group is set without"),
    (context(run_as_username="ghost"), "", "'ghost'"),
    (context(), "ghost", "'ghost'"),
    (context(), "ghost:0", "'ghost'"),
    (context(), "www-data:ghosts", "'ghosts'"),
    (context(run_as_user=UID(value=-1)), "", "out of range"),
    (context(run_as_user=UID(value=1 << 32)), "", "out of range"),
    (context(run_as_user=UID(value=0), run_as_group=UID(value=-5)), "", "out of range"),
    (context(supplemental_groups=[-1]), "", "not a valid group id"),
]


@pytest.mark.parametrize(("security", "image_user", "message"), BAD)
def test_resolve_user_refuses(security: LinuxContainerSecurityContext, image_user: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        resolve_user(security, image_user, PASSWD, GROUP)


def test_parsers_skip_junk() -> None:
    passwd = "+nis::0:0::/:\n-x::0:0::/:\nbad:x:a:0::/:\nshort:x:5\nok:x:7:8\n\n#c:x:0:0::/:\n"
    assert [(e.name, e.uid, e.gid, e.home) for e in parse_passwd(passwd)] == [("ok", 7, 8, "")]
    group = "g:x:9:a, b ,,\nbad:x:x:\nbare:x:3\n"
    assert [(e.name, e.gid, e.members) for e in parse_group(group)] == [("g", 9, ("a", "b")), ("bare", 3, ())]
    assert parse_passwd("huge:x:99999999999:0::/:\n") == []

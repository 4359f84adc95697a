"""The container process's user: uid, gid, additional gids and home, from the CRI security context or the
image's USER, resolved against the image's /etc/passwd and /etc/group (given as text)."""

from __future__ import annotations

from dataclasses import dataclass

from crio.core.crirecords import LinuxContainerSecurityContext
from crio.core.errors import InvalidArgument

MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "no change" to the kernel
DEFAULT_HOME = "/"
STRICT = "Strict"


@dataclass(frozen=True)
class PasswdEntry:
    """One /etc/passwd line."""

    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    """One /etc/group line."""

    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class ProcessUser:
    """Who the container process runs as. ``additional_gids`` always starts with ``gid``."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str
    username: str = ""


def _id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and int(text) <= MAX_ID else None


def parse_passwd(text: str) -> list[PasswdEntry]:
    """The usable entries of an /etc/passwd file; comments, NIS (+/-) and malformed lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not fields[0] or fields[0][0] in "#+-":
            continue
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is None or gid is None:
            continue
        entries.append(PasswdEntry(fields[0], uid, gid, fields[5] if len(fields) > 5 else ""))
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    """The usable entries of an /etc/group file."""
    entries = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 3 or not fields[0] or fields[0][0] in "#+-":
            continue
        gid = _id(fields[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in fields[3].split(",") if m.strip()) if len(fields) > 3 else ()
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _checked_id(value: int, what: str) -> int:
    if not 0 <= value <= MAX_ID:
        raise InvalidArgument(f"{what} {value} is out of range")
    return value


def _find_user(users: list[PasswdEntry], spec: str, what: str) -> tuple[int, PasswdEntry | None]:
    """Resolve a user given as a number or a name; an unknown name is an error, an unknown number is not."""
    uid = _id(spec)
    if uid is not None:
        return uid, next((u for u in users if u.uid == uid), None)
    entry = next((u for u in users if u.name == spec), None)
    if entry is None:
        raise InvalidArgument(f"{what} {spec!r} is not in the image's /etc/passwd")
    return entry.uid, entry


def _find_group(groups: list[GroupEntry], spec: str, what: str) -> int:
    gid = _id(spec)
    if gid is not None:
        return gid
    entry = next((g for g in groups if g.name == spec), None)
    if entry is None:
        raise InvalidArgument(f"{what} group {spec!r} is not in the image's /etc/group")
    return entry.gid


def resolve_user(
    security_context: LinuxContainerSecurityContext, image_user: str, passwd: str, group: str
) -> ProcessUser:
    """The process user.

    ``run_as_username`` or ``run_as_user`` from the security context win over the image's USER ("uid",
    "name", "uid:gid", "name:group"; the image's group is dropped when the security context names the user).
    ``run_as_group`` overrides the group, and is refused without a user from the security context. The gid
    defaults to the user's primary group in /etc/passwd, or 0. Additional gids are the gid itself (always,
    CVE-2022-2995), the groups listing the user by name in /etc/group (unless the supplemental groups
    policy is Strict), then ``supplemental_groups``.
    """
    run_as_user = security_context.run_as_user
    run_as_group = security_context.run_as_group
    run_as_username = security_context.run_as_username
    if run_as_group is not None and run_as_user is None and not run_as_username:
        raise InvalidArgument("run_as_group is set without run_as_user or run_as_username")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    group_spec = ""
    if run_as_username:
        uid, entry = _find_user(users, run_as_username, "run_as_username")
    elif run_as_user is not None:
        uid = _checked_id(run_as_user, "run_as_user")
        entry = next((u for u in users if u.uid == uid), None)
    else:
        user_spec, _, group_spec = image_user.partition(":")
        uid, entry = _find_user(users, user_spec or "0", "the image's user")
    gid = entry.gid if entry is not None else 0
    if run_as_group is not None:
        gid = _checked_id(run_as_group, "run_as_group")
    elif group_spec:
        gid = _find_group(groups, group_spec, "the image's user")
    additional = [gid]
    if entry is not None and security_context.supplemental_groups_policy != STRICT:
        additional += [g.gid for g in groups if entry.name in g.members]
    for supplemental in security_context.supplemental_groups:
        if not 0 <= supplemental <= MAX_ID:
            raise InvalidArgument(f"supplemental group {supplemental} is not a valid group id")
        additional.append(supplemental)
    return ProcessUser(
        uid=uid,
        gid=gid,
        additional_gids=tuple(dict.fromkeys(additional)),
        home=(entry.home if entry is not None and entry.home else DEFAULT_HOME),
        username=entry.name if entry is not None else "",
    )


GENERATED_NAME = "default"
GENERATED_SHELL = "/sbin/nologin"


def _entry_name(taken: set[str], uid: int) -> str:
    return GENERATED_NAME if GENERATED_NAME not in taken else f"uid{uid}"


def passwd_with_user(passwd: str, uid: int, gid: int, home: str) -> str | None:
    """The image's /etc/passwd with a line for ``uid`` added, or None when none is needed.

    Needed when the image has an /etc/passwd (``passwd`` not empty) that lacks ``uid``, so the process's
    user resolves by name (``whoami``, ``id -un``, tools that need a home). The home comes from the
    container's HOME, which :func:`crio.core.spec.process.process_env` already refused when it holds a line
    break (CVE-2022-4318); one holding ":" or otherwise unusable becomes "/".
    """
    if not passwd or any(entry.uid == uid for entry in parse_passwd(passwd)):
        return None
    names = {entry.name for entry in parse_passwd(passwd)}
    if not home.startswith("/") or any(c in home for c in ":\n\r\0"):
        home = DEFAULT_HOME
    name = _entry_name(names, uid)
    separator = "" if passwd.endswith("\n") else "\n"
    return f"{passwd}{separator}{name}:x:{uid}:{gid}:{name} user:{home}:{GENERATED_SHELL}\n"


def group_with_gid(group: str, gid: int) -> str | None:
    """The image's /etc/group with a line for ``gid`` added, or None when none is needed (see
    :func:`passwd_with_user`)."""
    if not group or any(entry.gid == gid for entry in parse_group(group)):
        return None
    names = {entry.name for entry in parse_group(group)}
    name = _entry_name(names, gid)
    separator = "" if group.endswith("\n") else "\n"
    return f"{group}{separator}{name}:x:{gid}:\n"

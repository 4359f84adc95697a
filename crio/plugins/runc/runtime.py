"""The runc-compatible command line: argv building, error text extraction and error classification.

Every runtime command (``start``, ``kill``, ``delete``, ``state``, ``update``, ``exec``) goes through
:class:`RuntimeCLI`, which adds the handler's global ``--root`` and turns a failure into a
:mod:`crio.core.errors` exception carrying the runtime's own message. Nothing here is runc-specific beyond
the CLI that runc, crun and youki share.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from crio.core import errors, proc
from crio.core.types import RuntimeHandler

COMMAND_TIMEOUT = 120.0

# runc logs through logrus: `time="..." level=error msg="..."`; msg is a Go-quoted string.
_LOGRUS_MSG = re.compile(r'\blevel=(?P<level>\w+)\s+msg="(?P<msg>(?:[^"\\]|\\.)*)"')

# runc: "container does not exist"; crun: `container "ID" does not exist` or a missing status file.
_NOT_FOUND = re.compile(
    r"\bcontainer\W+(?:\S+\W+)?does not exist|no such container|/status\W*: no such file or directory", re.I
)
# runc: "container not running" (rarely "invalid process"); crun: "no such process".
_NOT_RUNNING = ("not running", "container not started", "no such process", "invalid process")
_WRONG_STATE = (
    "cannot start",
    "cannot exec",
    "already running",
    "is not stopped",
    "not stopped",
    "is running",
    "cannot delete",
    "has stopped",
    "is paused",
)


def _unquote(text: str) -> str:
    """Undo Go's %q quoting of a logrus field (best effort: JSON escapes cover what runc emits)."""
    try:
        value = json.loads(f'"{text}"')
    except ValueError:
        return text.replace('\\"', '"').replace("\\\\", "\\")
    return str(value)


def error_text(stderr: bytes | str) -> str:
    """Return the runtime's error message from its stderr.

    logrus lines (runc) give their ``msg`` of level error/fatal (warnings are dropped when an error is
    present); plain text (crun) is kept as is. Several messages are joined with "; ".
    """
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    errors_: list[str] = []
    others: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _LOGRUS_MSG.search(line)
        if match is None:
            others.append(line)
        elif match.group("level") in ("error", "fatal", "panic"):
            errors_.append(_unquote(match.group("msg")))
        else:
            others.append(_unquote(match.group("msg")))
    return "; ".join(errors_ or others)


def is_not_found(message: str) -> bool:
    """Whether a runtime message says the container is unknown to the runtime."""
    return _NOT_FOUND.search(message) is not None


def is_not_running(message: str) -> bool:
    """Whether a runtime message says the container has no running process (e.g. kill after exit)."""
    lowered = message.lower()
    return any(marker in lowered for marker in _NOT_RUNNING)


def classify(action: str, container_id: str, message: str) -> errors.CrioError:
    """Turn a failed runtime command into the core error whose class says the gRPC status."""
    text = f"{action} container {container_id}: {message or 'runtime failed without a message'}"
    lowered = message.lower()
    if is_not_found(message):
        return errors.NotFound(text)
    if is_not_running(message) or any(marker in lowered for marker in _WRONG_STATE):
        return errors.FailedPrecondition(text)
    return errors.Internal(text)


class RuntimeCLI:
    """One handler's runtime binary with its global options."""

    def __init__(self, handler: RuntimeHandler) -> None:
        self.path = handler.runtime_path
        self.root = handler.runtime_root

    def global_args(self) -> list[str]:
        """The options every invocation starts with (``--root`` when the handler sets one)."""
        return [f"--root={self.root}"] if self.root else []

    def argv(self, *args: str) -> list[str]:
        """The full command line of one runtime subcommand."""
        return [self.path, *self.global_args(), *args]

    async def run(self, what: str, args: Sequence[str], stdin: bytes | None = None) -> proc.Completed:
        """Run a subcommand and return it whatever its exit code; ``what`` names the work in the errors of a
        command that does not answer in time (DeadlineExceeded) or cannot run (Internal)."""
        try:
            return await proc.run(self.argv(*args), stdin=stdin, timeout=COMMAND_TIMEOUT, check=False)
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"{what}: {self.path} did not answer within {COMMAND_TIMEOUT:g}s"
            ) from None
        except proc.ProcessError as exc:
            raise errors.Internal(f"{what}: {exc}") from None

    async def call(
        self, action: str, container_id: str, args: Sequence[str], stdin: bytes | None = None
    ) -> proc.Completed:
        """Run a subcommand; a failure raises the classified core error (a timeout: DeadlineExceeded)."""
        result = await self.run(f"{action} container {container_id}", args, stdin)
        if result.returncode != 0:
            raise classify(action, container_id, error_text(result.stderr))
        return result

    async def start(self, container_id: str) -> None:
        """``runtime start ID``."""
        await self.call("start", container_id, ["start", container_id])

    async def kill(self, container_id: str, signum: int, all_processes: bool) -> None:
        """``runtime kill [--all] ID SIGNAL``; a container that has already stopped (or is gone) is fine."""
        args = ["kill", *(["--all"] if all_processes else []), container_id, str(int(signum))]
        try:
            await self.call("kill", container_id, args)
        except (errors.NotFound, errors.FailedPrecondition) as exc:
            if not (is_not_running(str(exc)) or is_not_found(str(exc))):
                raise

    async def delete(self, container_id: str, force: bool) -> None:
        """``runtime delete [--force] ID``; a container the runtime does not know is already deleted."""
        args = ["delete", *(["--force"] if force else []), container_id]
        with contextlib.suppress(errors.NotFound):
            await self.call("delete", container_id, args)

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """``runtime state ID`` as a dict, or None when the runtime does not know the container."""
        try:
            result = await self.call("state", container_id, ["state", container_id])
        except errors.NotFound:
            return None
        try:
            state: dict[str, Any] = json.loads(result.stdout)
        except ValueError as exc:
            raise errors.Internal(
                f"state container {container_id}: {self.path} printed no JSON: {exc}"
            ) from None
        return state

    async def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """``runtime update --resources - ID`` with the OCI ``linux.resources`` JSON on stdin."""
        payload = json.dumps(dict(resources)).encode()
        await self.call("update", container_id, ["update", "--resources", "-", container_id], stdin=payload)

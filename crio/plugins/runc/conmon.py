"""Running conmon, the per-container monitor, the way CRI-O does for runtime type "oci".

Protocol (conmon 2.x): the daemon passes two inherited pipes named by environment variables.
``_OCI_STARTPIPE``: conmon blocks reading it before it forks anything, so the daemon can first move it into
the monitor cgroup. ``_OCI_SYNCPIPE``: after ``runtime create`` conmon writes one JSON line,
``{"data": PID}`` (``"pid"`` without ``--api-version 1``) or ``{"data": -1, "message": "<runtime stderr>"}``.
The first conmon process forks the monitor, writes its pid to the conmon pid file and exits at once; the
monitor is re-parented to the daemon (a child subreaper) and reaped centrally when it exits, after writing
the exit file ``<exit dir>/<id>`` (and ``<persist dir>/exit``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from crio.core import proc
from crio.core.types import ContainerBundle, RuntimeHandler

log = logging.getLogger(__name__)

CONMON_PIDFILE = "conmon-pidfile"
CONMON_STDERR = "conmon.stderr"
# What conmon creates in the bundle besides the pid files: the attach socket and the ctl/winsz FIFOs.
MONITOR_FILES = ("attach", "ctl", "winsz")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def conmon_pid_file(container: ContainerBundle) -> Path:
    """Where conmon writes the monitor's pid."""
    return container.bundle / CONMON_PIDFILE


def conmon_stderr_file(container: ContainerBundle) -> Path:
    """Where the first conmon process's stderr goes (option errors before it daemonizes)."""
    return container.bundle / CONMON_STDERR


def log_level(logger: logging.Logger = log) -> str:
    """conmon's ``--log-level`` matching this plugin's effective Python log level."""
    level = logger.getEffectiveLevel()
    if level <= logging.DEBUG:
        return "debug"
    if level <= logging.INFO:
        return "info"
    if level <= logging.WARNING:
        return "warning"
    return "error"


def argv(handler: RuntimeHandler, container: ContainerBundle, level: str = "info") -> list[str]:
    """conmon's command line for creating ``container`` with ``handler``'s runtime (CRI-O's flags)."""
    bundle = str(container.bundle)
    args = [
        handler.monitor_path,
        "--api-version",
        "1",
        "-c",
        container.id,
        "-n",
        container.name,
        "-u",
        container.id,
        "-r",
        handler.runtime_path,
        "-b",
        bundle,
        "-p",
        str(container.pid_file),
        "-P",
        str(conmon_pid_file(container)),
        "-l",
        f"k8s-file:{container.log_path}" if container.log_path else "none",
        "--exit-dir",
        str(container.exit_dir),
        "--socket-dir-path",
        str(container.attach_dir),
        "--persist-dir",
        bundle,
        "--log-level",
        level,
        "--syslog",
    ]
    if handler.runtime_root:
        args += ["--runtime-arg", f"--root={handler.runtime_root}"]
    if container.terminal:
        args.append("-t")
    elif container.stdin:
        if not container.stdin_once:
            args.append("--leave-stdin-open")
        args.append("-i")
    return args


def environment(handler: RuntimeHandler, sync_fd: int, start_fd: int) -> dict[str, str]:
    """conmon's environment: the handler's ``monitor_env`` (PATH defaulted) and the two pipe fds."""
    env: dict[str, str] = {}
    for item in handler.monitor_env:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    env.setdefault("PATH", os.environ.get("PATH", DEFAULT_PATH))
    env["_OCI_SYNCPIPE"] = str(sync_fd)
    env["_OCI_STARTPIPE"] = str(start_fd)
    return env


@dataclass(frozen=True)
class SyncResult:
    """What conmon reported on the sync pipe: the container pid, or -1 and the runtime's message."""

    pid: int
    message: str = ""


def parse_sync(line: bytes) -> SyncResult:
    """Parse one sync-pipe line; raises ValueError when it is not conmon's JSON."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object: {line!r}")
    value = data.get("data", data.get("pid"))
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"no pid in {line!r}")
    message = data.get("message", "")
    return SyncResult(value, message if isinstance(message, str) else str(message))


def start(handler: RuntimeHandler, container: ContainerBundle) -> tuple[proc.Spawned, int, int]:
    """Spawn conmon (blocked on its start pipe); return it, the sync pipe's read end and the start pipe's
    write end. The caller owns both fds."""
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    start_r, start_w = os.pipe2(os.O_CLOEXEC)
    stderr_fd = -1
    try:
        stderr_fd = os.open(
            conmon_stderr_file(container), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        command = argv(handler, container, log_level())
        log.debug("container %s: running %s", container.id, " ".join(command))
        spawned = proc.spawn(
            command,
            env=environment(handler, sync_w, start_r),
            cwd=str(container.bundle),
            pass_fds=(sync_w, start_r),
            stderr=stderr_fd,
        )
    except BaseException:
        os.close(sync_r)
        os.close(start_w)
        raise
    finally:
        for fd in (sync_w, start_r, stderr_fd):
            if fd >= 0:
                os.close(fd)
    return spawned, sync_r, start_w


def release(start_w: int) -> None:
    """Let conmon go on: one byte on its start pipe, then close it (a conmon already gone is fine)."""
    try:
        os.write(start_w, b"\0")
    except BrokenPipeError:
        pass
    finally:
        os.close(start_w)


def first_stderr(container: ContainerBundle) -> str:
    """What the first conmon process printed (conmon's own errors), stripped; "" when nothing."""
    try:
        return conmon_stderr_file(container).read_text(errors="replace").strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def monitor_pid(container: ContainerBundle, exiting_name: str = "") -> int | None:
    """The live monitor of ``container`` (its pid file's pid, checked against its command line), or None.

    A process in the middle of exiting has an empty command line (its memory is gone) while it still sits
    in its cgroups; with ``exiting_name`` (the monitor binary's name) such a process whose name matches is
    returned too, so a caller can wait for it to be gone.
    """
    try:
        pid = int(conmon_pid_file(container).read_text().strip())
    except (OSError, ValueError):
        return None
    cmdline = [part for part in _cmdline(pid) if part]
    if _is_zombie(pid):
        return None
    if not cmdline:
        return pid if exiting_name and _comm(pid) == exiting_name[:15] else None
    owned = any(a == "-c" and b == container.id for a, b in itertools.pairwise(cmdline))
    return pid if owned else None


def kill_monitor(container: ContainerBundle) -> int | None:
    """SIGKILL the container's live monitor, if any; return its pid."""
    pid = monitor_pid(container)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid

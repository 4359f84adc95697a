"""The Kubernetes remote-command protocols (exec and attach), sans-IO: names, stream roles, statuses, resizes.

Over SPDY the client opens one stream per role, named by its ``streamType`` header: ``error`` (always),
``stdin``, ``stdout``, ``stderr`` (not with a terminal) and, from ``v3.channel.k8s.io`` on with a terminal,
``resize``. Over WebSocket the roles are channels 0-4 of the channel protocol. When the command ends the
server writes the outcome on the error stream and closes it: from v4 on a JSON ``metav1.Status`` (Success;
or Failure with reason ``NonZeroExitCode`` and the exit code as the cause of type ``ExitCode``), before v4
a plain message (nothing on success). The resize stream carries JSON ``{"Width": w, "Height": h}`` objects
back to back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
BASE64_V1 = "base64.channel.k8s.io"
BASE64_V4 = "v4.base64.channel.k8s.io"

# What the server accepts, by transport. SPDY has no v5 (its streams already half-close).
SPDY_PROTOCOLS = [V4, V3, V2, V1]
WEBSOCKET_PROTOCOLS = [V5, V4, BASE64_V4, V1, BASE64_V1]

ERROR, STDIN, STDOUT, STDERR, RESIZE = "error", "stdin", "stdout", "stderr", "resize"
CHANNELS = {STDIN: 0, STDOUT: 1, STDERR: 2, ERROR: 3, RESIZE: 4}  # WebSocket channel numbers

STREAM_TYPE_HEADER = "streamtype"
NON_ZERO_EXIT_CODE = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"
MAX_RESIZE_BUFFER = 4096


def version(protocol: str) -> int:
    """The protocol's version number (1 for the unversioned and base64 ones)."""
    for number in (5, 4, 3, 2):
        if protocol.startswith(f"v{number}."):
            return number
    return 1


def is_base64(protocol: str) -> bool:
    """Whether the WebSocket subprotocol sends base64 text messages."""
    return "base64." in protocol


def expected_streams(protocol: str, stdin: bool, stdout: bool, stderr: bool, tty: bool) -> set[str]:
    """The SPDY streams a client opens for a request (the server starts once all are there)."""
    streams = {ERROR}
    if stdin:
        streams.add(STDIN)
    if stdout:
        streams.add(STDOUT)
    if stderr and not tty:
        streams.add(STDERR)
    if tty and version(protocol) >= 3:
        streams.add(RESIZE)
    return streams


def _status(body: dict[str, object]) -> bytes:
    return json.dumps({"metadata": {}, **body}, separators=(",", ":")).encode()


def success_status() -> bytes:
    """The v4 status of a command that exited 0 (or an attach that ended)."""
    return _status({"status": "Success"})


def exit_status(code: int, command: Sequence[str] = ()) -> bytes:
    """The v4 status of a command that exited with a non-zero code (0-255)."""
    what = f"error executing command {list(command)}, " if command else ""
    return _status(
        {
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {what}exit code {code}",
            "reason": NON_ZERO_EXIT_CODE,
            "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
        }
    )


def failure_status(message: str) -> bytes:
    """The v4 status of a failure other than an exit code (e.g. the command could not be started)."""
    return _status(
        {
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
            "details": {"causes": [{"message": message}]},
        }
    )


def outcome(protocol: str, code: int | None, command: Sequence[str] = (), failure: str = "") -> bytes:
    """What to write on the error stream: the status (v4+) or a plain message (older; empty on success)."""
    if failure:
        return failure_status(failure) if version(protocol) >= 4 else failure.encode()
    if not code:
        return success_status() if version(protocol) >= 4 else b""
    if version(protocol) >= 4:
        return exit_status(code & 0xFF, command)
    return f"command terminated with non-zero exit code: exit code {code}".encode()


class ResizeDecoder:
    """Decodes the resize stream: JSON TerminalSize objects, possibly split across reads."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        """Add bytes; every complete ``(width, height)`` so far. Raises ValueError on garbage."""
        self._buffer += data.decode("utf-8", errors="replace")
        sizes: list[tuple[int, int]] = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                break
            try:
                value, end = self._decoder.raw_decode(text)
            except json.JSONDecodeError:
                if len(text) > MAX_RESIZE_BUFFER:
                    raise ValueError("resize message too long") from None
                self._buffer = text
                break
            except RecursionError:
                raise ValueError("resize message nested too deeply") from None
            self._buffer = text[end:]
            sizes.append(_size(value))
        return sizes


def _size(value: object) -> tuple[int, int]:
    if not isinstance(value, dict):
        raise ValueError(f"resize message is not an object: {value!r}")
    numbers: list[int] = []
    for key in ("Width", "Height"):
        number = value.get(key, value.get(key.lower(), 0))
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 65535:
            raise ValueError(f"invalid terminal size {value!r}")
        numbers.append(number)
    return numbers[0], numbers[1]

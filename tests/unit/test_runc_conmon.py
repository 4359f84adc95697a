"""conmon's command line, environment and sync-pipe messages for the runc plugin."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from crio.core.types import ContainerBundle, RuntimeHandler
from crio.plugins.runc import conmon

HANDLER = RuntimeHandler(
    name="runc",
    runtime_path="/usr/sbin/runc",
    runtime_root="/run/runc",
    monitor_path="/usr/bin/conmon",
    monitor_env=("PATH=/usr/bin:/bin", "FOO=bar=baz", "junk"),
)


def bundle(**overrides: object) -> ContainerBundle:
    values: dict[str, object] = {
        "id": "abc123",
        "name": "k8s_ctr_pod_ns_uid_0",
        "pod_id": "pod1",
        "bundle": Path("/run/ctr/abc123"),
        "exit_dir": Path("/run/crio/exits"),
        "attach_dir": Path("/run/crio/att"),
        "log_path": "/var/log/pods/p/ctr/0.log",
    }
    values.update(overrides)
    return ContainerBundle(**values)  # type: ignore[arg-type]


def test_argv_has_crio_flags_in_order() -> None:
    args = conmon.argv(HANDLER, bundle(), "info")
    assert args == [
        "/usr/bin/conmon",
        "--api-version",
        "1",
        "-c",
        "abc123",
        "-n",
        "k8s_ctr_pod_ns_uid_0",
        "-u",
        "abc123",
        "-r",
        "/usr/sbin/runc",
        "-b",
        "/run/ctr/abc123",
        "-p",
        "/run/ctr/abc123/pidfile",
        "-P",
        "/run/ctr/abc123/conmon-pidfile",
        "-l",
        "k8s-file:/var/log/pods/p/ctr/0.log",
        "--exit-dir",
        "/run/crio/exits",
        "--socket-dir-path",
        "/run/crio/att",
        "--persist-dir",
        "/run/ctr/abc123",
        "--log-level",
        "info",
        "--syslog",
        "--runtime-arg",
        "--root=/run/runc",
    ]


def test_argv_without_log_root_and_with_stdio_options() -> None:
    handler = RuntimeHandler(name="crun", runtime_path="/usr/bin/crun", monitor_path="/usr/bin/conmon")
    args = conmon.argv(handler, bundle(log_path=""))
    assert args[args.index("-l") + 1] == "none"
    assert "--runtime-arg" not in args
    assert conmon.argv(handler, bundle(terminal=True, stdin=True))[-1] == "-t"
    assert conmon.argv(handler, bundle(stdin=True))[-2:] == ["--leave-stdin-open", "-i"]
    assert conmon.argv(handler, bundle(stdin=True, stdin_once=True))[-2:] == ["--syslog", "-i"]


def test_environment_keeps_monitor_env_and_names_the_pipes() -> None:
    env = conmon.environment(HANDLER, 7, 9)
    assert env == {"PATH": "/usr/bin:/bin", "FOO": "bar=baz", "_OCI_SYNCPIPE": "7", "_OCI_STARTPIPE": "9"}
    bare = conmon.environment(RuntimeHandler(name="r", runtime_path="/r"), 3, 4)
    assert bare["PATH"]


def test_log_level_follows_the_logger() -> None:
    logger = logging.getLogger("crio.test.conmon.level")
    for level, expected in [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
    ]:
        logger.setLevel(level)
        assert conmon.log_level(logger) == expected


def test_parse_sync_messages() -> None:
    assert conmon.parse_sync(b'{"data": 4242}\n') == conmon.SyncResult(4242)
    assert conmon.parse_sync(b'{"pid": 17}\n') == conmon.SyncResult(17)
    failed = conmon.parse_sync(b'{"data": -1, "message": "time=\\"x\\" level=error msg=\\"boom\\"\\n"}\n')
    assert failed.pid == -1
    assert 'msg="boom"' in failed.message
    for bad in (b"[]", b'{"data": "x"}', b"not json"):
        with pytest.raises(ValueError):
            conmon.parse_sync(bad)

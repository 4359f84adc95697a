"""The runtime CLI helpers: error text from runc/crun stderr and its mapping to core errors."""

from __future__ import annotations

from crio.core import errors
from crio.core.types import RuntimeHandler
from crio.plugins.runc.runtime import RuntimeCLI, classify, error_text, is_not_found, is_not_running

RUNC_EXEC_FAILURE = (
    b'time="2026-01-01T00:00:00Z" level=warning msg="something minor"\n'
    b'time="2026-01-01T00:00:00Z" level=error msg="runc create failed: unable to start container process: '
    b'exec: \\"/does/not/exist\\": stat /does/not/exist: no such file or directory"\n'
)


def test_error_text_from_logrus_lines() -> None:
    assert error_text(RUNC_EXEC_FAILURE) == (
        'runc create failed: unable to start container process: exec: "/does/not/exist": '
        "stat /does/not/exist: no such file or directory"
    )
    assert error_text('time="t" level=warning msg="only a warning"') == "only a warning"


def test_error_text_from_plain_text() -> None:
    assert error_text(b"crun: container `x` does not exist\n\n") == "crun: container `x` does not exist"
    assert error_text(b"") == ""


def test_not_found_and_not_running_markers() -> None:
    assert is_not_found("container does not exist")
    assert is_not_found('crun: container "abc" does not exist')
    assert not is_not_found('exec: "sh": executable file not found in $PATH: container process')
    assert is_not_running("container not running")


def test_classify() -> None:
    assert isinstance(classify("start", "c", "container does not exist"), errors.NotFound)
    assert isinstance(
        classify("start", "c", "cannot start an already running container"), errors.FailedPrecondition
    )
    assert isinstance(
        classify("exec in", "c", "cannot exec in a stopped container"), errors.FailedPrecondition
    )
    failure = classify("update", "c", "some cgroup write failed")
    assert isinstance(failure, errors.Internal)
    assert str(failure) == "update container c: some cgroup write failed"


def test_argv_adds_the_root() -> None:
    cli = RuntimeCLI(RuntimeHandler(name="runc", runtime_path="/usr/sbin/runc", runtime_root="/run/x"))
    assert cli.argv("state", "id") == ["/usr/sbin/runc", "--root=/run/x", "state", "id"]
    bare = RuntimeCLI(RuntimeHandler(name="crun", runtime_path="/usr/bin/crun"))
    assert bare.argv("start", "id") == ["/usr/bin/crun", "start", "id"]

"""Create under a fake conmon and a fake runtime: sync protocol, errors, timeout and cleanup (no root)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from crio.core import errors
from crio.core.types import ContainerBundle, RuntimeHandler
from crio.plugins.runc import lifecycle

FAKE_RUNTIME = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/runtime.calls"
case "$1" in
  state) echo 'time="t" level=error msg="container does not exist"' >&2; exit 1 ;;
  *) exit 0 ;;
esac
"""

# A conmon stand-in: first process forks a "monitor" and exits; the monitor reports on the sync pipe.
FAKE_CONMON = """#!{python}
import os, sys, time
args = sys.argv[1:]
opt = dict(zip(args, args[1:]))
start = int(os.environ["_OCI_STARTPIPE"])
os.read(start, 1)
mode = open(os.path.join(opt["-b"], "mode")).read().strip()
if mode == "hang":
    open(os.path.join(opt["-b"], "hung.pid"), "w").write(str(os.getpid()))
    time.sleep(60)
if mode == "badflag":
    sys.stderr.write("conmon: option parsing failed: Unknown option --nope\\n")
    sys.exit(1)
child = os.fork()
if child:
    open(opt["-P"], "w").write(str(child))
    os._exit(0)
sync = int(os.environ["_OCI_SYNCPIPE"])
if mode == "ok":
    open(opt["-p"], "w").write("4242")
    os.write(sync, b'{{"data": 4242}}\\n')
else:
    msg = 'time=\\\\"t\\\\" level=error msg=\\\\"runc create failed: boom\\\\"\\\\n'
    os.write(sync, ('{{"data": -1, "message": "' + msg + '"}}\\n').encode())
os._exit(0)
"""


def setup(tmp_path: Path, mode: str, timeout: int = 30) -> tuple[RuntimeHandler, ContainerBundle]:
    tools = tmp_path / "tools"
    tools.mkdir()
    runtime = tools / "runtime"
    runtime.write_text(FAKE_RUNTIME)
    monitor = tools / "conmon"
    monitor.write_text(FAKE_CONMON.format(python=sys.executable))
    for script in (runtime, monitor):
        script.chmod(0o755)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"args": ["true"]}}))
    (bundle / "mode").write_text(mode)
    for name in ("exits", "attach"):
        (tmp_path / name).mkdir()
    handler = RuntimeHandler(
        name="fake",
        runtime_path=str(runtime),
        monitor_path=str(monitor),
        container_create_timeout=timeout,
    )
    container = ContainerBundle(
        id="ctr1",
        name="ctr1",
        pod_id="pod",
        bundle=bundle,
        exit_dir=tmp_path / "exits",
        attach_dir=tmp_path / "attach",
    )
    return handler, container


def calls(handler: RuntimeHandler) -> list[str]:
    path = Path(handler.runtime_path).with_name("runtime.calls")
    return path.read_text().splitlines() if path.exists() else []


def create(handler: RuntimeHandler, container: ContainerBundle) -> object:
    async def main() -> object:
        try:
            return await lifecycle.create(handler, container)
        except errors.CrioError as exc:
            return exc

    return asyncio.run(main())


def test_create_reports_the_pid(tmp_path: Path) -> None:
    handler, container = setup(tmp_path, "ok")
    state = create(handler, container)
    assert not isinstance(state, Exception), state
    assert (state.status, state.pid) == ("created", 4242)  # type: ignore[attr-defined]
    assert calls(handler) == ["state ctr1"]
    assert not (container.bundle / "conmon.stderr").exists()


def test_create_failure_carries_the_runtime_message_and_cleans_up(tmp_path: Path) -> None:
    handler, container = setup(tmp_path, "fail")
    error = create(handler, container)
    assert isinstance(error, errors.Internal)
    assert str(error) == "container create failed: runc create failed: boom"
    assert calls(handler) == ["state ctr1", "delete --force ctr1"]
    assert sorted(p.name for p in container.bundle.iterdir()) == ["config.json", "mode"]


def test_conmon_own_errors_are_reported(tmp_path: Path) -> None:
    handler, container = setup(tmp_path, "badflag")
    error = create(handler, container)
    assert isinstance(error, errors.Internal)
    assert "conmon exited with 1" in str(error) and "Unknown option --nope" in str(error)


def test_create_timeout_kills_the_monitor(tmp_path: Path) -> None:
    handler, container = setup(tmp_path, "hang", timeout=1)
    started = time.monotonic()
    error = create(handler, container)
    assert isinstance(error, errors.DeadlineExceeded)
    assert time.monotonic() - started < 10
    hung = int((container.bundle / "hung.pid").read_text())
    assert (
        not os.path.exists(f"/proc/{hung}") or "Z" in Path(f"/proc/{hung}/stat").read_text().split(")")[1][:3]
    )
    assert calls(handler)[-1] == "delete --force ctr1"


def test_second_create_of_a_known_container_is_refused(tmp_path: Path) -> None:
    handler, container = setup(tmp_path, "ok")
    Path(handler.runtime_path).write_text(
        '#!/bin/sh\necho "$@" >> "$(dirname "$0")/runtime.calls"\necho \'{"status": "running", "pid": 9}\'\n'
    )
    error = create(handler, container)
    assert isinstance(error, errors.AlreadyExists)
    assert calls(handler) == ["state ctr1"]  # nothing deleted


@pytest.mark.parametrize("missing", ["monitor", "config"])
def test_bad_input(tmp_path: Path, missing: str) -> None:
    handler, container = setup(tmp_path, "ok")
    if missing == "monitor":
        handler = RuntimeHandler(name="fake", runtime_path=handler.runtime_path)
    else:
        (container.bundle / "config.json").unlink()
    assert isinstance(create(handler, container), errors.InvalidArgument)


def test_only_a_containers_own_monitor_cgroup_is_removed(tmp_path: Path) -> None:
    _, container = setup(tmp_path, "ok")
    for cgroup, own in [
        ("/pod/crio-conmon-ctr1", True),
        ("/pod/crio-conmon-ctr1/", True),
        ("/crio-monitors", False),
        ("/ctr1/monitors", False),
        ("", False),
    ]:
        bundle = ContainerBundle(**{**container.__dict__, "monitor_cgroup": cgroup})
        assert lifecycle._own_monitor_cgroup(bundle) is own, cgroup


def test_reopen_log_without_monitor(tmp_path: Path) -> None:
    from crio.plugins.runc import logs

    _, container = setup(tmp_path, "ok")
    log_file = tmp_path / "ctr.log"
    bundle = ContainerBundle(**{**container.__dict__, "log_path": str(log_file)})
    os.mkfifo(container.bundle / "ctl")  # a FIFO nobody reads: the monitor is gone

    async def main() -> str:
        try:
            await logs.reopen_log(bundle)
        except errors.CrioError as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"

    assert (
        asyncio.run(main()) == "FailedPrecondition: container ctr1 has no running monitor to reopen its log"
    )
    assert asyncio.run(logs.reopen_log(container)) is None  # no log: nothing to do

"""The runc plugin's runtime-handler hooks against real runc and conmon, on a busybox bundle built here.

Each scenario runs in a child Python process (``python -m tests.integration.test_runc_handler NAME PARAMS``)
that becomes a child subreaper and installs crio's central reaper, as the daemon does: daemonized conmon
monitors are re-parented to it and reaped there. The pytest process itself is never made a subreaper (it
would collect orphans of every other test and leave them as zombies between event loops). The child calls
the hooks through ``PluginManager`` with the real ``runc`` entry point, force-deletes every container it
created even when the scenario fails, checks that none of its children is left a zombie, and prints its
observations as one JSON line. The test then sweeps the private runc root, stray monitors and cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNC = shutil.which("runc") or "/usr/sbin/runc"
CONMON = shutil.which("conmon") or "/usr/bin/conmon"
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "sleep", "echo", "cat", "head", "true")
CGROUP_ROOT = Path("/sys/fs/cgroup")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(
        not (os.access(RUNC, os.X_OK) and os.access(CONMON, os.X_OK) and BUSYBOX.exists()),
        reason="needs runc, conmon and busybox (apt-get install runc conmon busybox)",
    ),
]


# --------------------------------------------------------------------------------------------------
# Bundle pieces (used by both sides)
# --------------------------------------------------------------------------------------------------


def build_rootfs(root: Path) -> Path:
    """A minimal root filesystem: busybox, the libraries ldd names, hard links for a few applets."""
    (root / "bin").mkdir(parents=True)
    for directory in ("proc", "dev", "sys", "tmp"):
        (root / directory).mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    ldd = subprocess.run(["ldd", str(BUSYBOX)], capture_output=True, text=True, check=True).stdout
    for line in ldd.splitlines():
        words = line.split()
        paths = [w for w in words if w.startswith("/")]
        if not paths:
            continue
        library = Path(paths[0])
        target = root / library.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(library.resolve(), target)
    for applet in APPLETS:
        os.link(root / "bin" / "busybox", root / "bin" / applet)
    return root


def make_spec(
    rootfs: Path, args: list[str], cgroups_path: str, oom_score_adj: int | None = None
) -> dict[str, Any]:
    """A minimal OCI runtime spec: own pid/mount/ipc/uts/network namespaces, proc, dev and sys mounts."""
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"]
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": True,
    }
    if oom_score_adj is not None:
        process["oomScoreAdj"] = oom_score_adj
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "runc-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")],
            "cgroupsPath": cgroups_path,
        },
    }


def children_in_state(pid: int, state: str) -> list[int]:
    """Children of ``pid`` whose /proc state is ``state`` (e.g. "Z" for zombies)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if fields[0] == state and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def processes_mentioning(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def cgroup_mounts() -> list[Path]:
    """Mount points of the host's cgroup hierarchies."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] in (["cgroup"], ["cgroup2"]):
            mounts.append(Path(left.split()[4]))
    return mounts


# --------------------------------------------------------------------------------------------------
# The child side: scenarios run under a subreaper with the real plugin
# --------------------------------------------------------------------------------------------------


@dataclass
class Harness:
    """What a scenario gets: the hook relay, the handler, and bundle/container helpers."""

    params: dict[str, Any]
    hook: Any
    handler: Any
    created: list[Any] = field(default_factory=list)

    def container(
        self,
        args: list[str],
        *,
        oom_score_adj: int | None = None,
        monitor_cgroup: str | None = None,
        cgroups_path: str | None = None,
    ) -> Any:
        """Write a bundle for a new container and return its ContainerBundle (not created yet)."""
        from crio.core.types import ContainerBundle

        cid = f"rt{uuid.uuid4().hex[:10]}"
        base = Path(self.params["base"])
        bundle = base / "bundles" / cid
        bundle.mkdir(parents=True)
        prefix = self.params["cgroup_prefix"]
        spec = make_spec(
            Path(self.params["rootfs"]), args, cgroups_path or f"/{prefix}/{cid}", oom_score_adj=oom_score_adj
        )
        (bundle / "config.json").write_text(json.dumps(spec, indent=2))
        container = ContainerBundle(
            id=cid,
            name=f"name-{cid}",
            pod_id="pod",
            bundle=bundle,
            exit_dir=base / "exits",
            attach_dir=base / "attach",
            log_path=str(base / "logs" / f"{cid}.log"),
            monitor_cgroup=monitor_cgroup if monitor_cgroup is not None else f"/{prefix}/conmon-{cid}",
        )
        self.created.append(container)
        return container

    async def create(self, container: Any) -> Any:
        return await self.hook.crio_runtime_create(handler=self.handler, container=container)

    async def start(self, container: Any) -> None:
        await self.hook.crio_runtime_start(handler=self.handler, container=container)

    async def state(self, container: Any) -> Any:
        return await self.hook.crio_runtime_state(handler=self.handler, container=container)

    async def kill(self, container: Any, signum: int, all_processes: bool = False) -> None:
        await self.hook.crio_runtime_kill(
            handler=self.handler, container=container, signal=signum, all_processes=all_processes
        )

    async def delete(self, container: Any, force: bool = False) -> None:
        await self.hook.crio_runtime_delete(handler=self.handler, container=container, force=force)

    async def wait(self, container: Any) -> Any:
        return await self.hook.crio_runtime_wait(handler=self.handler, container=container)

    async def exec_sync(
        self, container: Any, command: list[str], timeout: float, limit: int = 1 << 20
    ) -> Any:
        return await self.hook.crio_runtime_exec_sync(
            handler=self.handler, container=container, command=command, timeout=timeout, output_limit=limit
        )

    async def update(self, container: Any, resources: dict[str, Any]) -> None:
        await self.hook.crio_runtime_update(handler=self.handler, container=container, resources=resources)

    async def cleanup(self) -> None:
        """Force-delete every container this scenario made, whatever state it is in."""
        for container in self.created:
            try:
                await self.kill(container, signal.SIGKILL, all_processes=True)
                await self.delete(container, force=True)
            except Exception as exc:
                print(f"cleanup of {container.id}: {type(exc).__name__}: {exc}", file=sys.stderr)

    def runc_knows(self, cid: str) -> bool:
        return (Path(self.params["runc_root"]) / cid).exists()


def _state_dict(state: Any) -> dict[str, Any]:
    return {
        "status": state.status,
        "pid": state.pid,
        "exit_code": state.exit_code,
        "finished_at": state.finished_at,
        "oom_killed": state.oom_killed,
    }


def _cgroups(pid: int) -> dict[str, str]:
    from crio.plugins.runc.cgroups import cgroup_of

    return cgroup_of(pid)


async def scenario_lifecycle(h: Harness) -> dict[str, Any]:
    """create → created → start → running → TERM → exit 7 → stopped → delete → absent; then a SIGKILL."""
    from crio.core import errors
    from crio.plugins.runc import exits

    out: dict[str, Any] = {}
    ctr = h.container(["sh", "-c", 'trap "exit 7" TERM; echo started; while true; do sleep 0.1; done'])
    out["created"] = _state_dict(await h.create(ctr))
    out["state_created"] = _state_dict(await h.state(ctr))
    out["pid_alive"] = Path(f"/proc/{out['created']['pid']}").exists()
    await h.start(ctr)
    out["state_running"] = _state_dict(await h.state(ctr))
    try:
        await h.create(ctr)  # a second create must fail without touching the running container
        out["second_create"] = None
    except errors.CrioError as exc:
        out["second_create"] = f"{type(exc).__name__}: {exc}"
    out["state_after_second_create"] = _state_dict(await h.state(ctr))
    await asyncio.sleep(0.3)
    waiter = asyncio.ensure_future(h.wait(ctr))
    started = time.time_ns()
    await h.kill(ctr, signal.SIGTERM)
    out["wait_exit"] = await asyncio.wait_for(exits.wait_exit(ctr.exit_file), 10)
    out["wait_hook"] = _state_dict(await asyncio.wait_for(waiter, 10))
    out["kill_stopped"] = "ok"
    await h.kill(ctr, signal.SIGKILL)  # already stopped: not an error
    out["state_stopped"] = _state_dict(await h.state(ctr))
    out["finished_after_kill"] = out["state_stopped"]["finished_at"] >= started - 10**9
    out["log"] = Path(ctr.log_path).read_text()
    out["attach_link_before"] = (ctr.attach_dir / ctr.id).is_symlink()
    await h.delete(ctr)
    try:
        await h.state(ctr)
        out["state_deleted"] = "still there"
    except errors.NotFound as exc:
        out["state_deleted"] = f"NotFound: {exc}"
    await h.delete(ctr)  # absent: success
    out["runc_knows"] = h.runc_knows(ctr.id)
    out["monitors"] = processes_mentioning(f"-c {ctr.id} ")
    out["left_files"] = (
        sorted(p.name for p in (ctr.bundle.iterdir()) if p.name not in ("config.json",))
        + sorted(p.name for p in ctr.exit_dir.iterdir())
        + sorted(p.name for p in ctr.attach_dir.iterdir())
    )

    killed = h.container(["sleep", "100"])
    await h.create(killed)
    await h.start(killed)
    await h.kill(killed, signal.SIGKILL, all_processes=True)
    out["sigkill_wait"] = _state_dict(await asyncio.wait_for(h.wait(killed), 10))
    await h.delete(killed)
    return out


async def scenario_create_failure(h: Harness) -> dict[str, Any]:
    """A create whose process cannot start fails with runc's text and leaves nothing behind."""
    from crio.core import errors

    out: dict[str, Any] = {}
    ctr = h.container(["/does/not/exist"])
    try:
        await h.create(ctr)
        out["error"] = None
    except errors.CrioError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["runc_knows"] = h.runc_knows(ctr.id)
    out["runc_root"] = (
        sorted(p.name for p in Path(h.params["runc_root"]).iterdir())
        if Path(h.params["runc_root"]).exists()
        else []
    )
    await asyncio.sleep(0.2)
    out["monitors"] = processes_mentioning(f"-c {ctr.id} ")
    out["bundle"] = sorted(p.name for p in ctr.bundle.iterdir())
    out["exits"] = sorted(p.name for p in ctr.exit_dir.iterdir())
    out["attach"] = sorted(p.name for p in ctr.attach_dir.iterdir())
    out["log_exists"] = Path(ctr.log_path).exists()
    out["monitor_cgroup_dirs"] = [
        str(m / ctr.monitor_cgroup.lstrip("/"))
        for m in cgroup_mounts()
        if (m / ctr.monitor_cgroup.lstrip("/")).exists()
    ]
    try:
        await h.create(
            h.container(
                ["true"],
                monitor_cgroup=f"/{h.params['cgroup_prefix']}/inside/mon",
                cgroups_path=f"/{h.params['cgroup_prefix']}/inside",
            )
        )
        out["overlap"] = None
    except errors.CrioError as exc:
        out["overlap"] = f"{type(exc).__name__}: {exc}"
    return out


async def scenario_oom_clamp(h: Harness) -> dict[str, Any]:
    """A spec asking for a lower oom_score_adj than the daemon's gets the daemon's value, with a log line."""
    Path("/proc/self/oom_score_adj").write_text("100\n")  # only ever raised: always allowed
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logging.getLogger("crio.plugins.runc").addHandler(Collect())
    ctr = h.container(["sleep", "100"], oom_score_adj=-999)
    state = await h.create(ctr)
    out = {
        "container_oom": int(Path(f"/proc/{state.pid}/oom_score_adj").read_text()),
        "spec_oom": json.loads((ctr.bundle / "config.json").read_text())["process"]["oomScoreAdj"],
        "logged": [r for r in records if "oomScoreAdj" in r],
    }
    above = h.container(["sleep", "100"], oom_score_adj=500)
    state = await h.create(above)
    out["above_oom"] = int(Path(f"/proc/{state.pid}/oom_score_adj").read_text())
    await h.delete(ctr, force=True)
    await h.delete(above, force=True)
    return out


async def scenario_monitor_cgroup(h: Harness) -> dict[str, Any]:
    """conmon lives in the monitor cgroup in every hierarchy, the container in its own; delete removes it."""
    from crio.plugins.runc import conmon

    rounds = []
    for _ in range(3):
        ctr = h.container(["sleep", "100"])
        state = await h.create(ctr)
        await h.start(ctr)
        monitor = conmon.monitor_pid(ctr)
        assert monitor is not None
        observed = {
            "monitor_cgroups": _cgroups(monitor),
            "container_cgroups": _cgroups(state.pid),
            "monitor_cgroup": ctr.monitor_cgroup,
            "container_cgroup": f"/{h.params['cgroup_prefix']}/{ctr.id}",
        }
        await h.kill(ctr, signal.SIGKILL)
        await h.wait(ctr)
        await h.delete(ctr)
        relative = ctr.monitor_cgroup.lstrip("/")
        observed["monitor_dirs_left"] = [
            str(m / relative) for m in cgroup_mounts() if (m / relative).exists()
        ]
        rounds.append(observed)
    shared = f"/{h.params['cgroup_prefix']}/monitors"
    first, second = (
        h.container(["sleep", "100"], monitor_cgroup=shared),
        h.container(["sleep", "100"], monitor_cgroup=shared),
    )
    await h.create(first)
    await h.create(second)
    shared_members = [conmon.monitor_pid(first), conmon.monitor_pid(second)]
    procs = [m / shared.lstrip("/") / "cgroup.procs" for m in cgroup_mounts()]
    in_shared = all(str(pid) in p.read_text().split() for p in procs for pid in shared_members)
    await h.delete(first, force=True)
    await h.delete(second, force=True)
    kept = all((m / shared.lstrip("/")).exists() for m in cgroup_mounts())
    return {"rounds": rounds, "shared_in_cgroup": in_shared, "shared_kept": kept}


async def scenario_logs_and_oom(h: Harness) -> dict[str, Any]:
    """ReopenContainerLog after a rotation; a container killed by its memory limit reports OOM and 137."""
    from crio.core import errors

    out: dict[str, Any] = {}
    ctr = h.container(["sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done"])
    await h.create(ctr)
    await h.start(ctr)
    await asyncio.sleep(0.3)
    log_path = Path(ctr.log_path)
    rotated = log_path.with_name(log_path.name + ".1")
    os.rename(log_path, rotated)
    await h.hook.crio_runtime_reopen_log(handler=h.handler, container=ctr)
    await asyncio.sleep(0.3)
    out["new_log_lines"] = len(log_path.read_text().splitlines()) if log_path.exists() else 0
    out["old_log_lines"] = len(rotated.read_text().splitlines())
    await h.kill(ctr, signal.SIGKILL)
    await h.wait(ctr)
    try:
        await h.hook.crio_runtime_reopen_log(handler=h.handler, container=ctr)
        out["reopen_stopped"] = None
    except errors.CrioError as exc:
        out["reopen_stopped"] = f"{type(exc).__name__}: {exc}"
    await h.delete(ctr)

    hog = h.container(["sh", "-c", "a=xxxxxxxxxxxxxxxx; while true; do a=$a$a; done"])
    spec = json.loads((hog.bundle / "config.json").read_text())
    limit = 32 * 2**20
    spec["linux"]["resources"] = {"memory": {"limit": limit, "swap": limit}}
    (hog.bundle / "config.json").write_text(json.dumps(spec))
    await h.create(hog)
    await h.start(hog)
    out["oom"] = _state_dict(await asyncio.wait_for(h.wait(hog), 60))
    out["oom_state"] = _state_dict(await h.state(hog))
    await h.delete(hog)
    return out


async def scenario_exec(h: Harness) -> dict[str, Any]:
    """exec_sync output, exit code, output cap, update; a timeout kills the exec'd processes."""
    from crio.core import errors

    ctr = h.container(["sleep", "1000"])
    state = await h.create(ctr)
    await h.start(ctr)
    out: dict[str, Any] = {}
    result = await h.exec_sync(ctr, ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    out["simple"] = [result.exit_code, result.stdout.decode(), result.stderr.decode()]
    capped = await h.exec_sync(ctr, ["head", "-c", "100000", "/dev/zero"], timeout=10, limit=10)
    out["capped"] = [capped.exit_code, len(capped.stdout)]
    try:
        await h.exec_sync(ctr, ["/no/such/binary"], timeout=10)
        out["missing"] = None
    except errors.CrioError as exc:
        out["missing"] = f"{type(exc).__name__}: {exc}"
    procs_file = next(
        m / h.params["cgroup_prefix"] / ctr.id / "cgroup.procs"
        for m in cgroup_mounts()
        if (m / h.params["cgroup_prefix"] / ctr.id / "cgroup.procs").exists()
    )
    started = time.monotonic()
    try:
        await h.exec_sync(ctr, ["sh", "-c", "sleep 2913 & sleep 3917"], timeout=1)
        out["timeout"] = None
    except errors.CrioError as exc:
        out["timeout"] = f"{type(exc).__name__}: {exc}"
    out["timeout_elapsed"] = time.monotonic() - started
    await asyncio.sleep(0.3)
    out["procs_after_timeout"] = sorted(int(p) for p in procs_file.read_text().split())
    out["init_pid"] = state.pid
    out["sleepers"] = processes_mentioning("sleep 2913") + processes_mentioning("sleep 3917")
    await h.update(ctr, {"pids": {"limit": 42}})
    pids_max = next(
        (
            m / h.params["cgroup_prefix"] / ctr.id / "pids.max"
            for m in cgroup_mounts()
            if (m / h.params["cgroup_prefix"] / ctr.id / "pids.max").exists()
        ),
        None,
    )
    out["pids_max"] = pids_max.read_text().strip() if pids_max else None
    await h.kill(ctr, signal.SIGKILL)
    await h.wait(ctr)
    await h.delete(ctr)
    return out


SCENARIOS: dict[str, Callable[[Harness], Awaitable[dict[str, Any]]]] = {
    "lifecycle": scenario_lifecycle,
    "create_failure": scenario_create_failure,
    "oom_clamp": scenario_oom_clamp,
    "monitor_cgroup": scenario_monitor_cgroup,
    "exec": scenario_exec,
    "logs_and_oom": scenario_logs_and_oom,
}


async def _run_child(name: str, params: dict[str, Any]) -> dict[str, Any]:
    from importlib_metadata import entry_points

    from crio.core import proc
    from crio.core.config import defaults
    from crio.core.plugins import PluginManager
    from crio.core.types import RuntimeHandler

    proc.REAPER.install(asyncio.get_running_loop())
    manager = PluginManager()
    manager.load_entry_points(
        defaults(), [ep for ep in entry_points(group="crio.plugins") if ep.name == "runc"]
    )
    handler = RuntimeHandler(
        name="runc",
        runtime_path=RUNC,
        runtime_root=params["runc_root"],
        monitor_path=CONMON,
        container_create_timeout=60,
    )
    harness = Harness(params, manager.hook, handler)
    result: dict[str, Any] = {}
    try:
        result = await SCENARIOS[name](harness)
    except BaseException:
        result = {"scenario_error": traceback.format_exc()}
    finally:
        await harness.cleanup()
    await asyncio.sleep(0.5)  # let the reaper collect monitors that exited during cleanup
    result["zombies"] = children_in_state(os.getpid(), "Z")
    result["orphans_reaped"] = proc.REAPER.orphans_reaped
    return result


def _child_main(argv: list[str]) -> int:
    from crio.core import proc

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    if not proc.become_subreaper():
        print(json.dumps({"scenario_error": "cannot become a subreaper"}))
        return 1
    result = asyncio.run(_run_child(argv[1], json.loads(argv[2])))
    print(json.dumps(result))
    return 0


# --------------------------------------------------------------------------------------------------
# The pytest side
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The busybox root filesystem, shared read-only by every container of this module."""
    return build_rootfs(tmp_path_factory.mktemp("runc-rootfs") / "rootfs")


@pytest.fixture
def env(tmp_path: Path, rootfs: Path) -> Iterator[dict[str, Any]]:
    """Private dirs, runc root and cgroup prefix for one test; everything left is swept afterwards."""
    base = tmp_path / "rt"
    for name in ("bundles", "exits", "attach", "logs"):
        (base / name).mkdir(parents=True)
    params = {
        "base": str(base),
        "rootfs": str(rootfs),
        "runc_root": str(base / "runc"),
        "cgroup_prefix": f"crio-test-{uuid.uuid4().hex[:8]}",
    }
    yield params
    _sweep(params)


def _sweep(params: dict[str, Any]) -> None:
    """Remove whatever a failed scenario left: runc containers, monitors, cgroup directories."""
    root = Path(params["runc_root"])
    if root.exists():
        for entry in root.iterdir():
            subprocess.run([RUNC, f"--root={root}", "delete", "--force", entry.name], capture_output=True)
    for pid in processes_mentioning(params["base"]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.1)
    for mount in cgroup_mounts():
        top = mount / params["cgroup_prefix"]
        if not top.exists():
            continue
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def run_scenario(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a child process and return its observations."""
    child = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_runc_handler", name, json.dumps(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = child.stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        pytest.fail(
            f"scenario {name} exited with {child.returncode}:\n{child.stdout}\n{child.stderr[-6000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    if "scenario_error" in result:
        pytest.fail(
            f"scenario {name} failed:\n{result['scenario_error']}\n--- log ---\n{child.stderr[-6000:]}"
        )
    assert result["zombies"] == [], f"zombie children left: {result['zombies']}"
    return result


def test_lifecycle(env: dict[str, Any]) -> None:
    out = run_scenario("lifecycle", env)
    assert out["created"]["status"] == "created" and out["created"]["pid"] > 0
    assert out["pid_alive"]
    assert out["state_created"] == out["created"]
    assert out["state_running"]["status"] == "running"
    assert out["state_running"]["pid"] == out["created"]["pid"]
    assert out["second_create"] is not None and out["second_create"].startswith("AlreadyExists:")
    assert out["state_after_second_create"] == out["state_running"]
    assert out["wait_exit"] == 7
    assert out["wait_hook"]["status"] == "stopped" and out["wait_hook"]["exit_code"] == 7
    stopped = out["state_stopped"]
    assert (stopped["status"], stopped["exit_code"]) == ("stopped", 7)
    assert out["finished_after_kill"]
    assert stopped["finished_at"] == out["wait_hook"]["finished_at"]
    assert " stdout F started\n" in out["log"]
    assert out["attach_link_before"]
    assert out["state_deleted"].startswith("NotFound:")
    assert not out["runc_knows"]
    assert out["monitors"] == []
    assert out["left_files"] == []
    assert (out["sigkill_wait"]["status"], out["sigkill_wait"]["exit_code"]) == ("stopped", 137)
    assert out["orphans_reaped"] >= 2  # the daemonized monitors were re-parented to the subreaper


def test_create_failure_leaves_nothing(env: dict[str, Any]) -> None:
    out = run_scenario("create_failure", env)
    assert out["error"] is not None
    assert out["error"].startswith("Internal: container create failed: ")
    assert "/does/not/exist" in out["error"] and "no such file or directory" in out["error"]
    assert not out["runc_knows"] and out["runc_root"] == []
    assert out["monitors"] == []
    assert out["bundle"] == ["config.json"]
    assert out["exits"] == [] and out["attach"] == []
    assert not out["log_exists"]
    assert out["monitor_cgroup_dirs"] == []
    assert out["overlap"] is not None and out["overlap"].startswith("InvalidArgument:")
    assert "inside the container's cgroup" in out["overlap"]


def test_oom_score_adj_is_clamped_to_the_daemons(env: dict[str, Any]) -> None:
    out = run_scenario("oom_clamp", env)
    assert out["container_oom"] == 100
    assert out["spec_oom"] == 100
    assert len(out["logged"]) == 1 and "-999 raised to 100" in out["logged"][0]
    assert out["above_oom"] == 500


def test_monitor_has_its_own_cgroup(env: dict[str, Any]) -> None:
    out = run_scenario("monitor_cgroup", env)
    for observed in out["rounds"]:
        monitor, container = observed["monitor_cgroups"], observed["container_cgroups"]
        assert monitor.keys() == container.keys()
        for hierarchy, path in monitor.items():  # every v1 hierarchy and the (empty) v2 one of a hybrid host
            assert path == observed["monitor_cgroup"], hierarchy
            assert container[hierarchy] == observed["container_cgroup"], hierarchy
        assert observed["monitor_dirs_left"] == []
    assert out["shared_in_cgroup"]  # several monitors may share one cgroup ...
    assert out["shared_kept"]  # ... which delete leaves in place


def test_reopen_log_and_oom(env: dict[str, Any]) -> None:
    out = run_scenario("logs_and_oom", env)
    assert out["new_log_lines"] >= 1 and out["old_log_lines"] >= 1
    assert out["reopen_stopped"] is not None and out["reopen_stopped"].startswith("FailedPrecondition:")
    assert (out["oom"]["exit_code"], out["oom"]["oom_killed"]) == (137, True)
    assert out["oom_state"] == out["oom"]


def test_exec_sync(env: dict[str, Any]) -> None:
    out = run_scenario("exec", env)
    assert out["simple"] == [3, "out\n", "err\n"]
    assert out["capped"] == [0, 10]
    assert out["missing"] is not None and "/no/such/binary" in out["missing"]
    assert out["timeout"] is not None and out["timeout"].startswith("DeadlineExceeded:")
    assert out["timeout_elapsed"] < 6
    assert out["procs_after_timeout"] == [out["init_pid"]]
    assert out["sleepers"] == []
    assert out["pids_max"] == "42"


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))

"""Shared pieces of the benchmarks: a crio daemon on a scratch directory, a CRI client, RSS sampling of a
process (or process tree), a child-process timer with its peak RSS, percentiles and a table printer.

Nothing here is a test: the benchmarks print tables for a human (and for the issue's closing note).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from crio.core.api import api_pb2 as pb
from crio.core.api import api_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[1]
CRIO = str(Path(sys.executable).with_name("crio"))
# A crio source tree (a directory holding ``crio/``) the daemon imports instead of the editable install,
# e.g. a ``git archive HEAD`` snapshot while the working tree is being edited.
SRC_ENV = "CRIO_BENCH_SRC"
REGISTRIES_CONF = REPO / "tests" / "testdata" / "registries.conf"
MB = 1_000_000
MIB = 1 << 20


# ------------------------------------------------------------------------------------------ scratch space


def scratch_dir(name: str) -> Path:
    """A new private directory for one benchmark (under ``$CRIO_BENCH_TMP`` when set, else the temp dir)."""
    return Path(tempfile.mkdtemp(prefix=f"crio-bench-{name}-", dir=os.environ.get("CRIO_BENCH_TMP")))


def _unescape_mount_path(field: str) -> str:
    """Undo the octal escapes (``\\040`` for a space...) of a /proc/self/mountinfo path field."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first (so they can be unmounted in order)."""
    top = str(path.resolve())
    found: list[str] = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = _unescape_mount_path(line.split()[4])
            if point == top or point.startswith(top + "/"):
                found.append(point)
    return sorted(found, key=lambda p: (-p.count("/"), p))


def unmount_under(path: Path) -> int:
    """Unmount everything mounted at or below ``path`` (lazily if busy); return how many were unmounted."""
    count = 0
    for _ in range(100):  # stacked mounts on one point need one umount each
        points = mounts_under(path)
        if not points:
            return count
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True, check=True)
            count += 1
    raise RuntimeError(f"mounts under {path} keep coming back")


def remove_tree(path: Path) -> None:
    """Unmount anything below ``path``, then delete it (absent is fine)."""
    if path.exists():
        unmount_under(path)
        shutil.rmtree(path)


# ------------------------------------------------------------------------------------------- CRI client


class CriClient:
    """The CRI RuntimeService and ImageService of one daemon, over ``unix:SOCKET``."""

    def __init__(self, socket: str) -> None:
        self.channel = grpc.insecure_channel(f"unix:{socket}")
        self.runtime: Any = pb_grpc.RuntimeServiceStub(self.channel)  # type: ignore[no-untyped-call]
        self.images: Any = pb_grpc.ImageServiceStub(self.channel)  # type: ignore[no-untyped-call]

    def version(self, timeout: float = 2.0) -> str:
        """The runtime's name and version."""
        reply: pb.VersionResponse = self.runtime.Version(pb.VersionRequest(version="v1"), timeout=timeout)
        return f"{reply.runtime_name} {reply.runtime_version}"

    def pull(self, image: str, timeout: float = 1800.0) -> str:
        """PullImage; return the image ID (image_ref)."""
        reply: pb.PullImageResponse = self.images.PullImage(
            pb.PullImageRequest(image=pb.ImageSpec(image=image)), timeout=timeout
        )
        return reply.image_ref

    def list_images(self, timeout: float = 30.0) -> list[pb.Image]:
        """ListImages without a filter."""
        reply: pb.ListImagesResponse = self.images.ListImages(pb.ListImagesRequest(), timeout=timeout)
        return list(reply.images)

    def image_status(self, image: str, timeout: float = 30.0) -> pb.Image | None:
        """ImageStatus (not verbose); None when the image is absent."""
        reply: pb.ImageStatusResponse = self.images.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), timeout=timeout
        )
        return reply.image if reply.HasField("image") else None

    def remove_image(self, image: str, timeout: float = 300.0) -> None:
        """RemoveImage (an absent image is not an error)."""
        self.images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image)), timeout=timeout)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


# ----------------------------------------------------------------------------------------------- daemon


class ServedDaemon:
    """What crio's and containerd's benchmark daemons share: a process serving CRI on ``socket``, logging to
    ``log_path``. Subclasses set ``NAME`` and start ``proc``, then call :meth:`_wait_serving`."""

    NAME = "daemon"
    socket: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None
    _client: CriClient | None

    @property
    def pid(self) -> int:
        """The running daemon's pid."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.NAME} is not running")
        return self.proc.pid

    @property
    def client(self) -> CriClient:
        """A CRI client (runtime.v1) for the running daemon."""
        if self._client is None:
            self._client = CriClient(self.socket)
        return self._client

    def _wait_serving(self, timeout: float) -> None:
        """Wait until the socket exists and the CRI Version RPC answers; fail with the log's end."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.NAME} exited with {self.proc.returncode}:\n{self.log_tail()}")
            if os.path.exists(self.socket):
                try:
                    self.client.version()
                    return
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.NAME} did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 20 s) and close the client."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the daemon's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class CrioDaemon(ServedDaemon):
    """A crio daemon whose every path lives under ``base`` (as tests/integration/conftest.py starts it).

    ``wipe_store()`` (daemon stopped) removes the graph root and run root so the next ``start()`` begins on
    an empty store.
    """

    NAME = "crio"

    def __init__(
        self, base: Path, extra_args: Sequence[str] = (), src: Path | None = None, name: str = "crio"
    ) -> None:
        self.NAME = name
        self.base = base
        # The source tree (holding ``crio/``) the daemon imports; None: $CRIO_BENCH_SRC, else the editable
        # install (the working tree).
        self.src = src
        self.root = base / "root"
        self.runroot = base / "runroot"
        self.socket = str(base / "run" / "crio.sock")
        self.config_file = base / "crio.conf"
        self.config_dir = base / "crio.conf.d"
        self.log_path = base / "crio.log"
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: CriClient | None = None
        self.started_at = 0.0
        self._write_config()

    def _write_config(self) -> None:
        base = self.base
        (base / "cni").mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(exist_ok=True)
        self.config_file.write_text(
            f'[crio]\nroot = "{self.root}"\nrunroot = "{self.runroot}"\nlog_dir = "{base}/logs"\n'
            f'version_file = "{base}/run/version"\nversion_file_persist = "{base}/lib/version"\n'
            f'clean_shutdown_file = "{base}/lib/clean.shutdown"\n'
            f'[crio.api]\nlisten = "{self.socket}"\n'
            f'[crio.runtime]\ncontainer_exits_dir = "{base}/exits"\n'
            f'container_attach_socket_dir = "{base}/att"\nnamespaces_dir = "{base}/ns"\n'
            f'[crio.network]\nnetwork_dir = "{base}/cni"\n'
            f'[crio.image]\nregistries_conf = "{REGISTRIES_CONF}"\n'
        )

    def start(self, timeout: float = 60.0) -> CrioDaemon:
        """Start the daemon and wait until Version answers."""
        argv = [
            CRIO,
            "--config",
            str(self.config_file),
            "--config-dir",
            str(self.config_dir),
            *self.extra_args,
        ]
        self.started_at = time.time()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.environment()
            )
        self._wait_serving(timeout)
        return self

    def source_tree(self) -> Path | None:
        """The tree set as the daemon's ``PYTHONPATH`` (``src``, else ``$CRIO_BENCH_SRC``); None: none."""
        if self.src is not None:
            return self.src
        return Path(os.environ[SRC_ENV]) if os.environ.get(SRC_ENV) else None

    def environment(self) -> dict[str, str]:
        """The daemon's environment: this one, with ``PYTHONPATH`` set to :meth:`source_tree` if any."""
        env = dict(os.environ)
        tree = self.source_tree()
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        return env

    def code_check(self) -> str:
        """Where the daemon's code comes from, checked; raise RuntimeError when it is not the expected tree.

        Two checks: the running daemon's own ``PYTHONPATH`` (/proc/PID/environ) is :meth:`source_tree`, and
        the interpreter of the ``crio`` script, in that environment (cwd ``/``, as a console script does not
        put the cwd on sys.path), imports ``crio``, the daemon module and the built-in plugins from it (or,
        without a tree, from the editable install, :data:`REPO`). With a tree, the modules the daemon itself
        read there are counted too, before that probe: the ``.py`` files accessed (atime; on a fresh
        extraction the first read updates it even with relatime) or compiled (``.pyc`` written) since it
        started.
        """
        tree = self.source_tree()
        expected = (tree if tree is not None else REPO).resolve()
        read = 0
        if tree is not None:
            since = self.started_at - 1
            read = sum(1 for py in tree.rglob("*.py") if py.stat().st_atime >= since)
            read += sum(1 for pyc in tree.rglob("*.pyc") if pyc.stat().st_mtime >= since)
        try:
            environ = Path(f"/proc/{self.pid}/environ").read_bytes().split(b"\0")
        except OSError as exc:
            raise RuntimeError(f"{self.NAME}: cannot read its environment: {exc}") from None
        key = b"PYTHONPATH="
        found = [e[len(key) :].decode(errors="replace") for e in environ if e.startswith(key)]
        if tree is not None and found != [str(tree)]:
            raise RuntimeError(f"{self.NAME} runs with PYTHONPATH={found or 'unset'}, expected {tree}")
        modules = imported_from(self.environment())
        wrong = {module: path for module, path in modules.items() if not path.is_relative_to(expected)}
        if wrong:
            raise RuntimeError(f"{self.NAME} imports from the wrong tree (expected {expected}): {wrong}")
        how = "editable install"
        if tree is not None:
            how = f"PYTHONPATH={tree}, the daemon read {read} modules there"
        return f"{expected} ({how}; {', '.join(modules)} import from it)"

    def wipe_store(self) -> None:
        """Remove the graph root and run root (unmounting first); the daemon must be stopped."""
        if self.proc is not None:
            raise RuntimeError("stop crio before wiping its store")
        for path in (self.root, self.runroot):
            remove_tree(path)

    def restart_fresh(self) -> CrioDaemon:
        """Stop, wipe the store, start again."""
        self.stop()
        self.wipe_store()
        return self.start()

    def __enter__(self) -> CrioDaemon:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# Imported to check where a daemon's code comes from (bench.snapshot checks the same modules).
CODE_MODULES = ("crio", "crio.core.daemon", "crio.core.cli", "crio.plugins.runc", "crio.plugins.cni")


def script_interpreter(script: str = CRIO) -> str:
    """The interpreter of a console script (its ``#!`` line); this one when there is none."""
    with open(script, "rb") as handle:
        first = handle.readline().decode(errors="replace")
    return first[2:].strip().split()[0] if first.startswith("#!") else sys.executable


def imported_from(env: Mapping[str, str], modules: Sequence[str] = CODE_MODULES) -> dict[str, Path]:
    """module → the file it is imported from by the ``crio`` script's interpreter in ``env`` (cwd ``/``)."""
    probe = "import importlib, sys\nfor m in sys.argv[1:]:\n    print(importlib.import_module(m).__file__)"
    result = subprocess.run(
        [script_interpreter(), "-c", probe, *modules],
        env=dict(env),
        cwd="/",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["import failed"])[-1]
        raise RuntimeError(f"the crio code does not import: {tail}")
    return {m: Path(f).resolve() for m, f in zip(modules, result.stdout.splitlines(), strict=True)}


# ------------------------------------------------------------------------------------------ memory use


def status_kib(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (``VmRSS``, ``VmHWM``...); 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:  # gone, or going
        pass
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (through /proc/PID/task/TID/children)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pids


class RssSampler:
    """Samples VmRSS of a process (or the sum over its process tree) every ``interval`` s; keeps the peak.

    Use as a context manager around the work to observe; ``peak_kib`` and ``samples`` are final after exit.
    """

    def __init__(self, pid: int, interval: float = 0.02, tree: bool = False) -> None:
        self.pid = pid
        self.interval = interval
        self.tree = tree
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def sample(self) -> int:
        """One reading (KiB)."""
        if self.tree:
            return sum(status_kib(p, "VmRSS") for p in process_tree(self.pid))
        return status_kib(self.pid, "VmRSS")

    def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, self.sample())
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.sample())


@dataclass(frozen=True)
class Measured:
    """A finished child process: wall time, peak RSS (itself and its waited-for descendants), output."""

    seconds: float
    maxrss_kib: int
    returncode: int
    output: str
    cpu_seconds: float = 0.0  # user + system time of the child and its waited-for descendants


def run_measured(
    argv: Sequence[str], timeout: float = 1800.0, env: Mapping[str, str] | None = None
) -> Measured:
    """Run ``argv`` to completion (in ``env`` when given); wall-clock time and ``ru_maxrss`` of exactly that
    child (``wait4``)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=None if env is None else dict(env),
        )
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
        out.seek(0)
        output = out.read().decode(errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(seconds, int(usage.ru_maxrss), proc.returncode, output, cpu)


# ------------------------------------------------------------------------------------- other CPU load

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU-seconds of all CPUs since boot, from the ``cpu`` line of /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of a process (all its threads) so far; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


class BusyMeter:
    """CPU-seconds the whole machine spent busy while the block ran, and per second (``busy_cpus``).

    Subtract the measured tool's own CPU time to get what everything else (other jobs, the registry) used.
    """

    def __init__(self) -> None:
        self.busy_seconds = 0.0
        self.wall_seconds = 0.0
        self._start = (0.0, 0.0)

    def __enter__(self) -> BusyMeter:
        self._start = (machine_cpu_seconds()[0], time.monotonic())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.busy_seconds = machine_cpu_seconds()[0] - self._start[0]
        self.wall_seconds = time.monotonic() - self._start[1]

    def others(self, own_cpu_seconds: float) -> float:
        """Average number of CPUs kept busy by everything but the tool (``own_cpu_seconds`` of CPU)."""
        if self.wall_seconds <= 0:
            return 0.0
        return max(0.0, self.busy_seconds - own_cpu_seconds) / self.wall_seconds


class OthersMeter:
    """CPUs kept busy, on average, by everything but the daemon ``pid`` and this script during a block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.others = 0.0
        self._meter = BusyMeter()
        self._own = 0.0

    def _own_cpu(self) -> float:
        times = os.times()
        return process_cpu_seconds(self.pid) + times.user + times.system

    def __enter__(self) -> OthersMeter:
        self._own = self._own_cpu()
        self._meter.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._meter.__exit__(kind, exc, tb)
        self.others = self._meter.others(self._own_cpu() - self._own)


def busy_cpus(window: float = 1.0) -> float:
    """How many CPUs the machine kept busy, on average, over the next ``window`` seconds."""
    before = machine_cpu_seconds()[0]
    time.sleep(window)
    return (machine_cpu_seconds()[0] - before) / window


def add_quiet_argument(parser: argparse.ArgumentParser, before: str, default: float = 0.5) -> None:
    """Add ``--quiet N``: before ``before`` (e.g. "each run") the benchmark waits, up to 5 min, until other
    processes keep fewer than N CPUs busy (:func:`wait_for_quiet`); 0 does not wait."""
    parser.add_argument(
        "--quiet",
        type=float,
        default=default,
        help=f"before {before} wait (up to 5 min) until other processes keep fewer than this many CPUs "
        f"busy (default {default:g}; 0: do not wait)",
    )


def wait_for_quiet(max_busy: float, timeout: float = 300.0, window: float = 2.0) -> float:
    """Wait until the machine keeps fewer than ``max_busy`` CPUs busy over ``window`` s (0: do not wait).

    Returns the last reading; gives up after ``timeout`` s (the caller reports the reading).
    """
    deadline = time.monotonic() + timeout
    reading = busy_cpus(window)
    while max_busy > 0 and reading >= max_busy and time.monotonic() < deadline:
        reading = busy_cpus(window)
    return reading


# ------------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """The 50th percentile."""
    return percentile(values, 50.0)


# ----------------------------------------------------------------------------------------------- output


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("x%").replace(",", ""))
    except ValueError:
        return False
    return True


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a Markdown table (numbers right-aligned) under ``title``."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        bool(cells) and all(_is_number(r[i]) or r[i] == "-" for r in cells) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
            )
            + " |"
        )

    print(f"\n{title}\n")
    print(line(list(headers)))
    rule = [("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)]
    print("|" + "|".join(rule) + "|")
    for row in cells:
        print(line(row))
    sys.stdout.flush()


def crio_source() -> str:
    """Which crio code the daemon runs (for the report)."""
    src = os.environ.get(SRC_ENV)
    return f"{src} (${SRC_ENV})" if src else f"{REPO} (working tree, editable install)"


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def _all_process_cpu() -> dict[int, tuple[str, float]]:
    """{pid: (command name, CPU-seconds so far)} of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    head, _, tail = stat.read().rpartition(")")
            except OSError:
                continue
            fields = tail.split()
            found[int(entry)] = (head.partition("(")[2], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def busiest(window: float = 1.0, count: int = 3) -> tuple[float, list[str]]:
    """Busy CPUs over the next ``window`` s and the ``count`` processes (not this one) that used the most."""
    before, busy_before = _all_process_cpu(), machine_cpu_seconds()[0]
    time.sleep(window)
    after, busy_after = _all_process_cpu(), machine_cpu_seconds()[0]
    me = os.getpid()
    used = sorted(
        ((cpu - before[pid][1], name) for pid, (name, cpu) in after.items() if pid in before and pid != me),
        reverse=True,
    )
    top = [f"{name} {cpu / window:.2f}" for cpu, name in used[:count] if cpu > 0]
    return (busy_after - busy_before) / window, top


def machine_state() -> str:
    """CPUs, load average, available memory, CPUs busy now and the busiest other processes (for reports)."""
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    available = status_like_kib("/proc/meminfo", "MemAvailable") // 1024
    total = status_like_kib("/proc/meminfo", "MemTotal") // 1024
    busy, top = busiest()
    return (
        f"{os.cpu_count()} CPUs, load {load}, {available}/{total} MiB available; "
        f"{busy:.2f} CPUs busy over 1 s: {', '.join(top) or 'nothing'}"
    )


def status_like_kib(path: str, key: str) -> int:
    """A ``KEY: N kB`` line of a /proc file such as /proc/meminfo."""
    with open(path) as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def drop_dirty_pages() -> None:
    """``sync`` so one run's written data is not flushed during the next run's timing."""
    os.sync()

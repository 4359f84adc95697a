"""Exec, attach and port-forward on a real daemon, driven by crictl over SPDY and WebSocket, plus raw
clients for bad input (malformed frames, replayed URLs), client disconnects and output floods."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from crio.core.streaming import spdy
from crio.core.streaming import websocket as ws

from .conftest import REPO, CrioFactory, CrioProcess, bridge_conflist

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
CRICTL = REPO / "_output" / "bin" / "crictl"
TRANSPORTS = ["spdy", "websocket"]


@pytest.fixture(scope="module")
def crictl_binary() -> Path:
    """crictl, built by hack/build-cri-tools.sh when missing."""
    if not CRICTL.exists():
        subprocess.run(["bash", str(REPO / "hack" / "build-cri-tools.sh")], check=True)
    return CRICTL


def started(d: CrioProcess) -> CrioProcess:
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    return d


def remove_pods(d: CrioProcess) -> None:
    """Remove every pod (and so every container): the daemon leaves them running when it stops."""
    runtime = d.runtime()
    for pod in runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=120)


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> Iterator[CrioProcess]:
    d = started(crio_factory())
    yield d
    remove_pods(d)


class Crictl:
    """crictl against one daemon (explicit endpoints: the host's /etc/crictl.yaml is never read)."""

    def __init__(self, binary: Path, daemon: CrioProcess) -> None:
        config = daemon.base / "crictl.yaml"
        config.write_text(
            f"runtime-endpoint: unix://{daemon.socket}\nimage-endpoint: unix://{daemon.socket}\n"
        )
        endpoint = f"unix://{daemon.socket}"
        self.argv = [str(binary), "--config", str(config), "-r", endpoint, "-i", endpoint]

    def run(self, *args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.argv, *args], input=stdin, capture_output=True, timeout=timeout)

    def spawn(self, *args: str, **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*self.argv, *args], **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture
def crictl(crictl_binary: Path, daemon: CrioProcess) -> Crictl:
    return Crictl(crictl_binary, daemon)


def run_pod(daemon: CrioProcess, host_network: bool = False) -> tuple[str, pb.PodSandboxConfig]:
    name = f"stream-{uuid.uuid4().hex[:8]}"
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="crio-test", uid=uuid.uuid4().hex),
        log_directory=str(daemon.base / "logs" / name),
    )
    if host_network:
        config.linux.security_context.namespace_options.network = pb.NODE
    reply = daemon.runtime().RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=120)
    return str(reply.pod_sandbox_id), config


def start_container(
    daemon: CrioProcess,
    pod: tuple[str, pb.PodSandboxConfig],
    command: list[str],
    stdin: bool = False,
    stdin_once: bool = False,
    tty: bool = False,
) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=f"c-{uuid.uuid4().hex[:6]}"),
        image=pb.ImageSpec(image=BUSYBOX),
        command=command,
        stdin=stdin,
        stdin_once=stdin_once,
        tty=tty,
        log_path="c.log",
    )
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    cid = str(daemon.runtime().CreateContainer(request, timeout=120).container_id)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
    return cid


@pytest.fixture
def sleeper(daemon: CrioProcess) -> str:
    """A running busybox container."""
    return start_container(daemon, run_pod(daemon), ["sleep", "3600"])


def exec_url(daemon: CrioProcess, cid: str, cmd: list[str], **flags: bool) -> str:
    request = pb.ExecRequest(container_id=cid, cmd=cmd, **flags)
    return str(daemon.runtime().Exec(request, timeout=30).url)


def processes(*argv: str) -> list[int]:
    """Pids whose command line is exactly ``argv`` (the tests pick arguments nothing else on the machine
    uses, e.g. ``sleep 4242``: a substring would also match other tests' and other runtimes' processes)."""
    wanted = b"\0".join(arg.encode() for arg in argv) + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    found.append(int(entry))
    return found


def wait_for(predicate: object, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------------------------------- exec


def test_exec_sync_through_crictl(crictl: Crictl, sleeper: str) -> None:
    result = crictl.run("exec", "-s", sleeper, "echo", "synced")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [b"synced"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_output_and_exit_code(crictl: Crictl, sleeper: str, transport: str) -> None:
    result = crictl.run(
        "exec", "--transport", transport, sleeper, "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert result.stdout == b"out\n"
    assert b"err\n" in result.stderr and b"exit code 3" in result.stderr
    assert result.returncode == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_stdin_in_bulk(crictl: Crictl, sleeper: str, transport: str) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = crictl.run("exec", "-i", "--transport", transport, sleeper, "md5sum", stdin=data)
    assert result.returncode == 0, result.stderr
    import hashlib

    assert result.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()


def test_exec_of_a_missing_command_reports_the_runtime_error(crictl: Crictl, sleeper: str) -> None:
    result = crictl.run("exec", sleeper, "no-such-command")
    assert b"executable file not found" in result.stderr
    assert b"exit code 255" in result.stderr


def test_exec_and_attach_refuse_bad_requests(daemon: CrioProcess, sleeper: str) -> None:
    runtime = daemon.runtime()
    with pytest.raises(grpc.RpcError) as err:
        runtime.Exec(pb.ExecRequest(container_id="0" * 64, cmd=["true"], stdout=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for request in (
        pb.ExecRequest(container_id=sleeper, cmd=[], stdout=True),
        pb.ExecRequest(container_id=sleeper, cmd=["true"]),
        pb.ExecRequest(container_id=sleeper, cmd=["true"], tty=True, stderr=True),
    ):
        with pytest.raises(grpc.RpcError) as err:
            runtime.Exec(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    runtime.StopContainer(pb.StopContainerRequest(container_id=sleeper, timeout=0), timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        runtime.Exec(pb.ExecRequest(container_id=sleeper, cmd=["true"], stdout=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        runtime.Attach(pb.AttachRequest(container_id=sleeper, stdout=True), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id="f" * 64), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


class Terminal:
    """A program under a pseudo-terminal (as a user's shell runs crictl exec -it)."""

    def __init__(self, argv: list[str], rows: int = 30, columns: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execv(argv[0], argv)
        self.resize(rows, columns)
        self.output = b""

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGWINCH)

    def expect(self, text: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    break
        assert text in self.output, self.output[-2000:]
        return self.output

    def send(self, text: bytes) -> None:
        os.write(self.fd, text)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if select.select([self.fd], [], [], 0)[0]:
                    self.output += os.read(self.fd, 65536)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("crictl did not exit")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_with_a_terminal_and_resize(crictl: Crictl, sleeper: str, transport: str) -> None:
    term = Terminal([*crictl.argv, "exec", "-it", "--transport", transport, sleeper, "sh"], 30, 100)
    # The client sends the initial size on its resize stream while the shell starts (as kubectl does): a
    # command typed before it lands sees a 0x0 terminal, so ask until the size is there (a few tries at most).
    for attempt in range(1, 11):
        term.send(f"stty size; tty; echo marker-{attempt}-$TERM\r".encode())
        output = term.expect(f"marker-{attempt}-xterm".encode())
        answer = output[output.rindex(f"echo marker-{attempt}".encode()) :]
        if b"30 100" in answer:
            break
        time.sleep(0.3)
    assert b"30 100" in answer and b"/dev/pts/" in answer
    term.resize(41, 132)
    time.sleep(0.5)
    term.send(b"stty size\r")
    term.expect(b"41 132")
    term.send(b"exit 7\r")
    assert term.wait() == 1
    assert b"exit code 7" in term.output


# -------------------------------------------------------------------------------------------- attach


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach_relays_stdin_stdout_and_stderr(daemon: CrioProcess, crictl: Crictl, transport: str) -> None:
    cid = start_container(daemon, run_pod(daemon), ["sh"], stdin=True)
    script = b"echo attached-out; echo attached-err >&2\n"
    proc = crictl.spawn(
        "attach",
        "-i",
        "--transport",
        transport,
        cid,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.flush()
    time.sleep(1.5)
    proc.stdin.close()  # not stdin_once and no terminal: the attach ends with its input
    assert proc.wait(30) == 0
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    assert stdout == b"attached-out\n"
    assert b"attached-err" in stderr
    status = daemon.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=30)
    assert status.status.state == pb.CONTAINER_RUNNING  # the container's stdin stays open


def test_attach_with_stdin_once_ends_the_container(daemon: CrioProcess, crictl: Crictl) -> None:
    cid = start_container(daemon, run_pod(daemon), ["sh"], stdin=True, stdin_once=True)
    result = crictl.run("attach", "-i", cid, stdin=b"echo last words\n", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"last words\n"

    def exited() -> bool:
        reply = daemon.runtime().ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=30)
        return bool(reply.status.state == pb.CONTAINER_EXITED)

    assert wait_for(exited)


def test_attach_to_a_terminal_resizes_it_through_conmon(daemon: CrioProcess, crictl: Crictl) -> None:
    cid = start_container(daemon, run_pod(daemon), ["sh"], stdin=True, tty=True)
    term = Terminal([*crictl.argv, "attach", "-i", "-t", cid], 25, 90)
    time.sleep(1.0)
    term.send(b"stty size\r")
    term.expect(b"25 90")
    term.resize(50, 160)
    time.sleep(0.5)
    term.send(b"stty size\r")
    term.expect(b"50 160")
    term.send(b"exit\r")
    term.wait()


# -------------------------------------------------------------------------------------- port forward


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web_server(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], port: int, text: str) -> str:
    script = f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"
    return start_container(daemon, pod, ["sh", "-c", script])


@contextlib.contextmanager
def forwarding(crictl: Crictl, pod_id: str, transport: str, *mappings: str) -> Iterator[None]:
    proc = crictl.spawn(
        "port-forward",
        "--transport",
        transport,
        pod_id,
        *mappings,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        local = [int(m.split(":")[0]) for m in mappings]
        assert wait_for(lambda: all(_listening(p) for p in local)), "crictl port-forward did not start"
        yield
    finally:
        proc.kill()
        proc.wait()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
        return str(reply.read().decode().strip())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_port_forward_several_ports_and_connections(
    daemon: CrioProcess, crictl: Crictl, transport: str
) -> None:
    pod = run_pod(daemon)
    web_server(daemon, pod, 8080, "eighty-eighty")
    web_server(daemon, pod, 8081, "eighty-eighty-one")
    local_a, local_b = free_port(), free_port()
    with forwarding(crictl, pod[0], transport, f"{local_a}:8080", f"{local_b}:8081"):
        assert wait_for(lambda: _fetches(local_a))
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda p=p: results.append(fetch(p))) for p in [local_a, local_b] * 5
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results) == sorted(["eighty-eighty", "eighty-eighty-one"] * 5)


def _fetches(port: int) -> bool:
    try:
        fetch(port)
    except OSError:
        return False
    return True


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_port_forward_in_a_host_network_pod(daemon: CrioProcess, crictl: Crictl, transport: str) -> None:
    pod = run_pod(daemon, host_network=True)
    port = free_port()
    web_server(daemon, pod, port, "host-net")
    local = free_port()
    with forwarding(crictl, pod[0], transport, f"{local}:{port}"):
        assert wait_for(lambda: _fetches(local))
        assert fetch(local) == "host-net"


def test_port_forward_to_a_closed_port_reports_the_error(daemon: CrioProcess, crictl: Crictl) -> None:
    pod = run_pod(daemon)
    local = free_port()
    with forwarding(crictl, pod[0], "spdy", f"{local}:9"), pytest.raises(OSError):
        fetch(local)


# -------------------------------------------------------------------------------------- raw clients


def upgrade(url: str, headers: dict[str, str], method: str = "POST") -> tuple[socket.socket, bytes]:
    """Send an HTTP upgrade request; return the socket and the response head."""
    parsed = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
    lines = [f"{method} {parsed.path} HTTP/1.1", f"Host: {parsed.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


SPDY_UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "SPDY/3.1",
    "X-Stream-Protocol-Version": "v4.channel.k8s.io",
}


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_urls_are_single_use_and_unknown_tokens_get_404(daemon: CrioProcess, sleeper: str) -> None:
    url = exec_url(daemon, sleeper, ["true"], stdout=True)
    assert url.startswith("http://127.0.0.1:")
    sock, head = upgrade(url, SPDY_UPGRADE)
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert b"X-Stream-Protocol-Version: v4.channel.k8s.io" in head
    sock.close()
    sock, head = upgrade(url, SPDY_UPGRADE)
    assert head.startswith(b"HTTP/1.1 404 "), head
    sock.close()
    bogus = url.rsplit("/", 1)[0] + "/not-a-token"
    sock, head = upgrade(bogus, SPDY_UPGRADE)
    assert head.startswith(b"HTTP/1.1 404 ")
    sock.close()
    without_upgrade = exec_url(daemon, sleeper, ["true"], stdout=True)
    sock, head = upgrade(without_upgrade, {})
    assert head.startswith(b"HTTP/1.1 400 ")
    sock.close()


def test_malformed_spdy_closes_that_connection_only(
    daemon: CrioProcess, crictl: Crictl, sleeper: str
) -> None:
    sock, head = upgrade(exec_url(daemon, sleeper, ["sleep", "30"], stdout=True), SPDY_UPGRADE)
    assert head.startswith(b"HTTP/1.1 101 ")
    sock.sendall(struct.pack(">II", 0x80000000 | (3 << 16) | spdy.SYN_STREAM, 10) + b"\0\0\0\2" + b"\0" * 6)
    answer = read_until_closed(sock)
    assert struct.unpack_from(">I", answer)[0] & 0xFFFF == spdy.GOAWAY
    sock.close()
    result = crictl.run("exec", sleeper, "echo", "still-serving")
    assert result.stdout == b"still-serving\n"


def test_malformed_websocket_closes_that_connection_only(
    daemon: CrioProcess, crictl: Crictl, sleeper: str
) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Protocol": "v5.channel.k8s.io",
    }
    sock, head = upgrade(exec_url(daemon, sleeper, ["sleep", "3031"], stdout=True), headers, "GET")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {ws.accept_key(key)}".encode() in head
    sock.sendall(ws.frame(ws.OP_BINARY, b"\x00unmasked"))
    answer = read_until_closed(sock)
    close = answer[answer.index(b"\x88") :]
    assert struct.unpack_from(">H", close, 2)[0] == ws.CLOSE_PROTOCOL_ERROR
    sock.close()
    assert wait_for(lambda: not processes("sleep", "3031"))
    result = crictl.run("exec", "--transport", "websocket", sleeper, "echo", "still-serving")
    assert result.stdout == b"still-serving\n"


def test_client_disconnect_kills_the_exec(daemon: CrioProcess, crictl: Crictl, sleeper: str) -> None:
    proc = crictl.spawn(
        "exec", sleeper, "sleep", "4242", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert wait_for(lambda: any(_is_sleep(p) for p in processes("sleep", "4242")))
    proc.kill()
    proc.wait()
    assert wait_for(lambda: not [p for p in processes("sleep", "4242") if _is_sleep(p)])
    bundle_files = list((daemon.base / "runroot").rglob("exec-*"))
    assert wait_for(lambda: not list((daemon.base / "runroot").rglob("exec-*"))), bundle_files


def _is_sleep(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"
    return False


def test_output_flood_to_a_stalled_reader_keeps_memory_bounded(
    daemon: CrioProcess, crictl: Crictl, sleeper: str
) -> None:
    assert daemon.proc is not None
    before = rss_kib(daemon.proc.pid)
    reader_r, reader_w = os.pipe()  # nobody reads it: crictl blocks, then the daemon must stop reading
    proc = crictl.spawn("exec", sleeper, "cat", "/dev/zero", stdout=reader_w, stderr=subprocess.DEVNULL)
    os.close(reader_w)
    try:
        time.sleep(4)
        assert rss_kib(daemon.proc.pid) - before < 32 * 1024
    finally:
        proc.kill()
        proc.wait()
        os.close(reader_r)
    assert wait_for(lambda: not [p for p in processes("cat", "/dev/zero") if _comm(p) == "cat"])


def _comm(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def test_idle_connections_are_closed(
    crio_factory: CrioFactory, local_registry: str, crictl_binary: Path
) -> None:
    d = crio_factory()
    (d.config_dir / "50-idle.conf").write_text('[crio.api]\nstream_idle_timeout = "2s"\n')
    started(d)
    try:
        cid = start_container(d, run_pod(d), ["sleep", "3600"])
        begin = time.monotonic()
        result = Crictl(crictl_binary, d).run("exec", cid, "sleep", "3099", timeout=60)
        assert time.monotonic() - begin < 30
        assert result.returncode != 0
        assert b"idle" in result.stderr
        assert wait_for(lambda: not [p for p in processes("sleep", "3099") if _is_sleep(p)])
    finally:
        remove_pods(d)


def read_server_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Every frame the server sends until it closes the connection: (opcode, payload)."""
    data = read_until_closed(sock, 20)
    frames = []
    while len(data) >= 2:
        size, offset = data[1] & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack_from(">H", data, 2)[0], 4
        elif size == 127:
            size, offset = struct.unpack_from(">Q", data, 2)[0], 10
        frames.append((data[0] & 0x0F, data[offset : offset + size]))
        data = data[offset + size :]
    return frames


@pytest.mark.parametrize(
    ("protocol", "decode"),
    [
        ("v4.channel.k8s.io", lambda p: (p[0], p[1:])),
        ("base64.channel.k8s.io", lambda p: (p[0] - ord("0"), base64.b64decode(p[1:]))),
    ],
)
def test_older_websocket_channel_protocols(
    daemon: CrioProcess, sleeper: str, protocol: str, decode: object
) -> None:
    url = exec_url(daemon, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 4"], stdout=True, stderr=True)
    key = base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Protocol": protocol,
    }
    sock, head = upgrade(url, headers, "GET")
    assert f"Sec-WebSocket-Protocol: {protocol}".encode() in head
    frames = read_server_frames(sock)
    sock.close()
    assert frames[-1][0] == ws.OP_CLOSE
    channels: dict[int, bytes] = {}
    for opcode, payload in frames[:-1]:
        assert opcode == (ws.OP_TEXT if "base64" in protocol else ws.OP_BINARY)
        channel, data = decode(payload)  # type: ignore[operator]
        channels[channel] = channels.get(channel, b"") + data
    assert channels[1] == b"out\n" and channels[2] == b"err\n"
    if protocol.startswith("v4."):
        status = json.loads(channels[3])
        assert status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}]
    else:
        assert b"exit code 4" in channels[3]

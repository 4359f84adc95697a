"""The README's ocic walk-through, verbatim, against a real redis-server image from the fixture kit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from .conftest import REPO, CrioFactory, bridge_conflist

OCIC = str(Path(sys.executable).with_name("ocic"))
TESTDATA = REPO / "tests" / "testdata"


def ocic(socket_path: str, *args: str) -> str:
    result = subprocess.run(
        [OCIC, "--connect", socket_path, "--timeout", "120", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"ocic {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def redis_ping(ip: str) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((ip, 6379), timeout=5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_seed_walkthrough_runs_redis(crio_factory: CrioFactory, local_registry: str) -> None:
    daemon = crio_factory()
    (daemon.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    daemon.start()
    sock = daemon.socket
    ocic(sock, "image", "pull", "quay.io/crio-test/redis:latest")
    pod_id = ocic(sock, "pod", "run", "--config", str(TESTDATA / "sandbox_config.json"))
    ctr_id = ocic(sock, "ctr", "create", "--pod", pod_id, "--config", str(TESTDATA / "container_redis.json"))
    assert ocic(sock, "ctr", "start", "--id", ctr_id) == ctr_id
    status = json.loads(ocic(sock, "ctr", "status", "--id", ctr_id))
    assert status["status"]["state"] == "CONTAINER_RUNNING"
    pod = json.loads(ocic(sock, "pod", "status", "--id", pod_id))
    assert redis_ping(pod["status"]["network"]["ip"]) == b"+PONG\r\n"
    listed = json.loads(ocic(sock, "ctr", "list"))
    assert [c["id"] for c in listed["containers"]] == [ctr_id]
    ocic(sock, "ctr", "stop", "--id", ctr_id)
    assert json.loads(ocic(sock, "ctr", "status", "--id", ctr_id))["status"]["state"] == "CONTAINER_EXITED"
    ocic(sock, "ctr", "remove", "--id", ctr_id)
    ocic(sock, "pod", "stop", "--id", pod_id)
    ocic(sock, "pod", "remove", "--id", pod_id)
    assert json.loads(ocic(sock, "pod", "list")) == {}

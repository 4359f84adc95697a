"""Issue 14: a real daemon pulls every image of the hostile corpus from a real (test) registry.

Each pull must be refused with INVALID_ARGUMENT naming the problem (never INTERNAL, never a Python
exception's name), the daemon's peak RSS must grow by less than 256 MB (its high-water mark is reset
before the pull), the daemon must still serve (Version, then a good pull), and the store must be as
before: no new layer, image, layer directory or temporary pull file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from tests import hostile_images as h

from .conftest import CrioProcess
from .fake_registry import FakeRegistry
from .test_images import layer_records, leftovers, pull

MAX_GROWTH_KIB = 256 * 1000  # 256 MB
CASES = h.corpus()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, local_registry: str) -> Iterator[CrioProcess]:
    """One daemon for the module, with the fake registry serving the corpus as ``fake.test``."""
    with FakeRegistry() as registry:
        h.serve(registry, CASES)
        base = tmp_path_factory.mktemp("hostile")
        daemon = CrioProcess(base)
        with open(daemon.registries_conf, "a") as conf:
            location = f"127.0.0.1:{registry.port}"
            conf.write(f'\n[[registry]]\nprefix = "fake.test"\nlocation = "{location}"\ninsecure = true\n')
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()
            shutil.rmtree(base, ignore_errors=True)


def image_ids(daemon: CrioProcess) -> list[str]:
    return sorted(i.id for i in daemon.images().ListImages(pb.ListImagesRequest(), timeout=30).images)


def layer_dirs(daemon: CrioProcess) -> list[str]:
    overlay = daemon.base / "root" / "overlay"
    return sorted(p.name for p in overlay.iterdir()) if overlay.exists() else []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_image_is_refused_with_bounded_memory(served: CrioProcess, case: h.Case) -> None:
    daemon = served
    case.image  # noqa: B018 - build it before measuring (the registry is in this process)
    before = (layer_records(daemon), image_ids(daemon), layer_dirs(daemon))
    assert daemon.proc is not None
    started = time.monotonic()
    with h.PeakRss(daemon.proc.pid) as rss, pytest.raises(grpc.RpcError) as err:
        pull(daemon, f"fake.test/hostile/{case.name}:latest", timeout=600)
    seconds = time.monotonic() - started
    details = err.value.details() or ""
    print(f"{case.name}: {seconds:.1f}s, +{rss.growth_kib // 1000} MB, {details[:200]}")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, details
    assert case.expect in details
    assert f"fake.test/hostile/{case.name}" in details  # the image is named
    assert "Error:" not in details and "Exception" not in details
    assert rss.growth_kib < MAX_GROWTH_KIB
    assert rss.children_peak_kib < MAX_GROWTH_KIB
    assert (layer_records(daemon), image_ids(daemon), layer_dirs(daemon)) == before
    assert leftovers(daemon) == []
    assert not Path("/tmp/crio-hostile-escape").exists()
    assert Path("/etc/passwd").exists()
    daemon.runtime().Version(pb.VersionRequest(version="v1"), timeout=10)


def test_the_daemon_still_pulls_a_good_image(served: CrioProcess) -> None:
    assert pull(served, f"fake.test/{h.GOOD_REPO}:latest")

"""containers-registries.conf v2: parsing, longest-prefix matching on component boundaries, rewriting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.images import registries
from crio.core.images.reference import parse_docker_reference
from crio.core.images.registries import Endpoint, Mirror, Registry

D256 = "sha256:" + "c" * 64

CONF = """
unqualified-search-registries = ["docker.io", "quay.io"]

[[registry]]
prefix = "registry.k8s.io"
location = "127.0.0.1:5000"
insecure = true

[[registry]]
prefix = "k8s.gcr.io"
location = "127.0.0.1:5000"
insecure = true

[[registry]]
prefix = "gcr.io/k8s-staging-cri-tools"
location = "127.0.0.1:5000/k8s-staging-cri-tools"
insecure = true

[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"

[[registry]]
prefix = "example.com/foo/special"
location = "special.example.net:8443/s"
blocked = true
mirror-by-digest-only = true

[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"

[[registry.mirror]]
location = "mirror-1.local/mirrors/foo"
insecure = true

[[registry]]
location = "insecure.local:5000"
insecure = true

[[registry]]
prefix = "docker.io/library/busybox"
location = "127.0.0.1:5000/docker/library/busybox"

[[registry]]
prefix = "*.wild.example"
insecure = true

[[registry]]
prefix = "tagged.example/app:v1"
location = "127.0.0.1:5000/pinned:v1-local"
"""


@pytest.fixture
def conf(tmp_path: Path) -> registries.RegistriesConf:
    path = tmp_path / "registries.conf"
    path.write_text(CONF)
    return registries.load(str(path))


@pytest.mark.parametrize(
    ("image", "location", "insecure"),
    [
        ("registry.k8s.io/pause:3.9", "127.0.0.1:5000/pause:3.9", True),
        (
            "registry.k8s.io/e2e-test-images/busybox:1.29-2",
            "127.0.0.1:5000/e2e-test-images/busybox:1.29-2",
            True,
        ),
        ("k8s.gcr.io/pause:3.9", "127.0.0.1:5000/pause:3.9", True),
        (
            "gcr.io/k8s-staging-cri-tools/test-image-1:latest",
            "127.0.0.1:5000/k8s-staging-cri-tools/test-image-1:latest",
            True,
        ),
        ("gcr.io/k8s-staging-cri-tools-other/x:1", "gcr.io/k8s-staging-cri-tools-other/x:1", False),
        ("gcr.io/other/x:1", "gcr.io/other/x:1", False),
        ("example.com/foo/img:latest", "internal.example.net/bar/img:latest", False),
        ("example.com/foo:1", "internal.example.net/bar:1", False),
        (f"example.com/foo@{D256}", f"internal.example.net/bar@{D256}", False),
        ("example.com/foobar/img:1", "example.com/foobar/img:1", False),  # component boundary
        ("example.com/foo/special/x:1", "special.example.net:8443/s/x:1", False),  # longest prefix
        ("example.com/foo/specialist:1", "internal.example.net/bar/specialist:1", False),
        ("insecure.local:5000/a/b:c", "insecure.local:5000/a/b:c", True),  # prefix defaults to location
        ("insecure.local/a:1", "insecure.local/a:1", False),  # a host prefix never matches another port
        ("busybox", "127.0.0.1:5000/docker/library/busybox:latest", False),
        ("busybox:1.36", "127.0.0.1:5000/docker/library/busybox:1.36", False),
        ("library/busyboxes", "docker.io/library/busyboxes:latest", False),
        ("a.wild.example/x:1", "a.wild.example/x:1", True),
        ("b.a.wild.example:444/x:1", "b.a.wild.example:444/x:1", True),
        ("wild.example/x:1", "wild.example/x:1", False),
        ("tagged.example/app:v1", "127.0.0.1:5000/pinned:v1-local", False),
        ("tagged.example/app:v2", "tagged.example/app:v2", False),
        ("quay.io/crio/x:1", "quay.io/crio/x:1", False),
    ],
)
def test_resolve(conf: registries.RegistriesConf, image: str, location: str, insecure: bool) -> None:
    ref = parse_docker_reference(image)
    assert conf.resolve(ref) == [Endpoint(parse_docker_reference(location, default_tag=False), insecure)]


def test_parsed_fields(conf: registries.RegistriesConf) -> None:
    assert conf.unqualified_search_registries == ("docker.io", "quay.io")
    special = conf.find(parse_docker_reference("example.com/foo/special/x"))
    assert special == Registry(
        prefix="example.com/foo/special",
        location="special.example.net:8443/s",
        blocked=True,
        mirror_by_digest_only=True,
        mirrors=(
            Mirror("mirror-0.local/mirror-for-foo"),
            Mirror("mirror-1.local/mirrors/foo", insecure=True),
        ),
    )
    assert conf.find(parse_docker_reference("insecure.local:5000/x")) == Registry(
        "insecure.local:5000", "insecure.local:5000", insecure=True
    )
    assert conf.find(parse_docker_reference("nowhere.example/x")) is None


def test_mirrors_when_asked(conf: registries.RegistriesConf) -> None:
    by_digest = parse_docker_reference(f"example.com/foo/special/x@{D256}")
    assert [str(e.location_ref) for e in conf.resolve(by_digest, mirrors=True)] == [
        f"mirror-0.local/mirror-for-foo/x@{D256}",
        f"mirror-1.local/mirrors/foo/x@{D256}",
        f"special.example.net:8443/s/x@{D256}",
    ]
    by_tag = parse_docker_reference("example.com/foo/special/x:1")  # mirror-by-digest-only
    assert [str(e.location_ref) for e in conf.resolve(by_tag, mirrors=True)] == [
        "special.example.net:8443/s/x:1"
    ]
    assert len(conf.resolve(by_digest)) == 1  # mirror-less by default


def test_missing_or_empty_path_means_no_remaps(tmp_path: Path) -> None:
    ref = parse_docker_reference("registry.k8s.io/pause:3.9")
    for path in (str(tmp_path / "absent.conf"), ""):
        assert registries.resolve(ref, path) == [Endpoint(ref, False)]


def test_cache_follows_mtime(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nprefix = "a.io"\nlocation = "b.io"\n')
    first = registries.load(str(path))
    assert registries.load(str(path)) is first
    path.write_text('[[registry]]\nprefix = "a.io"\nlocation = "c.io:1"\n')
    os.utime(path, ns=(1, 1))
    ref = parse_docker_reference("a.io/x:1")
    assert str(registries.resolve(ref, str(path))[0].location_ref) == "c.io:1/x:1"


def test_version1_tables(tmp_path: Path) -> None:
    path = tmp_path / "v1.conf"
    path.write_text(
        "[registries.search]\nregistries = ['docker.io']\n"
        "[registries.insecure]\nregistries = ['127.0.0.1:5000']\n"
        "[registries.block]\nregistries = ['bad.io']\n"
    )
    conf = registries.load(str(path))
    assert conf.unqualified_search_registries == ("docker.io",)
    assert conf.resolve(parse_docker_reference("127.0.0.1:5000/x:1"))[0].insecure
    found = conf.find(parse_docker_reference("bad.io/x"))
    assert found is not None and found.blocked


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("[[registry]\n", "invalid TOML"),
        ("registry = 1\n", "'registry' must be a list"),
        ("[[registry]]\ninsecure = true\n", "needs a 'prefix' or a 'location'"),
        ('[[registry]]\nlocation = "Bad_Host/x"\n', "invalid prefix 'Bad_Host/x'"),
        ('[[registry]]\nprefix = "a.io"\nlocation = "b.io/UPPER"\n', "invalid location"),
        ('[[registry]]\nprefix = "a.io/x:bad tag"\nlocation = "b.io"\n', "bad tag"),
        ('[[registry]]\nprefix = "a.io/x@sha256:1"\nlocation = "b.io"\n', "bad digest"),
        ('[[registry]]\nlocation = "a.io"\ninsecure = "yes"\n', "'insecure' must be a bool"),
        ('[[registry]]\nlocation = "a.io"\nblocked = 1\n', "'blocked' must be a bool"),
        ('[[registry]]\nlocation = "a.io"\n[[registry]]\nlocation = "a.io"\n', "defined more than once"),
        (
            '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\ninsecure = true\n',
            "mirror #1: 'location' is",
        ),
        ('[[registry]]\nprefix = "*.a.io"\nlocation = "b.io"\n', "cannot have a location"),
        ('[[registry]]\nprefix = "*.a.io/x"\n', "a wildcard must be"),
        ('unqualified-search-registries = ["a.io/x"]\n', "is not a host"),
        ('unqualified-search-registries = "a.io"\n', "must be a list"),
        (
            'unqualified-search-registries = ["a.io"]\n[registries.search]\nregistries = []\n',
            "mixes version 1",
        ),
        ("[registries.insecure]\nregistries = [1]\n", "list of strings"),
        (
            '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "m.io"\n'
            'pull-from-mirror = "x"\n',
            "pull-from-mirror",
        ),
    ],
)
def test_errors_name_file_and_problem(tmp_path: Path, content: str, error: str) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=error) as info:
        registries.load(str(path))
    assert str(path) in str(info.value)


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="cannot read"):
        registries.load(str(tmp_path))  # a directory


def test_rewrite_result_must_be_valid(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nprefix = "a.io/x"\nlocation = "b.io/' + "y/" * 130 + 'z"\n')
    with pytest.raises(InvalidArgument, match=r"rewriting a\.io/x/img:1"):
        registries.resolve(parse_docker_reference("a.io/x/img:1"), str(path))


@pytest.mark.parametrize(
    ("domain", "loopback"),
    [
        ("127.0.0.1:5000", True),
        ("127.1.2.3", True),
        ("localhost:5000", True),
        ("[::1]:5000", True),
        ("registry.k8s.io", False),
        ("10.0.0.1:5000", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_registries_may_use_plain_http(domain: str, loopback: bool) -> None:
    from crio.plugins.image_transports.registry import is_loopback

    assert is_loopback(domain) is loopback

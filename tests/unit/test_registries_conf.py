"""containers-registries.conf v2: parsing, longest-prefix matching on component boundaries, rewriting,
mirrors, blocking, drop-ins, reloading and errors with file and line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument, PermissionDenied
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
    assert conf.endpoints(ref, mirrors=False) == [
        Endpoint(parse_docker_reference(location, default_tag=False), insecure)
    ]


def test_parsed_fields(conf: registries.RegistriesConf) -> None:
    assert conf.unqualified_search_registries == ("docker.io", "quay.io")
    special = conf.find(parse_docker_reference("example.com/foo/special/x"))
    assert special == Registry(
        prefix="example.com/foo/special",
        location="special.example.net:8443/s",
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
    assert [str(e.location_ref) for e in conf.endpoints(by_digest, mirrors=True)] == [
        f"mirror-0.local/mirror-for-foo/x@{D256}",
        f"mirror-1.local/mirrors/foo/x@{D256}",
        f"special.example.net:8443/s/x@{D256}",
    ]
    by_tag = parse_docker_reference("example.com/foo/special/x:1")  # mirror-by-digest-only
    assert [str(e.location_ref) for e in conf.endpoints(by_tag, mirrors=True)] == [
        "special.example.net:8443/s/x:1"
    ]
    assert len(conf.endpoints(by_digest, mirrors=False)) == 1  # mirror-less by default


def test_missing_or_empty_path_means_no_remaps(tmp_path: Path) -> None:
    ref = parse_docker_reference("registry.k8s.io/pause:3.9")
    for path in (str(tmp_path / "absent.conf"), ""):
        assert registries.load(str(path)).endpoints(ref, mirrors=False) == [Endpoint(ref, False)]


def test_cache_follows_mtime(tmp_path: Path) -> None:
    path = tmp_path / "r.conf"
    path.write_text('[[registry]]\nprefix = "a.io"\nlocation = "b.io"\n')
    first = registries.load(str(path))
    assert registries.load(str(path)) is first
    path.write_text('[[registry]]\nprefix = "a.io"\nlocation = "c.io:1"\n')
    os.utime(path, ns=(1, 1))
    ref = parse_docker_reference("a.io/x:1")
    assert str(registries.load(str(path)).endpoints(ref, mirrors=False)[0].location_ref) == "c.io:1/x:1"


def test_version1_tables(tmp_path: Path) -> None:
    path = tmp_path / "v1.conf"
    path.write_text(
        "[registries.search]\nregistries = ['docker.io']\n"
        "[registries.insecure]\nregistries = ['127.0.0.1:5000']\n"
        "[registries.block]\nregistries = ['bad.io']\n"
    )
    conf = registries.load(str(path))
    assert conf.unqualified_search_registries == ("docker.io",)
    assert conf.endpoints(parse_docker_reference("127.0.0.1:5000/x:1"), mirrors=False)[0].insecure
    found = conf.find(parse_docker_reference("bad.io/x"))
    assert found is not None and found.blocked


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("[[registry]\n", "invalid TOML"),
        ("registry = 1\n", "'registry' must be a list"),
        ("[[registry]]\ninsecure = true\n", "needs a 'location'"),
        ('[[registry]]\nlocation = "Bad_Host/x"\n', "invalid location 'Bad_Host/x'"),
        ('[[registry]]\nprefix = "a.io"\nlocation = "b.io/UPPER"\n', "invalid location"),
        ('[[registry]]\nprefix = "a.io/x:bad tag"\nlocation = "b.io"\n', "bad tag"),
        ('[[registry]]\nprefix = "a.io/x@sha256:1"\nlocation = "b.io"\n', "bad digest"),
        ('[[registry]]\nlocation = "a.io"\ninsecure = "yes"\n', "'insecure' must be a bool"),
        ('[[registry]]\nlocation = "a.io"\nblocked = 1\n', "'blocked' must be a bool"),
        ('[[registry]]\nlocation = "a.io"\n[[registry]]\nlocation = "a.io"\n', "already defined at line 1"),
        (
            '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\ninsecure = true\n',
            "mirror #1 of prefix 'a.io' needs a 'location'",
        ),
        ('[[registry]]\nprefix = "*.a.io/x"\n', "a wildcard must be"),
        ('unqualified-search-registries = ["a.io/x"]\n', "is not a host"),
        ('unqualified-search-registries = "a.io"\n', "must be a list"),
        (
            'unqualified-search-registries = ["a.io"]\n[registries.search]\nregistries = []\n',
            "mixes version 1",
        ),
        ("[registries.insecure]\nregistries = [1]\n", "list of non-empty strings"),
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
    with pytest.raises(InvalidArgument, match=r"rewriting a\.io/x/img:1 to location"):
        registries.load(str(path)).endpoints(parse_docker_reference("a.io/x/img:1"), mirrors=False)


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


# --------------------------------------------------------------------------------------------------
# Mirrors, pull-from-mirror, insecure per mirror
# --------------------------------------------------------------------------------------------------

MIRRORS = """
[[registry]]
prefix = "src.example/team"
location = "primary.example/team"
insecure = true

[[registry.mirror]]
location = "m-all.example/cache"

[[registry.mirror]]
location = "m-digest.example/cache"
pull-from-mirror = "digest-only"
insecure = true

[[registry.mirror]]
location = "m-tag.example/cache"
pull-from-mirror = "tag-only"

[[registry]]
location = "bydigest.example"
mirror-by-digest-only = true

[[registry.mirror]]
location = "m.example:5000/bd"
"""


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def endpoint_list(conf: registries.RegistriesConf, image: str) -> list[tuple[str, bool, bool]]:
    return [
        (str(e.location_ref), e.insecure, e.mirror) for e in conf.endpoints(parse_docker_reference(image))
    ]


def test_mirrors_in_order_then_location_per_pull_from_mirror(tmp_path: Path) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", MIRRORS))
    assert endpoint_list(conf, "src.example/team/app:1") == [
        ("m-all.example/cache/app:1", False, True),
        ("m-tag.example/cache/app:1", False, True),
        ("primary.example/team/app:1", True, False),
    ]
    assert endpoint_list(conf, f"src.example/team/app@{D256}") == [
        (f"m-all.example/cache/app@{D256}", False, True),
        (f"m-digest.example/cache/app@{D256}", True, True),  # the mirror's own insecure
        (f"primary.example/team/app@{D256}", True, False),
    ]
    # A tag and a digest: a digest pull (containers/image's reference.Canonical).
    assert [e[0] for e in endpoint_list(conf, f"src.example/team/app:1@{D256}")] == [
        f"m-all.example/cache/app:1@{D256}",
        f"m-digest.example/cache/app:1@{D256}",
        f"primary.example/team/app:1@{D256}",
    ]


def test_mirror_by_digest_only(tmp_path: Path) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", MIRRORS))
    assert endpoint_list(conf, "bydigest.example/x:1") == [("bydigest.example/x:1", False, False)]
    assert endpoint_list(conf, f"bydigest.example/x@{D256}") == [
        (f"m.example:5000/bd/x@{D256}", False, True),
        (f"bydigest.example/x@{D256}", False, False),
    ]


def test_unconfigured_reference_has_one_default_endpoint(tmp_path: Path) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", MIRRORS))
    ref = parse_docker_reference("other.example/x:1")
    (endpoint,) = conf.endpoints(ref)
    assert endpoint == Endpoint(ref) and not endpoint.configured and not endpoint.mirror


# --------------------------------------------------------------------------------------------------
# Blocked registries
# --------------------------------------------------------------------------------------------------

BLOCKED = """
[[registry]]
location = "127.0.0.1:5001"
blocked = true

[[registry]]
prefix = "quay.io/allowed"
location = "quay.io/allowed"

[[registry]]
prefix = "quay.io"
location = "quay.io"
blocked = true

[[registry]]
prefix = "pub.example"
location = "pub.example"

[[registry.mirror]]
location = "127.0.0.1:5001/cache"

[[registry.mirror]]
location = "ok-mirror.example"

[[registry]]
prefix = "remapped.example"
location = "127.0.0.1:5001/r"
"""


def test_blocked_registry_is_permission_denied(tmp_path: Path) -> None:
    path = write(tmp_path / "registries.conf", BLOCKED)
    conf = registries.read_config(path)
    with pytest.raises(PermissionDenied) as info:
        conf.endpoints(parse_docker_reference("127.0.0.1:5001/busybox:1"))
    assert str(info.value) == f'registry 127.0.0.1:5001 is blocked in {path} (prefix "127.0.0.1:5001")'
    with pytest.raises(PermissionDenied, match=r'prefix "quay\.io"'):
        conf.endpoints(parse_docker_reference("quay.io/other/x:1"))
    # The shared loader and the mirror-less view block too.
    with pytest.raises(PermissionDenied):
        registries.load(path).endpoints(parse_docker_reference("quay.io/x/y:1"), mirrors=False)
    # A longer, unblocked prefix wins over the blocked one.
    assert endpoint_list(conf, "quay.io/allowed/x:1") == [("quay.io/allowed/x:1", False, False)]


def test_mirror_under_a_blocked_registry_is_skipped(tmp_path: Path) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", BLOCKED))
    assert endpoint_list(conf, "pub.example/x:1") == [
        ("ok-mirror.example/x:1", False, True),
        ("pub.example/x:1", False, False),
    ]
    with pytest.raises(PermissionDenied, match=r"registry 127\.0\.0\.1:5001 is blocked"):
        conf.endpoints(parse_docker_reference("remapped.example/x:1"))


# --------------------------------------------------------------------------------------------------
# Wildcard prefixes
# --------------------------------------------------------------------------------------------------

WILDCARDS = """
[[registry]]
prefix = "*.example.com"
insecure = true

[[registry.mirror]]
location = "mirror.local/wild"

[[registry]]
prefix = "*.bar.example.com"
blocked = true

[[registry]]
prefix = "foo.bar.example.com:5000"
location = "exact.local"

[[registry]]
prefix = "a.example.com"
location = "tie.local"

[[registry]]
prefix = "*.remap.test"
location = "remapped.local"
"""


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # No location: no remap; the mirror still applies (containers-registries.conf(5)).
        (
            "x.example.com/app:1",
            [("mirror.local/wild/app:1", False, True), ("x.example.com/app:1", True, False)],
        ),
        (
            "x.y.example.com:444/app:1",
            [("mirror.local/wild/app:1", False, True), ("x.y.example.com:444/app:1", True, False)],
        ),
        # Longest prefix wins: the exact prefix is longer than any wildcard.
        ("foo.bar.example.com:5000/app:1", [("exact.local/app:1", False, False)]),
        # Same length: containers/image keeps the first in prefix order, and '*' sorts first.
        (
            "a.example.com/app:1",
            [("mirror.local/wild/app:1", False, True), ("a.example.com/app:1", True, False)],
        ),
        # The wildcard needs a subdomain.
        ("example.com/app:1", [("example.com/app:1", False, False)]),
        # A wildcard with a location replaces the host (and port).
        ("x.remap.test/ns/app:1", [("remapped.local/ns/app:1", False, False)]),
        ("x.remap.test:5000/ns/app:1", [("remapped.local/ns/app:1", False, False)]),
    ],
)
def test_wildcard_precedence(tmp_path: Path, image: str, expected: list[tuple[str, bool, bool]]) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", WILDCARDS))
    assert endpoint_list(conf, image) == expected


def test_longer_wildcard_wins(tmp_path: Path) -> None:
    conf = registries.read_config(write(tmp_path / "r.conf", WILDCARDS))
    with pytest.raises(PermissionDenied, match=r'prefix "\*\.bar\.example\.com"'):
        conf.endpoints(parse_docker_reference("zz.bar.example.com/app:1"))
    found = conf.find(parse_docker_reference("zz.bar.example.com/app:1"))
    assert found is not None and found.location == "" and found.wildcard


# --------------------------------------------------------------------------------------------------
# Drop-ins
# --------------------------------------------------------------------------------------------------

MAIN = """
unqualified-search-registries = ["main.example"]
short-name-mode = "permissive"
credential-helpers = ["containers-auth.json", "pass"]

[[registry]]
prefix = "app.example"
location = "main-location.example"

[[registry]]
prefix = "keep.example"
location = "keep-location.example"

[aliases]
"one" = "main.example/one"
"two" = "main.example/two"
"three" = "main.example/three"
"""


def dropins(tmp_path: Path, files: dict[str, str]) -> Path:
    directory = tmp_path / "registries.conf.d"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_dropins_override_in_lexical_order(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", MAIN)
    directory = dropins(
        tmp_path,
        {
            "20-second.conf": (
                'unqualified-search-registries = ["second.example", "third.example"]\n'
                '[[registry]]\nprefix = "app.example"\nlocation = "second-location.example"\n'
                '[aliases]\n"two" = "second.example/two"\n'
            ),
            "10-first.conf": (
                'unqualified-search-registries = ["first.example"]\nshort-name-mode = "disabled"\n'
                '[[registry]]\nprefix = "app.example"\nlocation = "first-location.example"\ninsecure = true\n'
                '[aliases]\n"two" = "first.example/two"\n"three" = ""\n"four" = "first.example/four"\n'
            ),
            "30-not-a-dropin.conf.bak": 'unqualified-search-registries = ["ignored.example"]\n',
        },
    )
    (directory / "sub.conf").mkdir()  # directories are ignored, whatever their name
    conf = registries.read_config(main, str(directory))
    assert conf.files == (main, str(directory / "10-first.conf"), str(directory / "20-second.conf"))
    app = conf.find(parse_docker_reference("app.example/x"))
    assert app is not None and app.location == "second-location.example" and not app.insecure
    assert app.origin == str(directory / "20-second.conf") and app.line == 2
    keep = conf.find(parse_docker_reference("keep.example/x"))
    assert keep is not None and keep.origin == main
    assert conf.unqualified_search_registries == ("second.example", "third.example")
    assert conf.search_origin == str(directory / "20-second.conf")
    assert (conf.short_name_mode, conf.short_name_mode_origin) == (
        "disabled",
        str(directory / "10-first.conf"),
    )
    assert conf.credential_helpers == ("containers-auth.json", "pass")  # no drop-in sets them
    assert {name: str(a.value) for name, a in conf.aliases.items()} == {
        "one": "main.example/one",
        "two": "second.example/two",
        "four": "first.example/four",
    }  # "three" erased by an empty value


def test_dropin_empty_lists_reset(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", MAIN)
    directory = dropins(tmp_path, {"a.conf": "unqualified-search-registries = []\ncredential-helpers = []\n"})
    conf = registries.read_config(main, str(directory))
    assert conf.unqualified_search_registries == ()
    assert conf.credential_helpers == (registries.AUTH_FILE_HELPER,)  # the default when none are left


def test_dropins_without_main_file_and_missing_dir(tmp_path: Path) -> None:
    directory = dropins(tmp_path, {"a.conf": 'unqualified-search-registries = ["only.example"]\n'})
    conf = registries.read_config(str(tmp_path / "absent.conf"), str(directory))
    assert conf.unqualified_search_registries == ("only.example",)
    assert conf.credential_helpers == ("containers-auth.json",)
    assert registries.read_config("", str(tmp_path / "absent.d")) == registries.RegistriesConf(
        dropin_dir=str(tmp_path / "absent.d")
    )


def test_dropin_must_be_version_2(tmp_path: Path) -> None:
    directory = dropins(tmp_path, {"v1.conf": "# old\n[registries.search]\nregistries = ['a.io']\n"})
    with pytest.raises(InvalidArgument, match=r"v1\.conf:2: drop-in files must use the version 2 format"):
        registries.read_config("", str(directory))


# --------------------------------------------------------------------------------------------------
# Loading and reloading
# --------------------------------------------------------------------------------------------------


def bump(path: Path) -> None:
    """Make sure the change is visible to stat even on a coarse clock."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def search_of(config: registries.RegistriesConfig) -> tuple[str, ...]:
    return config.load().unqualified_search_registries


def test_dropin_added_edited_removed_takes_effect_at_next_load(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", 'unqualified-search-registries = ["main.example"]\n')
    directory = dropins(tmp_path, {})
    config = registries.RegistriesConfig(main, str(directory))
    first = config.load()
    assert first.unqualified_search_registries == ("main.example",)
    assert config.load() is first  # nothing changed: the same object, nothing re-read
    added = directory / "50-new.conf"
    added.write_text('unqualified-search-registries = ["added.example"]\n')
    assert search_of(config) == ("added.example",)
    added.write_text('unqualified-search-registries = ["edited.example"]\n')
    bump(added)
    assert search_of(config) == ("edited.example",)
    added.unlink()
    assert search_of(config) == ("main.example",)
    (tmp_path / "registries.conf").write_text('unqualified-search-registries = ["main2.example"]\n')
    bump(tmp_path / "registries.conf")
    assert search_of(config) == ("main2.example",)


def test_shared_load_and_auto_reload_off(tmp_path: Path) -> None:
    main = tmp_path / "registries.conf"
    write(main, 'unqualified-search-registries = ["a.example"]\n')
    directory = dropins(tmp_path, {})
    assert registries.config_for(str(main), str(directory)) is registries.config_for(
        str(main), str(directory)
    )
    assert registries.load(str(main), str(directory)).unqualified_search_registries == ("a.example",)
    config = registries.RegistriesConfig(str(main), str(directory))
    config.load()
    (directory / "b.conf").write_text('unqualified-search-registries = ["b.example"]\n')
    assert config.load(auto_reload=False).unqualified_search_registries == ("a.example",)
    assert config.reload(force=False).unqualified_search_registries == ("b.example",)


def test_bad_dropin_after_good_load_keeps_old_config_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    main = write(tmp_path / "registries.conf", 'unqualified-search-registries = ["good.example"]\n')
    directory = dropins(tmp_path, {})
    config = registries.RegistriesConfig(main, str(directory))
    good = config.load()
    bad = directory / "99-bad.conf"
    bad.write_text('[[registry]]\nprefix = "x.example"\nlocation = "y.example"\ninsecure = "yes"\n')
    caplog.set_level(logging.WARNING, logger="crio.core.images.registries")
    for _ in range(3):
        assert config.load() is good
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"{bad}:4: 'insecure' must be a bool, not string; keeping the registries configuration loaded before"
    ]
    # The same failure again after another write: no new warning; a different one: one more.
    bump(bad)
    assert config.load() is good
    bad.write_text("[[registry]\n")
    assert config.load() is good
    assert len(caplog.records) == 2 and f"{bad}:1:11: invalid TOML" in caplog.records[1].getMessage()
    # SIGHUP: reload raises so the daemon can log it, and the old configuration stays.
    with pytest.raises(InvalidArgument, match=r"99-bad\.conf:1:11"):
        config.reload(force=True)
    assert config.load() is good
    assert len(caplog.records) == 2
    # Fixed: the new configuration is used, without a warning.
    bad.write_text('unqualified-search-registries = ["fixed.example"]\n')
    assert search_of(config) == ("fixed.example",)
    assert config.reload().unqualified_search_registries == ("fixed.example",)
    assert len(caplog.records) == 2


def test_bad_config_without_a_good_one_raises(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", 'short-name-mode = "sometimes"\n')
    config = registries.RegistriesConfig(main, "")
    for _ in range(2):
        with pytest.raises(InvalidArgument, match=r"registries\.conf:1: invalid short-name-mode 'sometimes'"):
            config.load()
    with pytest.raises(InvalidArgument, match="invalid short-name-mode"):
        registries.validate(main, "")
    write(tmp_path / "registries.conf", 'short-name-mode = "disabled"\n')
    assert registries.validate(main, "").short_name_mode == "disabled"
    # validate primed the shared configuration.
    assert registries.load(main, "").short_name_mode == "disabled"


def test_unreadable_dropin_dir(tmp_path: Path) -> None:
    not_a_dir = write(tmp_path / "file", "")
    assert registries.read_config("", not_a_dir).files == ()


# --------------------------------------------------------------------------------------------------
# Errors with file, line and column
# --------------------------------------------------------------------------------------------------


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "registries.conf", '# comment\n[[registry]]\nlocation = "a.io"\nprefix "b.io"\n')
    with pytest.raises(InvalidArgument) as info:
        registries.read_config(path)
    assert str(info.value) == f"{path}:4:8: invalid TOML: Expected '=' after a key in a key/value pair"


def test_toml_error_at_end_of_document(tmp_path: Path) -> None:
    path = write(tmp_path / "registries.conf", 'a = 1\nb = [\n"x",\n')
    with pytest.raises(InvalidArgument, match=rf"^{path}:3: invalid TOML: .*end of document"):
        registries.read_config(path)


SEMANTIC = """\
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "one.example"

[[registry]]
prefix = "two.example"
location = "two.example/path"

[[registry.mirror]]
location = "m1.example"

[[registry.mirror]]
location = "m2.example"
insecure = true

[[registry]]
location = "three.example"
"""


@pytest.mark.parametrize(
    ("replace", "by", "line", "message"),
    [
        ('location = "three.example"', 'location = "Three_Example"', 18, "invalid location 'Three_Example'"),
        (
            'location = "three.example"',
            'location = "https://three.example"',
            18,
            "URI schemes are not supported",
        ),
        (
            'location = "three.example"',
            'location = "three.example"\nblocked = 1',
            19,
            "'blocked' must be a bool",
        ),
        (
            'location = "three.example"',
            'location = "one.example"',
            17,
            "prefix 'one.example' is already defined at line 3",
        ),
        (
            'location = "three.example"',
            'location = "one.example/x"\nprefix = "one.example"',
            17,
            "already defined at line 3",
        ),
        ('location = "three.example"', 'prefix = "three.example"', 18, "needs a 'location'"),
        ('location = "three.example"', 'prefix = "*.three/x"', 18, "a wildcard must be '*.domain'"),
        ('location = "three.example"', "insecure = true", 17, "needs a 'location'"),
        (
            'location = "three.example"',
            'location = "two.example/path"\nprefix = "x.example"\ninsecure = true',
            17,
            "'two.example/path' is defined more than once with conflicting 'insecure' settings (see line 6)",
        ),
        (
            'location = "m2.example"\n',
            'location = "m2.example"\npull-from-mirror = "sometimes"\n',
            15,
            "invalid pull-from-mirror 'sometimes'",
        ),
        (
            'location = "m2.example"\n',
            'pull-from-mirror = "all"\n',
            13,
            "mirror #2 of prefix 'two.example' needs",
        ),
        (
            'location = "m1.example"',
            'location = "m1.example"\ninsecure = "no"',
            12,
            "'insecure' must be a bool",
        ),
        (
            'location = "two.example/path"\n\n[[registry.mirror]]\nlocation = "m1.example"\n',
            'location = "two.example/path"\nmirror-by-digest-only = true\n\n[[registry.mirror]]\n'
            'location = "m1.example"\npull-from-mirror = "all"\n',
            13,
            "sets mirror-by-digest-only, so its mirrors cannot set pull-from-mirror",
        ),
        (
            'location = "two.example/path"',
            'location = "two.example/path"\npull-from-mirror = "all"',
            9,
            "'pull-from-mirror' belongs in [[registry.mirror]] tables",
        ),
        ('["docker.io"]', '["docker.io/library"]', 1, "'docker.io/library' is not a host[:port]"),
        ('["docker.io"]', '["docker.io"]\nshort-name-mode = "prompt"', 2, "invalid short-name-mode 'prompt'"),
        (
            '["docker.io"]',
            '["docker.io"]\ncredential-helpers = "pass"',
            2,
            "'credential-helpers' must be a list",
        ),
        (
            'location = "three.example"\n',
            'location = "three.example"\n[aliases]\n"ok" = "q.io/ok"\n"bad" = "nodomain"\n',
            21,
            "[aliases] 'bad': invalid alias 'nodomain': must contain a registry",
        ),
        (
            'location = "three.example"\n',
            'location = "three.example"\n[aliases]\n  "quay.io/x" = "q.io/x"\n',
            20,
            "[aliases] 'quay.io/x': a short name must not contain a registry",
        ),
        (
            'location = "three.example"\n',
            'location = "three.example"\n[aliases]\n"x:1" = "q.io/x"\n',
            20,
            "must not contain a tag",
        ),
        (
            'location = "three.example"\n',
            'location = "three.example"\n[aliases]\n"x" = "q.io/x:1"\n',
            20,
            "invalid alias 'q.io/x:1': must not contain a tag",
        ),
        (
            'location = "three.example"\n',
            f'location = "three.example"\n[aliases]\n"x" = "q.io/x@{D256}"\n',
            20,
            "must not contain a digest",
        ),
        (
            'location = "three.example"\n',
            'location = "three.example"\n[aliases]\n"x" = 1\n',
            20,
            "the value must be a string",
        ),
        (
            'unqualified-search-registries = ["docker.io"]',
            '[registries.search]\nregistries = ["a.io"]',
            1,
            "mixes version 1 [registries.*] tables with version 2 keys",
        ),
    ],
)
def test_semantic_errors_name_the_line(
    tmp_path: Path, replace: str, by: str, line: int, message: str
) -> None:
    assert replace in SEMANTIC
    path = write(tmp_path / "registries.conf", SEMANTIC.replace(replace, by, 1))
    with pytest.raises(InvalidArgument) as info:
        registries.read_config(path)
    assert str(info.value).startswith(f"{path}:{line}: "), str(info.value)
    assert message in str(info.value)


def test_error_in_dropin_names_the_dropin(tmp_path: Path) -> None:
    main = write(tmp_path / "registries.conf", SEMANTIC)
    directory = dropins(tmp_path, {"a.conf": '\n\n[[registry]]\nprefix = "x.example"\n'})
    with pytest.raises(
        InvalidArgument, match=rf"^{directory / 'a.conf'}:4: prefix 'x.example' needs a 'location'"
    ):
        registries.read_config(main, str(directory))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('\nregistry = [{prefix = "a.io"}]\n', 2, "prefix 'a.io' needs a 'location'"),
        (
            '\nregistry = [{location = "a.io", mirror = [{insecure = true}]}]\n',
            2,
            "mirror #1 of prefix 'a.io'",
        ),
        (
            '[[registry]]\nlocation = "a.io"\nmirror = [{location = "m.io", insecure = 1}]\n',
            1,
            "must be a bool",
        ),
        ("\n\nregistry = 1\n", 3, "'registry' must be a list, not integer"),
        ("\n\n[aliases]\nx = 1\n", 4, "must be a string"),
    ],
)
def test_inline_tables_errors_name_the_nearest_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path / "r.conf", text)
    with pytest.raises(InvalidArgument) as info:
        registries.read_config(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_version1_file_with_lines_and_merge(tmp_path: Path) -> None:
    path = write(
        tmp_path / "v1.conf",
        "[registries.search]\nregistries = ['docker.io', 'quay.io/']\n"
        "[registries.insecure]\nregistries = ['127.0.0.1:5000', 'both.example']\n"
        "[registries.block]\nregistries = ['both.example']\n",
    )
    conf = registries.read_config(path)
    assert conf.unqualified_search_registries == ("docker.io", "quay.io")
    both = conf.find(parse_docker_reference("both.example/x"))
    assert both == Registry("both.example", "both.example", insecure=True, blocked=True)
    assert both.origin == path and both.line == 5
    bad = write(
        tmp_path / "v1-bad.conf",
        "[registries.search]\nregistries = []\n[registries.block]\nregistries = ['a/B']\n",
    )
    with pytest.raises(InvalidArgument, match=rf"^{bad}:3: invalid registry 'a/B'"):
        registries.read_config(bad)


def test_credential_helpers_kept(tmp_path: Path) -> None:
    conf = registries.read_config(
        write(tmp_path / "r.conf", 'credential-helpers = ["containers-auth.json", "pass"]\n')
    )
    assert conf.credential_helpers == ("containers-auth.json", "pass")
    assert registries.read_config(write(tmp_path / "e.conf", "")).credential_helpers == (
        "containers-auth.json",
    )


def test_parse_single_text_and_defaults() -> None:
    conf = registries.parse('[[registry]]\nlocation = "a.io/"\n', "mem.conf")
    assert conf.registries == (Registry("a.io", "a.io"),)  # trailing slashes dropped
    assert registries.DEFAULT_DROPIN_DIR == "/etc/containers/registries.conf.d"
    assert conf.sources == "mem.conf"

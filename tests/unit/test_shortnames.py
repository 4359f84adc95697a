"""Short names: aliases, unqualified-search registries, short-name-mode and local-store candidates, read
from real registries.conf files and drop-ins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.images import registries
from crio.core.images.registries import RegistriesConf
from crio.core.images.shortnames import (
    MODE_OVERRIDE_ORIGIN,
    ShortNameResolution,
    is_short_name,
    local_candidates,
    resolve_short_name,
)

D256 = "sha256:" + "d" * 64


def conf_of(tmp_path: Path, text: str, dropins: dict[str, str] | None = None) -> RegistriesConf:
    main = tmp_path / "registries.conf"
    main.write_text(text)
    directory = tmp_path / "registries.conf.d"
    directory.mkdir(exist_ok=True)
    for name, content in (dropins or {}).items():
        (directory / name).write_text(content)
    return registries.read_config(str(main), str(directory))


def names(resolution: ShortNameResolution) -> list[str]:
    return [str(c) for c in resolution.candidates]


@pytest.mark.parametrize(
    ("text", "short"),
    [
        ("busybox", True),
        ("busybox:1.36", True),
        (f"busybox@{D256}", True),
        ("library/busybox", True),
        ("user/app:v1", True),
        ("a/b/c", True),
        ("localhost", True),  # a repository called localhost
        ("docker.io/busybox", False),
        ("quay.io/crio/x:1", False),
        ("localhost/app", False),
        ("localhost:5000/app", False),
        ("registry:5000/app", False),
        ("127.0.0.1:5000/busybox", False),
    ],
)
def test_is_short_name(text: str, short: bool) -> None:
    assert is_short_name(text) is short


TWO = 'unqualified-search-registries = ["127.0.0.1:5000", "quay.io"]\n'
ONE = 'unqualified-search-registries = ["docker.io"]\n'


def test_fully_qualified_is_itself(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, TWO)
    assert names(resolve_short_name("quay.io/crio/x", conf)) == ["quay.io/crio/x:latest"]
    assert names(resolve_short_name("docker.io/busybox", conf)) == ["docker.io/library/busybox:latest"]
    resolution = resolve_short_name(f"localhost:5000/a@{D256}", conf)
    assert names(resolution) == [f"localhost:5000/a@{D256}"] and not resolution.alias
    assert resolution.mode == "enforcing"


def test_enforcing_with_no_candidates(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, "# nothing\n")
    with pytest.raises(FailedPrecondition) as info:
        resolve_short_name("busybox", conf)
    message = str(info.value)
    assert message.startswith(
        'short name "busybox" did not match any alias and no unqualified-search-registries'
    )
    assert str(tmp_path / "registries.conf") in message


def test_no_candidates_names_the_file_that_emptied_the_list(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, TWO, {"50-empty.conf": "unqualified-search-registries = []\n"})
    for mode in ("enforcing", "permissive", "disabled"):
        with pytest.raises(
            FailedPrecondition, match=r"configured in .*50-empty\.conf; use a fully-qualified"
        ):
            resolve_short_name("busybox", conf, mode)


def test_enforcing_with_one_candidate(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, ONE)
    resolution = resolve_short_name("busybox", conf)
    assert names(resolution) == ["docker.io/library/busybox:latest"]  # library/ added on docker.io
    assert (resolution.alias, resolution.mode) == (False, "enforcing")
    assert names(resolve_short_name("user/app:2", conf)) == ["docker.io/user/app:2"]
    assert names(resolve_short_name(f"busybox@{D256}", conf)) == [f"docker.io/library/busybox@{D256}"]


def test_enforcing_with_two_candidates_is_ambiguous(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, TWO + 'short-name-mode = "enforcing"\n')
    with pytest.raises(FailedPrecondition) as info:
        resolve_short_name("busybox", conf)
    assert str(info.value) == (
        'short name "busybox" is ambiguous: it could be 127.0.0.1:5000/busybox:latest, '
        "quay.io/busybox:latest "
        f'(short-name-mode "enforcing" in {tmp_path / "registries.conf"}); '
        "use a fully-qualified name or add an alias"
    )


def test_enforcing_is_the_default(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, TWO)
    assert conf.short_name_mode == ""
    with pytest.raises(
        FailedPrecondition, match=r'"enforcing" by default, unqualified-search-registries in '
    ):
        resolve_short_name("busybox:1", conf)


@pytest.mark.parametrize("mode", ["permissive", "disabled"])
def test_permissive_and_disabled_try_every_candidate(tmp_path: Path, mode: str) -> None:
    conf = conf_of(tmp_path, TWO + f'short-name-mode = "{mode}"\n')
    resolution = resolve_short_name("busybox:1.36", conf)
    assert names(resolution) == ["127.0.0.1:5000/busybox:1.36", "quay.io/busybox:1.36"]
    assert (resolution.alias, resolution.mode) == (False, mode)
    assert "unqualified-search-registries" in resolution.description


def test_mode_override_wins_over_registries_conf(tmp_path: Path) -> None:
    permissive = conf_of(tmp_path, TWO + 'short-name-mode = "permissive"\n')
    with pytest.raises(FailedPrecondition, match=re.escape(f'"enforcing" in {MODE_OVERRIDE_ORIGIN}')):
        resolve_short_name("busybox", permissive, mode_override="enforcing")
    enforcing = conf_of(tmp_path, TWO + 'short-name-mode = "enforcing"\n')
    assert len(resolve_short_name("busybox", enforcing, mode_override="disabled").candidates) == 2
    with pytest.raises(InvalidArgument, match="invalid short_name_mode 'prompt'"):
        resolve_short_name("busybox", enforcing, mode_override="prompt")


def test_short_name_mode_from_a_dropin(tmp_path: Path) -> None:
    conf = conf_of(
        tmp_path, TWO + 'short-name-mode = "enforcing"\n', {"a.conf": 'short-name-mode = "disabled"\n'}
    )
    assert resolve_short_name("busybox", conf).mode == "disabled"


ALIASES = TWO + (
    "[aliases]\n"
    '"busybox" = "docker.io/busybox"\n'
    '"library/redis" = "quay.io/mirrors/redis"\n'
    '"app" = "localhost:5000/team/app"\n'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", "docker.io/library/busybox:latest"),  # alias values are normalized
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        (f"busybox@{D256}", f"docker.io/library/busybox@{D256}"),
        (f"busybox:1.36@{D256}", f"docker.io/library/busybox:1.36@{D256}"),
        ("library/redis:7", "quay.io/mirrors/redis:7"),
        ("app", "localhost:5000/team/app:latest"),
    ],
)
def test_alias_keeps_the_requested_tag_and_digest(tmp_path: Path, text: str, expected: str) -> None:
    conf = conf_of(tmp_path, ALIASES)  # two search registries, enforcing: the alias still resolves
    resolution = resolve_short_name(text, conf)
    assert names(resolution) == [expected] and resolution.alias
    assert "as an alias" in resolution.description and "registries.conf:" in resolution.description


def test_alias_is_looked_up_as_written(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, ALIASES)
    # "redis" is not "library/redis": no alias, so the search registries apply.
    with pytest.raises(FailedPrecondition, match="ambiguous"):
        resolve_short_name("redis", conf)


def test_alias_erased_by_a_dropin_falls_back_to_search(tmp_path: Path) -> None:
    conf = conf_of(
        tmp_path,
        ALIASES,
        {
            "10-erase.conf": '[aliases]\n"busybox" = ""\n',
            "20-new.conf": '[aliases]\n"app" = "quay.io/new/app"\n',
        },
    )
    with pytest.raises(FailedPrecondition, match="ambiguous"):
        resolve_short_name("busybox", conf)
    assert names(resolve_short_name("app:1", conf)) == ["quay.io/new/app:1"]
    assert conf.aliases["app"].origin.endswith("20-new.conf")


def test_bad_names(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, TWO)
    for text in ("", "Busybox", "busybox:bad tag", "busybox@sha256:12", "a" * 64):
        with pytest.raises(InvalidArgument):
            resolve_short_name(text, conf)
        with pytest.raises(InvalidArgument):
            local_candidates(text, conf)


def test_search_registry_that_makes_an_invalid_reference(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, 'unqualified-search-registries = ["quay.io"]\n')
    with pytest.raises(InvalidArgument, match=r"unqualified-search registry 'quay\.io'"):
        resolve_short_name("Foo/bar", conf)  # docker.io accepts "Foo" as a host; quay.io/Foo/bar is invalid


def test_local_candidates(tmp_path: Path) -> None:
    conf = conf_of(tmp_path, ALIASES)
    assert local_candidates("busybox:1", conf) == [
        "docker.io/library/busybox:1",  # the alias (and the docker.io normalization: once)
        "127.0.0.1:5000/busybox:1",
        "quay.io/busybox:1",
    ]
    assert local_candidates("nginx", conf) == [
        "127.0.0.1:5000/nginx:latest",
        "quay.io/nginx:latest",
        "docker.io/library/nginx:latest",
    ]
    assert local_candidates(f"quay.io/x@{D256}", conf) == [f"quay.io/x@{D256}"]
    assert local_candidates("nginx", conf_of(tmp_path, ONE)) == ["docker.io/library/nginx:latest"]
    assert local_candidates("nginx", conf_of(tmp_path, "")) == ["docker.io/library/nginx:latest"]
    assert local_candidates("nginx", RegistriesConf()) == ["docker.io/library/nginx:latest"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('"quay.io/x" = "quay.io/x"', "a short name must not contain a registry"),
        ('"localhost/x" = "quay.io/x"', "a short name must not contain a registry"),
        ('"x:1" = "quay.io/x"', "a short name must not contain a tag"),
        (f'"x@{D256}" = "quay.io/x"', "a short name must not contain a digest"),
        ('"X" = "quay.io/x"', "invalid short name"),
        ('"x" = "x"', "must contain a registry and a repository"),
        ('"x" = "library/x"', "must contain a registry and a repository"),
        ('"x" = "quay.io/x:1"', "must not contain a tag"),
        (f'"x" = "quay.io/x@{D256}"', "must not contain a digest"),
        ('"x" = "quay.io/UPPER"', "invalid alias 'quay.io/UPPER'"),
    ],
)
def test_alias_validation_names_file_and_line(tmp_path: Path, entry: str, problem: str) -> None:
    main = tmp_path / "registries.conf"
    main.write_text(f'{TWO}\n[aliases]\n"fine" = "quay.io/fine"\n{entry}\n')
    with pytest.raises(InvalidArgument) as info:
        registries.read_config(str(main))
    assert str(info.value).startswith(f"{main}:5: [aliases] ")
    assert problem in str(info.value)


def test_aliases_from_a_dropin_are_validated_too(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"bad\.conf:2: \[aliases\] 'x': invalid alias 'x'"):
        conf_of(tmp_path, TWO, {"bad.conf": '[aliases]\n"x" = "x"\n'})

"""Command line, environment and working directory merging (kubelet/CRI-O rules)."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.crirecords import ContainerConfig, KeyValue
from crio.core.errors import InvalidArgument
from crio.core.spec.defaults import DEFAULT_PATH
from crio.core.spec.process import env_value, process_args, process_env, working_dir
from tests.unit.test_spec_builders import container_config, record

IMAGE = {"Entrypoint": ["/entry", "-e"], "Cmd": ["cmd", "-c"]}

# (CRI command, CRI args, image config, expected args)
ARGS: list[tuple[list[str], list[str], dict[str, Any], list[str]]] = [
    ([], [], IMAGE, ["/entry", "-e", "cmd", "-c"]),
    ([], ["a1"], IMAGE, ["/entry", "-e", "a1"]),  # args replace Cmd
    (["/bin/x"], [], IMAGE, ["/bin/x"]),  # a command drops Entrypoint and Cmd
    (["/bin/x"], ["a1", "a2"], IMAGE, ["/bin/x", "a1", "a2"]),
    ([], ["sh", "-c", "true"], {"Cmd": ["top"]}, ["sh", "-c", "true"]),
    ([], [], {"Cmd": ["top"]}, ["top"]),
    ([], [], {"Entrypoint": ["/pause"]}, ["/pause"]),
    (["/bin/x"], [], {}, ["/bin/x"]),
]


@pytest.mark.parametrize(("command", "args", "image", "expected"), ARGS)
def test_process_args(
    command: list[str], args: list[str], image: dict[str, Any], expected: list[str]
) -> None:
    assert process_args(container_config(command=command, args=args), image) == expected


def test_process_args_needs_something() -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        process_args(container_config(), {"Entrypoint": None, "Cmd": []})


def env(*pairs: tuple[str, str], tty: bool = False) -> ContainerConfig:
    return container_config(envs=[api.KeyValue(key=k, value=v.encode()) for k, v in pairs], tty=tty)


# (CRI config, image Env, expected environment)
ENVS: list[tuple[ContainerConfig, list[str], list[str]]] = [
    (env(), [], [DEFAULT_PATH, "HOSTNAME=h", "HOME=/home/u"]),
    (env(tty=True), [], [DEFAULT_PATH, "HOSTNAME=h", "TERM=xterm", "HOME=/home/u"]),
    (env(), ["PATH=/bin", "A=1"], ["PATH=/bin", "HOSTNAME=h", "A=1", "HOME=/home/u"]),
    (env(("A", "2"), ("B", "x=y")), ["A=1"], [DEFAULT_PATH, "HOSTNAME=h", "A=2", "HOME=/home/u", "B=x=y"]),
    (env(("HOME", "/custom")), ["HOME=/img"], [DEFAULT_PATH, "HOSTNAME=h", "HOME=/custom"]),
    (env(), ["HOME=/img"], [DEFAULT_PATH, "HOSTNAME=h", "HOME=/img"]),
    (env(("HOSTNAME", "mine")), [], [DEFAULT_PATH, "HOSTNAME=mine", "HOME=/home/u"]),
    (env(("EMPTY", "")), ["BARE"], [DEFAULT_PATH, "HOSTNAME=h", "BARE", "HOME=/home/u", "EMPTY="]),
]


@pytest.mark.parametrize(("config", "image_env", "expected"), ENVS)
def test_process_env(config: ContainerConfig, image_env: list[str], expected: list[str]) -> None:
    result = process_env(config, {"Env": image_env}, "h", "/home/u")
    assert sorted(result) == sorted(expected)
    assert result[0].startswith("PATH=")


# HOME with a real line feed or carriage return, wherever it comes from (CVE-2022-4318, CVE-2026-15809).
BAD_HOME: list[tuple[ContainerConfig, list[str], str]] = [
    (env(("HOME", "/x\nroot::0:0::/:/bin/sh")), [], "/home/u"),
    (env(("HOME", "/x\r")), [], "/home/u"),
    (env(), ["HOME=/img\n"], "/home/u"),
    (env(), [], "/from/passwd\r"),
]


@pytest.mark.parametrize(("config", "image_env", "home"), BAD_HOME)
def test_home_with_line_breaks_is_refused(config: ContainerConfig, image_env: list[str], home: str) -> None:
    with pytest.raises(InvalidArgument, match="HOME"):
        process_env(config, {"Env": image_env}, "h", home)


def test_literal_backslash_n_is_fine() -> None:
    result = process_env(env(("HOME", "/a\\nb")), {}, "h", "/")
    assert "HOME=/a\\nb" in result


@pytest.mark.parametrize(
    ("config", "image_env"),
    [(env(("", "v")), []), (env(("K", "a\0b")), []), (env(), ["=v"]), (env(), ["K=\0"])],
)
def test_bad_env_entries(config: ContainerConfig, image_env: list[str]) -> None:
    with pytest.raises(InvalidArgument, match="environment entry"):
        process_env(config, {"Env": image_env}, "h", "/")


@pytest.mark.parametrize(
    ("requested", "image_dir", "expected"),
    [("", "", "/"), ("", "/srv", "/srv"), ("", "srv/x/", "/srv/x"), ("/w//x/.", "/srv", "/w/x")],
)
def test_working_dir(requested: str, image_dir: str, expected: str) -> None:
    assert working_dir(container_config(working_dir=requested), {"WorkingDir": image_dir}) == expected


def test_relative_working_dir_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="working_dir"):
        working_dir(container_config(working_dir="rel"), {})


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        (record(api.KeyValue(key="K", value=b"plain")), "plain"),
        (record(api.KeyValue(key="K", value="snow \u2603".encode())), "snow \u2603"),
        (record(api.KeyValue(key="K", value=b"bin\xff")), "bin\ufffd"),  # not UTF-8: replaced
        (record(api.KeyValue(key="K")), ""),
    ],
)
def test_env_value_is_text_of_bytes(pair: KeyValue, expected: str) -> None:
    assert env_value(pair) == expected

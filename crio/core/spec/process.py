"""The container's command line, environment and working directory, merged from the CRI config and the
image config the way the kubelet expects (Docker's ENTRYPOINT/CMD rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crio.core.crirecords import ContainerConfig, KeyValue
from crio.core.errors import InvalidArgument
from crio.core.spec.defaults import DEFAULT_PATH
from crio.core.spec.paths import clean_absolute

_FORBIDDEN_IN_HOME = ("\n", "\r")


def process_args(config: ContainerConfig, image_config: Mapping[str, Any]) -> list[str]:
    """The process arguments.

    A CRI ``command`` replaces the image's Entrypoint and then the image's Cmd is ignored: the result is
    command + args. Without a command the image's Entrypoint stays, followed by the CRI ``args`` when given,
    else by the image's Cmd.
    """
    command = list(config.command)
    args = list(config.args)
    if not command:
        command = [str(a) for a in image_config.get("Entrypoint") or ()]
        if not args:
            args = [str(a) for a in image_config.get("Cmd") or ()]
    result = command + args
    if not result:
        raise InvalidArgument("no command specified: neither the container config nor the image has one")
    return result


def env_value(pair: KeyValue) -> str:
    """The value of a CRI ``KeyValue`` env entry as text. Its proto type is ``bytes`` (cri-api carries binary
    env values); bytes that are not UTF-8 are replaced (the OCI spec is JSON text), as containerd's Go JSON
    encoding does."""
    return pair.value.decode("utf-8", errors="replace")


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def _put(env: dict[str, str], entry: str, source: str) -> None:
    key = _env_key(entry)
    if not key or "\0" in entry:
        raise InvalidArgument(f"{source} environment entry {entry!r} has an empty key or a NUL byte")
    env[key] = entry


def process_env(
    config: ContainerConfig, image_config: Mapping[str, Any], hostname: str, home: str
) -> list[str]:
    """The environment: a default PATH, HOSTNAME and (with a tty) TERM, then the image's Env, then the CRI
    envs (see :func:`env_value`; each overriding by key in place), then HOME from ``home`` when nobody set it.

    A HOME holding a line feed or carriage return is refused: it would inject lines into files generated
    from it (CVE-2022-4318, CVE-2026-15809).
    """
    env: dict[str, str] = {}
    _put(env, DEFAULT_PATH, "default")
    if hostname:
        _put(env, f"HOSTNAME={hostname}", "default")
    if config.tty:
        _put(env, "TERM=xterm", "default")
    for entry in image_config.get("Env") or ():
        _put(env, str(entry), "image")
    for pair in config.envs:
        _put(env, f"{pair.key}={env_value(pair)}", "container")
    env.setdefault("HOME", f"HOME={home}")
    value = env["HOME"].partition("=")[2]
    if any(bad in value for bad in _FORBIDDEN_IN_HOME):
        raise InvalidArgument(f"invalid HOME environment {value!r}: line breaks are not allowed")
    return list(env.values())


def working_dir(config: ContainerConfig, image_config: Mapping[str, Any]) -> str:
    """The CRI working_dir, else the image's WorkingDir (made absolute), else "/"; a relative CRI one is
    refused (runc needs an absolute cwd)."""
    requested = config.working_dir
    if requested:
        if not requested.startswith("/"):
            raise InvalidArgument(f"working_dir {requested!r} is not an absolute path")
        return clean_absolute(requested)
    image_dir = str(image_config.get("WorkingDir") or "")
    return clean_absolute(image_dir) if image_dir else "/"

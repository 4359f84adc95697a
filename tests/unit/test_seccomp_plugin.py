"""The seccomp plugin's hooks and its localhost profiles: path validation (relative, missing, unreadable,
special files, malformed JSON, too large), caching by content, and which profile a request gets (nil is
unconfined, empty is RuntimeDefault, privileged ignores the profile)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crio.core.config import Config
from crio.core.errors import InvalidArgument, NotFound
from crio.core.types import SecurityRequest
from crio.plugins import seccomp as plugin
from crio.plugins.seccomp.localhost import ProfileCache, read_profile_file

BLOCK_CHMOD = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}],
}
SPEC_CAPS = {"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}}


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "block-chmod.json"
    path.write_text(json.dumps(BLOCK_CHMOD))
    return path


def container(context: dict[str, Any], privileged: bool = False) -> SecurityRequest:
    return SecurityRequest(kind="container", name="c", security_context=context, privileged=privileged)


def adjusted(request: SecurityRequest) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(json.dumps(SPEC_CAPS))
    spec["linux"] = {"seccomp": {"stale": True}}
    run(plugin.crio_security_adjust_spec(request=request, spec=spec))
    return spec


def run(pending: Awaitable[None] | None) -> None:
    """Await a hook's result (None: nothing to do)."""

    async def wait() -> None:
        if pending is not None:
            await pending

    asyncio.run(wait())


def make_fifo(directory: Path) -> str:
    os.mkfifo(directory / "fifo")
    return str(directory / "fifo")


# --------------------------------------------------------------------------------- localhost files


def test_reads_a_good_profile(profile_file: Path) -> None:
    assert json.loads(read_profile_file(str(profile_file))) == BLOCK_CHMOD


@pytest.mark.parametrize(
    ("arrange", "error", "message"),
    [
        (lambda d: "relative/profile.json", InvalidArgument, "not an absolute path"),
        (lambda d: "", InvalidArgument, "not an absolute path"),
        (lambda d: str(d / "absent.json"), NotFound, "does not exist"),
        (lambda d: str(d), InvalidArgument, "not a regular file"),
        (make_fifo, InvalidArgument, "not a regular file"),
        (lambda d: "/dev/zero", InvalidArgument, "not a regular file"),
        (
            lambda d: ((d / "big.json").write_bytes(b" " * (plugin_limit() + 1)), str(d / "big.json"))[1],
            InvalidArgument,
            "larger than",
        ),
    ],
)
def test_bad_localhost_paths(tmp_path: Path, arrange: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        read_profile_file(arrange(tmp_path))
    assert message in str(err.value)


def plugin_limit() -> int:
    from crio.plugins.seccomp.localhost import MAX_PROFILE_SIZE

    return MAX_PROFILE_SIZE


def test_unreadable_profile(profile_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def denied(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == str(profile_file):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InvalidArgument, match="cannot be read: Permission denied"):
        read_profile_file(str(profile_file))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod"], "action": "X"}]}', "action"),
    ],
)
def test_malformed_localhost_profiles(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(InvalidArgument) as err:
        ProfileCache().load(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_profiles_are_cached_by_content(tmp_path: Path, profile_file: Path) -> None:
    cache = ProfileCache(entries=2)
    first = cache.load(str(profile_file))
    copy = tmp_path / "copy.json"
    copy.write_bytes(profile_file.read_bytes())
    assert cache.load(str(copy)) is first and cache.parses == 1
    profile_file.write_text(json.dumps({**BLOCK_CHMOD, "defaultAction": "SCMP_ACT_LOG"}))
    assert cache.load(str(profile_file)).default_action == "SCMP_ACT_LOG" and cache.parses == 2
    for n in range(3):  # the oldest entries are dropped
        other = tmp_path / f"o{n}.json"
        other.write_text(json.dumps({**BLOCK_CHMOD, "defaultErrnoRet": None, "flags": [], "n": n}))
        cache.load(str(other))
    assert len(cache._parsed) == 2


# ------------------------------------------------------------------------------------------ hooks


def test_nil_profile_is_unconfined_until_configured() -> None:
    assert plugin.STATE.default_when_empty is False
    assert "seccomp" not in adjusted(container({}))["linux"]


@pytest.fixture
def restore_state() -> Iterator[None]:
    saved = plugin.STATE.default_when_empty, plugin.STATE.default, plugin.STATE.default_source
    yield
    plugin.STATE.default_when_empty, plugin.STATE.default, plugin.STATE.default_source = saved


@pytest.mark.parametrize("when_empty", [True, False])
@pytest.mark.usefixtures("restore_state")
def test_seccomp_use_default_when_empty(when_empty: bool) -> None:
    """The key decides what a nil profile gets; an explicit Unconfined and privileged stay unconfined."""
    values = {"seccomp_profile": "", "seccomp_use_default_when_empty": when_empty}
    config = Config(values={"crio.runtime": values}, runtimes={})
    plugin.crio_configure(config=config)
    nil = adjusted(container({}))["linux"]
    if when_empty:
        assert nil["seccomp"] == adjusted(container({"seccomp": {}}))["linux"]["seccomp"]
    else:
        assert "seccomp" not in nil
    assert "seccomp" not in adjusted(container({"seccomp": {"profile_type": "Unconfined"}}))["linux"]
    assert "seccomp" not in adjusted(container({}, privileged=True))["linux"]


def test_unconfined() -> None:
    assert "seccomp" not in adjusted(container({"seccomp": {"profile_type": "Unconfined"}}))["linux"]


@pytest.mark.parametrize("context", [{"seccomp": {}}, {"seccomp_profile_path": "runtime/default"}])
def test_empty_profile_is_runtime_default(context: dict[str, Any]) -> None:
    seccomp = adjusted(container(context))["linux"]["seccomp"]
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and len(seccomp["syscalls"]) > 10


def test_localhost_profile(profile_file: Path) -> None:
    request = container({"seccomp": {"profile_type": "Localhost", "localhost_ref": str(profile_file)}})
    run(plugin.crio_security_validate(request=request))
    assert adjusted(request)["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}],
    }
    deprecated = container({"seccomp_profile_path": f"localhost/{profile_file}"})
    assert adjusted(deprecated)["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"


def test_privileged_ignores_the_profile(tmp_path: Path) -> None:
    missing = {"seccomp": {"profile_type": "Localhost", "localhost_ref": str(tmp_path / "absent.json")}}
    request = container(missing, privileged=True)
    assert plugin.crio_security_validate(request=request) is None
    assert "seccomp" not in adjusted(request)["linux"]


def test_validate_refuses_a_missing_localhost_profile(tmp_path: Path) -> None:
    request = container({"seccomp": {"profile_type": "Localhost", "localhost_ref": str(tmp_path / "x.json")}})
    pending = plugin.crio_security_validate(request=request)
    assert pending is not None
    with pytest.raises(NotFound):
        run(pending)


def test_configured_runtime_default(tmp_path: Path, profile_file: Path) -> None:
    state = plugin.SeccompState()
    state.configure(str(profile_file))
    assert state.default_source == str(profile_file)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InvalidArgument):
        state.configure(str(bad))
    state.configure("")
    assert state.default_source == plugin.BUILTIN


def test_features() -> None:
    assert plugin.crio_security_features()["seccomp"]["enabled"] is True

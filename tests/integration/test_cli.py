"""The crio command line: config round trip, bad configs, plugin listing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import CRIO

BUILT_INS = ("runc", "storage_overlay", "storage_vfs", "cni", "seccomp", "apparmor", "selinux")


def crio(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CRIO, *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def test_config_round_trip(tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    base = tmp_path / "crio.conf"
    base.write_text('[crio.runtime.runtimes.crun]\nruntime_path = "/usr/bin/crun"\n')
    first = crio(
        "--config", str(base), "--config-dir", str(empty), "--debug", "--listen", "/run/x.sock", "config"
    )
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "saved.conf"
    saved.write_text(first.stdout)
    second = crio("--config", str(saved), "--config-dir", str(empty), "config")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert 'listen = "/run/x.sock"' in first.stdout
    assert 'log_level = "debug"' in first.stdout
    assert "[crio.runtime.runtimes.crun]" in first.stdout


def test_bad_config_stops_start_up_naming_file_and_key(tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    bad = tmp_path / "bad.conf"
    bad.write_text("[crio.runtime]\nlog_level = 3\n")
    result = crio("--config", str(bad), "--config-dir", str(empty))
    assert result.returncode == 1
    assert f"{bad}: crio.runtime.log_level: expected a string, got integer 3" in result.stderr
    dropin = tmp_path / "d"
    dropin.mkdir()
    (dropin / "10-x.conf").write_text('[crio.network]\nplugin_dir = ["/x"]\n')
    result = crio("--config", str(tmp_path / "none.conf"), "--config-dir", str(dropin))
    assert result.returncode == 1 and "none.conf: config file does not exist" in result.stderr
    good = tmp_path / "good.conf"
    good.write_text("")
    result = crio("--config", str(good), "--config-dir", str(dropin))
    assert result.returncode == 1
    assert f"{dropin}/10-x.conf: unknown key crio.network.plugin_dir" in result.stderr


def test_unusable_runtime_path_stops_start_up(tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    conf = tmp_path / "crio.conf"
    conf.write_text(f'[crio]\nroot = "{tmp_path}/r"\nrunroot = "{tmp_path}/rr"\n')
    result = crio(
        "--config",
        str(conf),
        "--config-dir",
        str(empty),
        "--runtime",
        "/no/such/runc",
        "--listen",
        str(tmp_path / "s.sock"),
    )
    assert result.returncode == 1
    assert (
        "--runtime: crio.runtime.runtimes.runc.runtime_path: '/no/such/runc' is not an executable file"
        in (result.stderr)
    )
    assert not (tmp_path / "s.sock").exists()


def test_plugins_lists_built_ins_and_the_test_plugin(hello_plugin_path: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    (tmp_path / "c.conf").write_text("")
    result = crio(
        "--config",
        str(tmp_path / "c.conf"),
        "--config-dir",
        str(empty),
        "plugins",
        env={"PYTHONPATH": hello_plugin_path},
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:]}
    for name in BUILT_INS:
        assert rows[name] in ("loaded", "skipped"), result.stdout
    assert rows["runc"] == "loaded" and rows["cni"] == "loaded"
    assert rows["hello"] == "loaded"
    assert "crio-hello-plugin 1.0.0" in result.stdout
    assert "AppArmor is not enabled" in result.stdout or rows["apparmor"] == "loaded"
    disabled = tmp_path / "off.conf"
    disabled.write_text('[crio.plugins]\ndisabled = ["hello"]\n')
    result = crio(
        "--config",
        str(disabled),
        "--config-dir",
        str(empty),
        "plugins",
        env={"PYTHONPATH": hello_plugin_path},
    )
    assert "listed in crio.plugins.disabled" in result.stdout


def test_ocid_is_an_alias() -> None:
    ocid = Path(CRIO).with_name("ocid")
    result = subprocess.run([str(ocid), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("crio, version")


def test_runtime_type_without_a_plugin_stops_start_up(tmp_path: Path) -> None:
    empty = tmp_path / "empty.d"
    empty.mkdir()
    conf = tmp_path / "crio.conf"
    conf.write_text(
        f'[crio]\nroot = "{tmp_path}/r"\nrunroot = "{tmp_path}/rr"\n'
        f'[crio.api]\nlisten = "{tmp_path}/s.sock"\n'
        '[crio.runtime.runtimes.vm]\nruntime_path = "/bin/true"\nruntime_type = "vm"\n'
    )
    result = crio("--config", str(conf), "--config-dir", str(empty))
    assert result.returncode == 1
    assert f"{conf}: crio.runtime.runtimes.vm.runtime_type: no loaded plugin drives runtime type 'vm'" in (
        result.stderr
    )

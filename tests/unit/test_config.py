"""Configuration loading: precedence, validation messages, known-but-unsupported keys, round trip."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from crio.core import config as configmod
from crio.core.config import ConfigError, check_paths, load, load_with_flags


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def empty_dir(tmp_path: Path) -> str:
    d = tmp_path / "conf.d"
    d.mkdir()
    return str(d)


def test_defaults_when_no_files(tmp_path: Path, empty_dir: str) -> None:
    cfg = load(write(tmp_path / "crio.conf", ""), empty_dir)
    assert cfg.listen == "/var/run/crio/crio.sock"
    assert cfg.get("crio.root") == "/var/lib/containers/storage"
    assert cfg.get("crio.runroot") == "/run/containers/storage"
    assert cfg.get("crio.runtime.cgroup_manager") == "cgroupfs"
    assert cfg.default_runtime == "runc"
    assert cfg.runtimes["runc"]["runtime_type"] == "oci"
    assert cfg.source("crio.api.listen") == "default"


def test_explicit_missing_file_and_dir_are_errors(tmp_path: Path, empty_dir: str) -> None:
    with pytest.raises(ConfigError, match=r"nope\.conf: config file does not exist"):
        load(str(tmp_path / "nope.conf"), empty_dir)
    with pytest.raises(ConfigError, match="config directory does not exist"):
        load(write(tmp_path / "c.conf", ""), str(tmp_path / "missing.d"))


def test_drop_ins_apply_in_lexical_order_then_flags(tmp_path: Path) -> None:
    main = write(tmp_path / "crio.conf", '[crio.api]\nlisten = "/run/a.sock"\n[crio]\nroot = "/a"\n')
    d = tmp_path / "d"
    write(d / "20-b.conf", '[crio.api]\nlisten = "/run/b.sock"\n')
    write(d / "10-c.conf", '[crio.api]\nlisten = "/run/c.sock"\n[crio]\nroot = "/c"\n')
    write(d / "30-ignored.txt", "this is not toml = = =")
    cfg = load(main, str(d))
    assert cfg.listen == "/run/b.sock"
    assert cfg.source("crio.api.listen") == str(d / "20-b.conf")
    assert cfg.get("crio.root") == "/c"
    flagged = load_with_flags(main, str(d), {"listen": "/run/flag.sock", "cni_plugin_dir": ("/x", "/y")})
    assert flagged.listen == "/run/flag.sock"
    assert flagged.source("crio.api.listen") == "--listen"
    assert flagged.get("crio.network.plugin_dirs") == ["/x", "/y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[crio.api]\nlistn = "/x"\n', r"bad\.conf: unknown key crio\.api\.listn"),
        ("[crio.apii]\nlisten = 1\n", r"bad\.conf: unknown table \[crio\.apii\]"),
        ("[crio.api]\nlisten = 5\n", r"bad\.conf: crio\.api\.listen: expected a string, got integer 5"),
        (
            '[crio.metrics]\nmetrics_port = "9090"\n',
            r"crio\.metrics\.metrics_port: expected a integer, got string",
        ),
        ("[crio.metrics]\nenable_metrics = 1\n", r"crio\.metrics\.enable_metrics: expected a boolean"),
        ('[crio]\nstorage_option = "a"\n', r"crio\.storage_option: expected a list of strings"),
        ('[crio]\nroot = "relative/dir"\n', r"crio\.root: 'relative/dir' is not an absolute path"),
        ('[crio.runtime]\ncgroup_manager = "systemd"\n', r"'systemd' is not one of cgroupfs"),
        ('[crio.runtime]\nlog_level = "loud"\n', r"crio\.runtime\.log_level: 'loud' is not one of"),
        (
            '[crio.runtime.runtimes.kata]\nruntime_pth = "/x"\n',
            r"unknown key crio\.runtime\.runtimes\.kata\.runtime_pth",
        ),
        ('[crio.runtime]\ndefault_runtime = "kata"\n', r"no \[crio\.runtime\.runtimes\.kata\] table"),
        ("[crio.api\n", r"bad\.conf: invalid TOML"),
        ("[other]\nx = 1\n", r"unknown top-level key or table 'other'"),
        ("[crio.stats]\nstats_collection_period = -1\n", r"must not be negative"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, empty_dir: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path / "bad.conf", text), empty_dir)


def test_known_cri_o_keys_are_reported_not_rejected(tmp_path: Path, empty_dir: str) -> None:
    text = (
        "[crio.runtime]\nselinux = true\nconmon_cgroup = 'pod'\n"
        "[crio.runtime.runtimes.runc]\nmonitor_cgroup = 'system.slice'\n"
        "[crio.runtime.workloads.management]\nactivation_annotation = 'x'\n"
        "[crio.nri]\nenable_nri = true\n"
        "[crio.image]\nsignature_policy = '/etc/containers/other.json'\n"
    )
    cfg = load(write(tmp_path / "crio.conf", text), empty_dir)
    notices = "\n".join(configmod.effective_notices(cfg))
    for name in (
        "crio.runtime.selinux",
        "crio.runtime.conmon_cgroup",
        "crio.runtime.runtimes.runc.monitor_cgroup",
        "[crio.runtime.workloads]",
        "crio.nri.enable_nri",
    ):
        assert name in notices
    assert "signature_policy" not in notices  # effective since issue 8
    assert cfg.get("crio.image.signature_policy") == "/etc/containers/other.json"


def test_round_trip_is_stable(tmp_path: Path, empty_dir: str) -> None:
    text = (
        '[crio]\nstorage_option = ["overlay.mountopt=nodev"]\n'
        '[crio.runtime.runtimes.crun]\nruntime_path = "/usr/bin/crun"\nmonitor_env = ["A=b"]\n'
        '[crio.network]\nplugin_dirs = ["/usr/lib/cni"]\n'
    )
    first = load_with_flags(
        write(tmp_path / "crio.conf", text), empty_dir, {"runtime": "/usr/sbin/runc", "debug": True}
    )
    dumped = write(tmp_path / "dumped.conf", first.to_toml())
    second = load(dumped, empty_dir)
    assert second.to_dict() == first.to_dict()
    assert second.to_toml() == first.to_toml()
    assert second.runtimes["runc"]["runtime_path"] == "/usr/sbin/runc"
    assert second.runtimes["crun"]["monitor_env"] == ["A=b"]
    assert second.log_level == "debug"


def test_runtime_flag_targets_the_effective_default_runtime(tmp_path: Path, empty_dir: str) -> None:
    text = '[crio.runtime]\ndefault_runtime = "crun"\n[crio.runtime.runtimes.crun]\n'
    cfg = load_with_flags(write(tmp_path / "crio.conf", text), empty_dir, {"runtime": "/opt/bin/crun"})
    assert cfg.runtimes["crun"]["runtime_path"] == "/opt/bin/crun"
    assert cfg.runtimes["runc"]["runtime_path"] == ""
    assert cfg.source("crio.runtime.runtimes.crun.runtime_path") == "--runtime"


def test_reloadable_changes(tmp_path: Path, empty_dir: str) -> None:
    old = load(write(tmp_path / "a.conf", ""), empty_dir)
    new = load(
        write(tmp_path / "b.conf", '[crio.runtime]\nlog_level = "debug"\n[crio]\nroot = "/other"\n'),
        empty_dir,
    )
    changed, restart = old.reloadable_changes(new)
    assert changed == {"crio.runtime.log_level": "debug"}
    assert restart == ["crio.root"]


def test_check_paths_creates_dirs_and_rejects_missing_executables(tmp_path: Path, empty_dir: str) -> None:
    fake = tmp_path / "bin" / "fake-runtime"
    write(fake, "#!/bin/sh\n")
    os.chmod(fake, stat.S_IRWXU)
    dirs = (
        f'[crio]\nroot = "{tmp_path}/r"\nrunroot = "{tmp_path}/rr"\nlog_dir = "{tmp_path}/logs"\n'
        f'[crio.runtime]\ncontainer_exits_dir = "{tmp_path}/exits"\nconmon = "{fake}"\n'
        f'container_attach_socket_dir = "{tmp_path}/att"\nnamespaces_dir = "{tmp_path}/ns"\n'
    )
    good = load(
        write(tmp_path / "good.conf", dirs + f'[crio.runtime.runtimes.runc]\nruntime_path = "{fake}"\n'),
        empty_dir,
    )
    check_paths(good)
    assert (tmp_path / "r").is_dir() and (tmp_path / "logs").is_dir()
    bad_path = write(
        tmp_path / "bad.conf", dirs + '[crio.runtime.runtimes.runc]\nruntime_path = "/nonexistent/runc"\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"bad\.conf: crio\.runtime\.runtimes\.runc\.runtime_path: '/nonexistent/runc' is not",
    ):
        check_paths(load(bad_path, empty_dir))
    not_dir = write(tmp_path / "file-not-dir", "")
    clash = write(tmp_path / "clash.conf", f'[crio]\nroot = "{not_dir}"\n')
    with pytest.raises(ConfigError, match=r"clash\.conf: crio\.root: cannot create directory"):
        check_paths(load(clash, empty_dir))
    policy = write(tmp_path / "policy.conf", f'[crio.image]\nsignature_policy = "{tmp_path}/none.json"\n')
    with pytest.raises(ConfigError, match=r"crio\.image\.signature_policy: file .* does not exist"):
        check_paths(load(policy, empty_dir))

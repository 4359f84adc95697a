"""bench's ``--baseline REF`` plumbing without root or daemons: option parsing, the ratio rows and verdicts of
the latency tables, and the checkout of a revision that a second daemon imports through PYTHONPATH."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import latency
from bench.common import REPO, imported_from
from bench.cri import Timings
from bench.side_by_side import BASELINE, SideBySide, checkout


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    return latency.parse_arguments(parser, list(argv))


def test_baseline_adds_its_runtime() -> None:
    assert parse().runtime_names == ["crio", "containerd"]
    assert parse("--baseline", "abc").runtime_names == ["crio", "containerd", BASELINE]
    args = parse("--runtimes", f"crio,{BASELINE}", "--baseline", "abc")
    assert (args.runtime_names, args.baseline) == (["crio", BASELINE], "abc")


@pytest.mark.parametrize(
    "argv", [("--runtimes", f"crio,{BASELINE}"), ("--runtimes", "crio,cri-o"), ("--runtimes", "crio,crio")]
)
def test_bad_runtimes_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_side_by_side_checks_the_baseline() -> None:
    with pytest.raises(ValueError, match="baseline revision"):
        SideBySide(["crio", BASELINE])
    with pytest.raises(ValueError, match="unknown"):
        SideBySide(["crio", "crio-old"], baseline="abc")
    side = SideBySide(["crio"], baseline="abc")
    shutil.rmtree(side.base)
    assert side.names == ["crio", BASELINE]


def phase(runtime: str, mode: str, milliseconds: list[float]) -> latency.Phase:
    timings = []
    for value in milliseconds:
        timing = Timings()
        timing.add("RunPodSandbox", value / 1000)
        timings.append(timing)
    return latency.Phase(runtime, mode, timings, wall_seconds=1.0)


def test_ratio_rows_for_the_peers_present(capsys: pytest.CaptureFixture[str]) -> None:
    phases = [
        phase("crio", latency.SEQUENTIAL, [100.0] * 10),
        phase(BASELINE, latency.SEQUENTIAL, [98.0] * 10),  # crio 2 % slower: within 5 %
        phase("crio", "10 parallel", [120.0] * 10),
        phase(BASELINE, "10 parallel", [100.0] * 10),  # 20 % slower
    ]
    verdicts = latency.print_tables("Pods", phases, ["RunPodSandbox"], ["RunPodSandbox"])
    out = capsys.readouterr().out
    assert f"| crio/{BASELINE} | sequential " in out
    assert "crio/containerd" not in out
    assert len(verdicts) == 2
    assert verdicts[0].startswith("sequential: p50 1.02x") and "within 5 %" in verdicts[0]
    assert verdicts[1].startswith("10 parallel: p50 1.20x") and "SLOWER by more than 5 %" in verdicts[1]


def test_both_ratio_rows(capsys: pytest.CaptureFixture[str]) -> None:
    phases = [
        phase("crio", latency.SEQUENTIAL, [100.0] * 5),
        phase("containerd", latency.SEQUENTIAL, [200.0] * 5),
        phase(BASELINE, latency.SEQUENTIAL, [100.0] * 5),
    ]
    verdicts = latency.print_tables("Pods", phases, ["RunPodSandbox"], ())
    out = capsys.readouterr().out
    assert "| crio/containerd " in out and f"| crio/{BASELINE} " in out
    assert "meets the aim" in verdicts[0] and "within 5 %" in verdicts[1]


def test_baseline_verdict_threshold() -> None:
    assert latency.baseline_verdict(1.05) == "within 5 %"
    assert latency.baseline_verdict(1.051) == "SLOWER by more than 5 %"


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs git and the repository"
)
def test_checkout_is_what_the_daemon_imports(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tree = tmp_path / "src"
    got = checkout("HEAD", tree)
    assert got.commit == head
    assert (tree / "crio" / "core" / "daemon.py").is_file()
    modules = imported_from({**os.environ, "PYTHONPATH": str(tree)})
    assert modules and all(path.is_relative_to(tree.resolve()) for path in modules.values())
    with pytest.raises(ValueError, match="not a commit"):
        checkout("no-such-revision-here", tmp_path / "other")

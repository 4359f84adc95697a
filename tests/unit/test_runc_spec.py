"""config.json adjustments before create: oom_score_adj is never below the daemon's own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from crio.plugins.runc import spec


def test_clamp_raises_only_values_below_the_floor() -> None:
    low = {"process": {"oomScoreAdj": -998}}
    assert spec.clamp_oom_score_adj(low, -500) == -998
    assert low["process"]["oomScoreAdj"] == -500
    cases: tuple[dict[str, Any], ...] = (
        {"process": {"oomScoreAdj": 100}},
        {"process": {}},
        {},
        {"process": {"oomScoreAdj": True}},
    )
    for unchanged in cases:
        before = json.dumps(unchanged)
        assert spec.clamp_oom_score_adj(unchanged, 0) is None
        assert json.dumps(unchanged) == before


def test_prepare_rewrites_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"process": {"oomScoreAdj": -1000}, "linux": {"cgroupsPath": "/pod/ctr"}})
    )
    own = spec.own_oom_score_adj()
    with caplog.at_level(logging.INFO, logger="crio.plugins.runc.spec"):
        loaded = spec.prepare(tmp_path, "ctr1")
    assert loaded["process"]["oomScoreAdj"] == own
    assert json.loads((tmp_path / "config.json").read_text())["process"]["oomScoreAdj"] == own
    assert "oomScoreAdj -1000 raised to" in caplog.text
    assert spec.cgroups_path(loaded) == "/pod/ctr"
    assert spec.cgroups_path({}) == ""
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_prepare_leaves_a_fine_spec_alone(tmp_path: Path) -> None:
    text = json.dumps({"process": {"oomScoreAdj": 999}}, indent=4)
    (tmp_path / "config.json").write_text(text)
    spec.prepare(tmp_path, "ctr1")
    assert (tmp_path / "config.json").read_text() == text

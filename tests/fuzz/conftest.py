"""Fuzz suite set-up: load the settings profile (harness) and print examples run per target at the end."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests.fuzz import harness

_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember each target's outcome (a failure in any phase wins)."""
    name = report.nodeid.rsplit("/", 1)[-1].removesuffix(".py").replace(".py::", "::")
    if report.when == "call" or report.outcome != "passed":
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        if _OUTCOMES.get(name) != "failed":
            _OUTCOMES[name] = outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table hack/fuzz.sh prints: target, examples run, outcome; then the total."""
    if not harness.EXAMPLES and not _OUTCOMES:
        return
    write = terminalreporter.write_line
    profile = settings.get_current_profile_name()
    write(f"fuzz: profile {profile} (max_examples {settings().max_examples})")
    names = sorted(set(harness.EXAMPLES) | set(_OUTCOMES))
    width = max(len(n) for n in names)
    for name in names:
        write(f"fuzz: {name:<{width}}  {harness.EXAMPLES[name]:>8} examples  {_OUTCOMES.get(name, '?')}")
    failed = sum(1 for name in names if _OUTCOMES.get(name) == "failed")
    write(f"fuzz: total {sum(harness.EXAMPLES.values())} examples in {len(names)} targets, {failed} failed")

"""Session hooks: the chart tests' totals are printed at the end of every run."""

from __future__ import annotations

import os
import uuid

import pytest

RUN_ENV = "OLLAMA_PLATFORM_TEST_RUN"


def pytest_configure(config: pytest.Config) -> None:
    """Give the run an id (inherited by xdist workers) for the totals files."""
    if not hasattr(config, "workerinput"):
        os.environ.setdefault(RUN_ENV, uuid.uuid4().hex[:12])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the totals lines the chart tests recorded in this run."""
    from tests.charts import helm

    lines = []
    for name in ("render", "wiring"):
        path = helm.totals_file(name)
        if path.exists():
            lines.append(path.read_text().strip())
            path.unlink()
    if lines:
        terminalreporter.section("chart totals")
        for line in lines:
            terminalreporter.write_line(line)

"""The README's results block is generated from the committed reports and must agree with them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_results_match_the_committed_reports():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_results.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_links_resolve():
    import re

    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_the_suites_measured_cost_is_the_committed_reports():
    """``posenc reproduce --list`` shows a suite's measured CPU-hours from its TOML; they must be the
    figures of the committed report (benchmarks/results/<suite>/summary.json), written when it is complete."""
    import json

    from posenc.reproduce import list_suites

    results = ROOT / "benchmarks" / "results"
    for suite in list_suites():
        path = results / suite.name / "summary.json"
        summary = json.loads(path.read_text()) if path.exists() else None
        cost = (summary or {}).get("cost")
        complete = summary is not None and all(r["runs"].split("/")[0] == r["runs"].split("/")[1]
                                               for c in summary["columns"] for r in c["rows"])
        measured = suite.measured.get("cpu")
        if measured is None:
            assert not (complete and cost), f"{suite.name}: its report is complete; add [measured.cpu] to its suite file"
            continue
        assert complete and cost and summary.get("scale", "cpu") == "cpu", f"{suite.name}: measured figures without a complete cpu-scale report"
        assert measured["cpu_hours"] == cost["cpu_hours"], suite.name
        # the wall time only where every invocation recorded it
        assert measured["wall_hours"] == (cost["wall_hours"] if cost.get("wall_complete", True) else None), suite.name

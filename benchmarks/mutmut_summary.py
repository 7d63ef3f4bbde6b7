"""Survival rate of mutmut's mutants per formula module, from the ``mutants/`` folder a ``mutmut run``
leaves (``make mutmut`` runs both). Writes ``results.md`` and ``survivors.txt`` (every surviving
mutant, to read with ``mutmut show NAME``).

    python benchmarks/mutmut_summary.py --out benchmarks/results/mutmut
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

# mutmut's exit codes: 1 killed (a test failed), 0 survived, 36/-24 timeout, 33 no tests, None not run
KILLED, SURVIVED = {1, 3, -11, -9}, {0}
TIMEOUT = {36, -24, 24}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", type=Path, default=Path("mutants"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows, survivors = [], []
    for meta in sorted(args.mutants.glob("src/**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        c = collections.Counter()
        for name, code in codes.items():
            kind = ("killed" if code in KILLED else "survived" if code in SURVIVED else "timeout" if code in TIMEOUT
                    else "not run" if code is None else "no tests" if code == 33 else f"exit {code}")
            c[kind] += 1
            if kind == "survived":
                survivors.append(name)
        tested = c["killed"] + c["survived"] + c["timeout"]
        module = str(meta.relative_to(args.mutants / "src"))[: -len(".meta")]
        rows.append((module, len(codes), c["killed"], c["timeout"], c["survived"], c["not run"] + c["no tests"],
                     100.0 * c["survived"] / tested if tested else float("nan")))
    total = [sum(r[i] for r in rows) for i in range(1, 6)]
    tested = total[1] + total[2] + total[3]
    lines = ["# Mutation testing of the formula modules (mutmut)", "",
             "Made by: `make mutmut` (= `mutmut run` with the `[tool.mutmut]` settings of pyproject.toml, then "
             "`python benchmarks/mutmut_summary.py --out benchmarks/results/mutmut`).", "",
             "Mutants are generated on lines the selected tests cover; a mutant is killed when a test fails, survives "
             "when every test passes. Survival = survived / (killed + timeout + survived).", "",
             "| module | mutants | killed | timeout | survived | not run | survival |", "|---|---|---|---|---|---|---|"]
    for module, n, killed, timeout, survived, skipped, rate in rows:
        lines.append(f"| `{module}` | {n} | {killed} | {timeout} | {survived} | {skipped} | {rate:.1f}% |")
    lines.append(f"| **all** | {sum(r[1] for r in rows)} | {total[1]} | {total[2]} | {total[3]} | {total[4]} | "
                 f"**{100.0 * total[3] / tested:.1f}%** |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    (args.out / "survivors.txt").write_text("\n".join(sorted(survivors)) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

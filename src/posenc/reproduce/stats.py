"""Table statistics of PROTOCOLS.md: a cell pools its seeds (each input counts once, as its mean over
the seeds; the cell shows the mean over inputs ± their standard deviation, the spread the papers'
± reports, or ± the std over seeds when a cell has one input); a comparison with the reference row is paired over (input, seed) with a 95% Student-t
interval, and is a "tie" when the interval contains 0."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float  # over inputs (each the mean of its seeds)
    seed_std: float  # mean over inputs of the standard deviation over seeds (0 with one seed)
    inputs: int
    runs: int

    @property
    def spread(self) -> float:
        """The ± a table shows: the std over inputs, or over seeds when the cell has one input (a std
        over one input would read as 0.00, as if the seeds agreed exactly)."""
        return self.std if self.inputs > 1 else self.seed_std

    @property
    def spread_over(self) -> str:
        return "inputs" if self.inputs > 1 else "seeds"


@dataclass(frozen=True)
class Paired:
    mean: float  # row - reference
    low: float
    high: float
    pairs: int

    @property
    def tie(self) -> bool:
        return not (self.low > 0 or self.high < 0)


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def cell(by_input: dict[str, list[float]]) -> Cell | None:
    """``{input: [value per seed]}`` -> the pooled cell (None when nothing was measured)."""
    groups = [[v for v in vals if v is not None and math.isfinite(v)] for vals in by_input.values()]
    groups = [g for g in groups if g]
    if not groups:
        return None
    means = [sum(g) / len(g) for g in groups]
    return Cell(mean=sum(means) / len(means), std=_std(means), seed_std=sum(_std(g) for g in groups) / len(groups),
                inputs=len(groups), runs=sum(len(g) for g in groups))


def t_quantile(df: int, level: float = 0.975) -> float:
    from scipy.stats import t

    return float(t.ppf(level, df))


def paired(row: dict[tuple[str, int], float], reference: dict[tuple[str, int], float]) -> Paired | None:
    """Differences over the (input, seed) pairs both have; a row without seeds (a baseline, keyed by
    seed -1) pairs with every seed of the reference. None with fewer than 2 pairs."""
    diffs = []
    for (inp, seed), ref in reference.items():
        value = row.get((inp, seed), row.get((inp, -1)))
        if value is not None and ref is not None and math.isfinite(value) and math.isfinite(ref):
            diffs.append(value - ref)
    if len(diffs) < 2:
        return None
    m = sum(diffs) / len(diffs)
    half = t_quantile(len(diffs) - 1) * _std(diffs) / math.sqrt(len(diffs))
    return Paired(mean=m, low=m - half, high=m + half, pairs=len(diffs))


def paired_by_input(row: dict[tuple[str, int], float], reference: dict[tuple[str, int], float]) -> Paired | None:
    """Differences at the level of test inputs: for each input, the mean over its seeds of (row -
    reference) on the seeds both have (a row without seeds, keyed by seed -1, counts once against the
    reference's seed mean); a 95% Student-t interval over the inputs (df = inputs - 1), so it speaks
    for images in general, not for these images' seeds. ``pairs`` is the number of inputs. None with
    fewer than 2 inputs."""
    per_input: dict[str, list[float]] = {}
    for (inp, seed), ref in reference.items():
        value = row.get((inp, seed), row.get((inp, -1)))
        if value is not None and ref is not None and math.isfinite(value) and math.isfinite(ref):
            per_input.setdefault(inp, []).append(value - ref)
    diffs = [sum(d) / len(d) for d in per_input.values()]
    if len(diffs) < 2:
        return None
    m = sum(diffs) / len(diffs)
    half = t_quantile(len(diffs) - 1) * _std(diffs) / math.sqrt(len(diffs))
    return Paired(mean=m, low=m - half, high=m + half, pairs=len(diffs))


def fmt_cell(c: Cell | None, digits: int) -> str:
    return "-" if c is None else f"{c.mean:.{digits}f} ± {c.spread:.{digits}f}"


def fmt_paired(p: Paired | None, digits: int, higher_is_better: bool = True) -> str:
    if p is None:
        return "n/a"
    interval = f"{p.mean:+.{digits}f} [{p.low:+.{digits}f}, {p.high:+.{digits}f}]"
    if p.tie:
        return f"tie ({interval})"
    better = (p.mean > 0) == higher_is_better
    return f"{'better' if better else 'worse'} {interval}"


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else float("nan")

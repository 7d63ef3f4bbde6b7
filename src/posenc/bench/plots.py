"""``posenc bench plot``: PSNR against a method setting (sigma, mask_grid, ...) or against the measured
parameter count (``--param params``, e.g. results of several ``--match-params`` budgets).

Methods are grouped by their name before the first ``:`` (``gaussian``, ``sape+gaussian``); the x value
is the setting named by ``--param`` in the method string (``gaussian:sigma=20`` -> 20).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import PosencError
from ..io import read_jsonl, save_image
from ..methods import parse_method


def sweep_plot(results: list[str | Path], param: str, out: str | Path, metric: str = "psnr", logx: bool = True,
               images: tuple[str, ...] = ()) -> dict[str, list[tuple[float, float, float]]]:
    """Plot mean ± std of ``metric`` over images (all, or those named in ``images``) against ``param``;
    returns the plotted series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for folder in results:
        path = Path(folder) / "results.jsonl"
        if not path.exists():
            raise PosencError(f"no results.jsonl in {folder}")
        for row in read_jsonl(path):
            name, settings = parse_method(row["method"])
            if row["metrics"].get(metric) is None or (images and row.get("image") not in images):
                continue
            if param == "params":  # x from the measured parameter count, one series per method name
                values[name][float(row["metrics"]["params"])].append(float(row["metrics"][metric]))
            elif param in settings:
                values[name][float(settings[param])].append(float(row["metrics"][metric]))
    if not values:
        raise PosencError(f"no method in {', '.join(map(str, results))} sets {param!r}")
    series = {}
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    for name, by_x in sorted(values.items()):
        xs = sorted(by_x)
        means = [float(np.mean(by_x[x])) for x in xs]
        stds = [float(np.std(by_x[x])) for x in xs]
        series[name] = list(zip(xs, means, stds))
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=name)
    if logx and param == "params":
        ax.set_xscale("log")
    elif logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({x for s in values.values() for x in s}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel(param)
    ax.set_ylabel(f"{metric} (dB)" if metric.startswith("psnr") else metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    save_image(out, np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
    plt.close(fig)
    return series

"""benchmarks/seed_summary.py: pooling single-seed benchmark folders into paired statistics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("seed_summary", ROOT / "benchmarks" / "seed_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, rows: list[tuple[str, str, int, float]]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "results.jsonl", "w") as f:
        for method, image, seed, psnr in rows:
            cfg = {"data": {"path": f"x/{image}.png"}, "train": {"seed": seed}}
            f.write(json.dumps({"method": method, "config": cfg, "metrics": {"psnr": psnr, "psnr_heldout": psnr - 1}}) + "\n")


def test_pooled_means_and_paired_wins(tmp_path):
    mod = _load()
    _write(tmp_path / "s0", [("a", "im1", 0, 20.0), ("b", "im1", 0, 21.0), ("a", "im2", 0, 30.0), ("b", "im2", 0, 29.0)])
    # seed 1: b only on im1 -> not paired, must be ignored; a/b both on im2
    _write(tmp_path / "s1", [("b", "im1", 1, 99.0), ("a", "im2", 1, 32.0), ("b", "im2", 1, 33.0)])
    text = mod.summarise([tmp_path / "s0", tmp_path / "s1"], ["a", "b"])
    assert "| a (PSNR) | 20.00 ± 0.00 | 31.00 ± 1.00 | 25.50 |" in text
    assert "| b (PSNR) | 21.00 ± 0.00 | 31.00 ± 2.00 | 26.00 |" in text
    # pairs: (20, 21), (30, 29), (32, 33): mean difference +1/3, b higher in 2 of 3
    assert "= +0.333 dB on average over 3 paired" in text and "higher in 2 of them" in text
    assert mod.main([str(tmp_path / "o.md"), str(tmp_path / "missing")]) == 2

#!/bin/sh
# The same two-suite slice under the local and the Ray executor (2 workers each), interleaved
# local / ray / local, with wall times; then the metrics compared fit by fit (PATH must hold posenc). Usage:
#   sh benchmarks/executor_slice.sh OUT_DIR
OUT=$1
SLICE="--limit 1 --seeds 1 --iters 200 --workers 2 --quiet"
for run in local-1 ray local-2; do
  ex=$( [ "$run" = ray ] && echo ray || echo local )
  rm -rf "$OUT/$run"
  start=$(date +%s.%N)
  posenc reproduce tancik-images --only none,basic $SLICE --executor $ex --out "$OUT/$run/tancik" > /dev/null
  posenc reproduce lrbf-gen25 --only rbf_grid,bilinear $SLICE --executor $ex --out "$OUT/$run/lrbf" > /dev/null
  end=$(date +%s.%N)
  echo "$run $(echo "$end - $start" | bc)"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def metrics(run):
    rows = [json.loads(l) for s in ("tancik", "lrbf") for l in (out / run / s / "results.jsonl").open()]
    return {r["digest"]: {k: v for k, v in r["metrics"].items() if k.startswith("psnr")} for r in rows}
a, b, c = metrics("local-1"), metrics("ray"), metrics("local-2")
same = sum(a[k] == b[k] == c[k] for k in a)
print(f"fits {len(a)}; identical psnr under local, ray, local: {same} of {len(a)}")
PY

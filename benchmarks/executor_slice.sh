#!/bin/sh
# The same two-suite slice under the local and the Ray executor (2 workers each), interleaved
# local / ray / local, with wall times; then the metrics compared fit by fit. Usage:
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

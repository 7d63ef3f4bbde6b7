#!/bin/sh
# `posenc bench shapes --workers 2` ten times from an empty results folder: both workers label the same
# meshes' samples at once into the shared cache (the race issue 17 names). Usage:
#   sh benchmarks/concurrency_trial.sh DATA_DIR_WITH_TWO_MESHES OUT_DIR
DATA=$1; OUT=$2
for i in $(seq 1 10); do
  rm -rf "$OUT/out$i"
  posenc bench shapes --data "$DATA" --methods none,gaussian --samples 20000 --eval-points 5000 --mc-res 32 \
    --iters 30 --workers 2 --quiet --out "$OUT/out$i" > "$OUT/log$i.txt" 2>&1
  echo "run $i exit $? rows $(wc -l < "$OUT/out$i/results.jsonl" 2>/dev/null || echo 0)"
done

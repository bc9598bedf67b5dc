#!/usr/bin/env bash
# photod on a GPU: one prepared run, from the repository root:  bash benchmarks/gpu.sh
#
# 1. CUDA scores == CPU scores within tolerance (float16 on CUDA), and nvJPEG decode rates;
# 2. scoring photos/s from 24 MP and 2 MP JPEGs at batch 64, 128 and 256 with 8-16 CPU decoders;
# 3. end-to-end `photod score` / process_paths throughput on smooth and grainy 24 MP JPEGs and
#    DNGs with previews (vs naive), and `suggest` latency with --device cuda;
# 4. each results file rendered as Markdown next to it (python -m benchmarks.report).
# Results land in $OUT (default bench-results/gpu); each step runs even if an earlier one failed,
# and the exit status is 1 when any failed. Needs: the venv (.venv, CUDA build of torch).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench-results/gpu}
WORK=${PHOTOD_BENCH_DIR:-/tmp/photod-bench}
mkdir -p "$OUT"
status=0
step() { echo; echo "== $*"; "$@" || status=1; }

"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0))' || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
CORES=$(nproc)
DEC=$(( CORES < 16 ? CORES : 16 ))

step "$PY" -m benchmarks.gpu_check --device cuda --photos 48 --workdir "$WORK" --out "$OUT/gpu_check.json"
step "$PY" -m benchmarks scoring --device cuda --photos 512 --size 6000x4000 --runs 3 \
    --configs "64:1:$DEC,128:1:$DEC,256:1:$DEC" --workdir "$WORK" --out "$OUT/scoring-24mp.json"
step "$PY" -m benchmarks scoring --device cuda --photos 1024 --size 1728x1152 --runs 3 \
    --configs "64:1:$DEC,128:1:$DEC,256:1:$DEC" --workdir "$WORK" --out "$OUT/scoring-2mp.json"
step "$PY" -m benchmarks throughput latency --device cuda --batch-size 128 --photos 256 \
    --naive-photos 32 --runs 3 --samples 3 --kinds smooth,grainy --write-mode score,none,auto \
    --workdir "$WORK" --out "$OUT/e2e.json"
# Target: >= 1,000 photos/s from JPEG (scoring-2mp.json / scoring-24mp.json, e2e.json `score`).
for f in "$OUT"/*.json; do "$PY" -m benchmarks.report "$f" > "${f%.json}.md" 2>/dev/null || true; done
echo
echo "results in $OUT (exit $status)"
exit $status

#!/usr/bin/env bash
# GPU readiness check, about 7 minutes on one GPU (every stage has a time limit: 140 + 70 + 70 + 195 s < 8 min):
#   1. the CUDA tests (pytest -m cuda: operators, one solver per family, training steps, torchrun device mapping)
#   2. the operator benchmark on CUDA (matrix CPU/CUDA vs ASTRA CPU/CUDA, forward + adjoint; tools/gpu_bench.py)
#   3. the memory benchmark on CUDA (MS-Flow vs D-Flow vs MS-Flow-VJP, CUDA peak allocated; ctflow.studies.memory)
#   4. a 3-minute training-throughput run (the default prior's UNet; tools/gpu_bench.py train)
# The summary goes to $OUT/gpu_check/summary.md when $OUT is set, else results/gpu_check/summary.md.
# Without a CUDA GPU it says so, writes that into the summary and exits 0 (so CI can always call it).
#   usage: tools/gpu_check.sh            (PYTHON=... to use another interpreter than .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DEST=${OUT:-results}/gpu_check
mkdir -p "$DEST"
SUMMARY=$DEST/summary.md

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU here (torch.cuda.is_available() is False): skipped"
  printf '# GPU check\n\nskipped: no CUDA GPU on %s (%s)\n' "$(hostname)" "$(date -u +%FT%TZ)" > "$SUMMARY"
  exit 0
fi

status=0
declare -a STAGES=()
stage() {  # stage NAME LIMIT_S command...
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s)"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" > "$DEST/$name.log" 2>&1
  local rc=$? dt=$((SECONDS - t0))
  tail -n 5 "$DEST/$name.log"
  if [ $rc -ne 0 ]; then status=1; fi
  STAGES+=("| $name | $rc$([ $rc -eq 124 ] && echo ' (time limit)') | $dt s |")
}

export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
stage cuda_tests 140 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/ -rs
stage operators 70 "$PY" tools/gpu_bench.py operators --out "$DEST" --repeat 5
stage memory 70 "$PY" -m ctflow.studies.memory --device cuda --steps 10 50 200 --solvers msflow dflow --threads 4 \
  --out "$DEST/memory"
stage train 195 "$PY" tools/gpu_bench.py train --seconds 140 --out "$DEST"  # ≈ 3 min with set-up and the 20 s net-only part

{
  echo "# GPU check"
  echo
  echo "$(date -u +%FT%TZ) on $(hostname): $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
  echo "$("$PY" -c 'import torch, astra; print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), astra {astra.__version__} (CUDA usable: {astra.use_cuda()})")')"
  echo
  echo "| stage | exit status | time |"
  echo "|---|---|---|"
  printf '%s\n' "${STAGES[@]}"
  echo
  echo "## CUDA tests"
  echo
  echo '```'
  tail -n 15 "$DEST/cuda_tests.log"
  echo '```'
  echo
  echo "## Operators (forward + adjoint)"
  echo
  cat "$DEST/operators.md" 2>/dev/null || echo "(no result)"
  echo
  echo "## Memory: peak CUDA memory allocated above the baseline"
  echo
  if [ -f "$DEST/memory/memory.csv" ]; then
    "$PY" -c "
from pathlib import Path
from ctflow.studies.memory import markdown_table, read_csv, summary_lines
rows = read_csv(Path('$DEST/memory/memory.csv'))
print('\n'.join(markdown_table(rows)))
print()
print('\n'.join('- ' + s for s in summary_lines(rows)))"
  else
    echo "(no result)"
  fi
  echo
  echo "## Training throughput"
  echo
  cat "$DEST/train.md" 2>/dev/null || echo "(no result)"
} > "$SUMMARY"
echo "gpu_check: summary in $SUMMARY (status $status)"
exit $status

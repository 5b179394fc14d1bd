#!/usr/bin/env bash
# Continue the long phantom-64 v2 run (training/phantom-64-v2) on a lent GPU and bring its state back.
#
#   on the GPU machine:  tools/gpu_train.sh [SECONDS]           (default 420: fits one 10-minute device call)
#   back here:           tools/gpu_train.sh --unpack FILES_AT   (FILES_AT: where the device tool put $OUT's files)
#
# The run resumes exactly where the committed checkpoint stopped (same command, --resume), on CUDA with
# DataLoader workers building the phantoms on the machine's CPU cores, and stops cleanly with a checkpoint
# after SECONDS (--time-budget). The device tool returns at most 8 files of < 16 MiB each, so the checkpoint
# travels as 7: model, EMA and state.json, the AdamW state (20 MB) cut into two pieces, the run's log and a
# manifest (step, SHA-256 of the AdamW state). --unpack checks and reassembles the checkpoint
# under training/phantom-64-v2/checkpoints/ and points latest.json at it; then `$(cat
# training/phantom-64-v2/command.txt)` continues on the CPU, bit for bit what the GPU would have done next.
#
# Needs on the GPU machine: python3 with torch, numpy, scipy, tqdm, safetensors, matplotlib (the device image
# has them); astra, pydicom and the rest of ctflow's dependencies are not imported by training.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-training/phantom-64-v2}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu: a dry run of the same steps (for checking the script)

if [ "${1:-}" = "--unpack" ]; then
  src=${2:?usage: tools/gpu_train.sh --unpack FILES_AT}
  read -r step sha < "$src/manifest.txt"
  dst=$RUN/checkpoints/$step
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp"
  cp "$src/model.safetensors" "$src/ema.safetensors" "$src/state.json" "$dst.tmp/"
  cat "$src"/optimizer.part-* > "$dst.tmp/optimizer.safetensors"
  echo "$sha  $dst.tmp/optimizer.safetensors" | sha256sum -c --quiet || { echo "AdamW pieces do not match" >&2; exit 1; }
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
  printf '{"step": %d, "path": "%s"}' "$((10#${step#step-}))" "$step" > "$RUN/checkpoints/latest.json"
  cp "$src/log.jsonl" "$RUN/log.jsonl"
  mkdir -p "$RUN/ema" && cp "$dst/ema.safetensors" "$RUN/ema/$step.safetensors"  # a point of the learning curve
  echo "unpacked $step into $dst (latest.json updated); continue with: \$(cat $RUN/command.txt)"
  exit 0
fi

seconds=${1:-420}
PY=${PYTHON:-python3}
DEST=${OUT:-results/gpu_train}
mkdir -p "$DEST"
[ "$DEVICE" = cpu ] || "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))"
hours=$("$PY" -c "print($seconds / 3600)")
workers=$(( $(nproc) > 4 ? $(nproc) - 2 : 1 ))
# the committed command with the device, threads and time budget of this machine (all else identical)
cmd=$(sed -e 's/^nice -n [0-9]* //' -e 's#\.venv/bin/ctflow#'"$PY"' -m ctflow.cli#' \
          -e 's/--threads [0-9]*/--threads 4/' -e "s/--workers [0-9]*/--workers $workers/" \
          -e "s/--time-budget [0-9.]*/--time-budget $hours/" -e "s#--out [^ ]*#--out $RUN#" "$RUN/command.txt")
echo "$cmd --device $DEVICE"
PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 $cmd --device "$DEVICE"

step=$("$PY" -c "import json; print(json.load(open('$RUN/checkpoints/latest.json'))['path'])")
ck=$RUN/checkpoints/$step
cp "$ck/model.safetensors" "$ck/ema.safetensors" "$ck/state.json" "$RUN/log.jsonl" "$DEST/"
split -b 12M -d "$ck/optimizer.safetensors" "$DEST/optimizer.part-"
echo "$step $(sha256sum "$ck/optimizer.safetensors" | cut -d' ' -f1)" > "$DEST/manifest.txt"
ls -l "$DEST"

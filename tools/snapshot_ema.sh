#!/usr/bin/env bash
# Keep the EMA weights of a running training every N steps (the run itself keeps only its last two
# checkpoints): copies checkpoints/step-*/ema.safetensors to ema/step-*.safetensors for the learning curve.
# usage: tools/snapshot_ema.sh RUN_DIR [EVERY=2000]
set -u
run=$1; every=${2:-2000}

while true; do
  mkdir -p "$run/ema"
  for ck in "$run"/checkpoints/step-*; do
    [ -f "$ck/ema.safetensors" ] || continue
    step=$((10#${ck##*step-}))
    dst="$run/ema/step-$(printf %07d "$step").safetensors"
    if [ $((step % every)) -eq 0 ] && [ ! -f "$dst" ]; then cp "$ck/ema.safetensors" "$dst.tmp" && mv "$dst.tmp" "$dst"; fi
  done
  sleep 20
done

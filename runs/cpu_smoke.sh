#!/usr/bin/env bash
# Every training stage end to end at toy size on CPU, then a video from the result (a few minutes).
#   bash runs/cpu_smoke.sh            (re-running resumes nothing: each stage starts over in outputs/smoke/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=outputs/smoke
rm -rf "$out"
owl data shapes --out "$out/data" --videos 4 --seconds 8 --seed 0
for stage in vae align generate world; do
  owl train "$stage" --config "configs/tiny/$stage.yaml"
done
owl generate --model "$out/world/model" --prompt "a red circle enters from the left." --seconds 8 --out "$out/smoke.mp4"

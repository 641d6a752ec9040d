#!/usr/bin/env bash
# The shipped model, end to end: Shapes World data -> vae -> align -> generate -> world -> eval ->
# checkpoints/owl-shapes/.
#
#   bash runs/shapes.sh                 PROFILE=cpu (default): the 2-core CPU machine, under 90 minutes; this
#                                       trained checkpoints/owl-shapes (each stage also stops at a wall-clock cap)
#   PROFILE=gpu bash runs/shapes.sh     a longer schedule for a GPU (not run here yet)
#
# Interrupted? Run it again: finished stages are skipped and an unfinished one resumes from its last checkpoint.
# OUT (default outputs/shapes) holds data, stages and eval; SHIP=0 skips the copy into checkpoints/; PRESET (default
# shapes) is the model size the first stage builds.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-cpu}
OUT=${OUT:-outputs/shapes}
SHIP=${SHIP:-1}
PRESET=${PRESET:-shapes}
case "$PROFILE" in
  # videos; then steps and a wall-clock cap (minutes) for vae vae_long align generate world
  cpu) videos=120; steps=(2600 260 200 8000 3000);  minutes=(18 8 3 24 24) ;;
  gpu) videos=400; steps=(10000 1000 1000 40000 15000); minutes=(0 0 0 0 0) ;;
  *) echo "PROFILE must be cpu or gpu, got $PROFILE" >&2; exit 2 ;;
esac
# STEPS / MINUTES: five numbers each, to replace the profile's
[ -z "${STEPS:-}" ] || read -ra steps <<< "$STEPS"
[ -z "${MINUTES:-}" ] || read -ra minutes <<< "$MINUTES"
if [ "${#steps[@]}" != 5 ] || [ "${#minutes[@]}" != 5 ]; then
  echo "STEPS and MINUTES take five numbers each (vae vae_long align generate world)" >&2; exit 2
fi

[ -f "$OUT/data/captions.json" ] || owl data shapes --out "$OUT/data" --videos "$videos" --seconds 24 --seed 1
# held-out scenarios: a seed never used in training
[ -d "$OUT/heldout/scenarios" ] || owl data shapes --out "$OUT/heldout" --videos 24 --seconds 24 --seed 1000

previous="preset:$PRESET"
i=0
# vae_long is the vae stage again, on 33-frame windows (as long as the rollout decodes: a context latent + 8): a
# causal VAE trained only on short windows loses shape and colour along longer ones
for name in vae vae_long align generate world; do
  stage=${name%_long}
  dir="$OUT/$name"
  if [ ! -f "$dir/done.json" ]; then
    resume=""
    ls "$dir"/checkpoints/step-* >/dev/null 2>&1 && resume=--resume
    owl train "$stage" --config "configs/shapes/$name.yaml" $resume \
      --set model="$previous" --set data="$OUT/data/captions.json" --set output_dir="$dir" --set steps="${steps[$i]}" \
      --set max_minutes="${minutes[$i]}" --set max_videos="$videos"
  fi
  previous="$dir"
  i=$((i + 1))
done

if [ "$SHIP" = 1 ]; then
  rm -rf checkpoints/.owl-shapes.tmp && mkdir -p checkpoints
  cp -r "$OUT/world/model" checkpoints/.owl-shapes.tmp && rm -rf checkpoints/.owl-shapes.tmp/lora
  rm -rf checkpoints/owl-shapes && mv checkpoints/.owl-shapes.tmp checkpoints/owl-shapes
fi
model=$([ "$SHIP" = 1 ] && echo checkpoints/owl-shapes || echo "$OUT/world/model")
if owl eval --help >/dev/null 2>&1; then
  for memory in full last; do
    owl eval shapes --model "$model" --scenarios "$OUT/heldout/scenarios" --memory "$memory" --out "$OUT/eval-$memory.json"
  done
fi

#!/usr/bin/env bash
# The shipped model, end to end: Shapes World data -> vae -> align -> generate -> world -> world_state ->
# (generate_more -> world_more) x ROUNDS -> eval -> checkpoints/owl-shapes/.
#
#   bash runs/shapes.sh                 PROFILE=cpu (default): the 2-core CPU machine, under 90 minutes; this
#                                       trained checkpoints/owl-shapes (each stage also stops at a wall-clock cap)
#   PROFILE=gpu bash runs/shapes.sh     a longer schedule for a GPU (not run here yet)
#
# Interrupted? Run it again: finished stages are skipped and an unfinished one resumes from its last checkpoint.
# OUT (default outputs/shapes) holds data, stages and eval; SHIP=0 skips the copy into checkpoints/; PRESET (default
# shapes) is the model size the first stage builds; ROUNDS (default 1) how many times generate_more and
# world_more run; VIDEOS replaces the profile's number of training videos; LAST=NAME stops after that stage (its
# model is then the one shipped and evaluated); EVAL=0 skips the held-out evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-cpu}
OUT=${OUT:-outputs/shapes}
SHIP=${SHIP:-1}
PRESET=${PRESET:-shapes}
case "$PROFILE" in
  # videos; then steps and a wall-clock cap (minutes) for vae vae_long align generate world world_state
  # generate_more world_more (the last two run ROUNDS times)
  cpu) videos=120; steps=(2600 260 200 8000 3000 1300 3000 800);  minutes=(18 8 3 24 24 15 12 8) ;;
  gpu) videos=400; steps=(10000 1000 1000 40000 15000 5000 12000 3000); minutes=(0 0 0 0 0 0 0 0) ;;
  *) echo "PROFILE must be cpu or gpu, got $PROFILE" >&2; exit 2 ;;
esac
ROUNDS=${ROUNDS:-1}
videos=${VIDEOS:-$videos}
# STEPS / MINUTES: eight numbers each, to replace the profile's
[ -z "${STEPS:-}" ] || read -ra steps <<< "$STEPS"
[ -z "${MINUTES:-}" ] || read -ra minutes <<< "$MINUTES"
if [ "${#steps[@]}" != 8 ] || [ "${#minutes[@]}" != 8 ]; then
  echo "STEPS and MINUTES take eight numbers each (vae vae_long align generate world world_state generate_more" \
       "world_more)" >&2; exit 2
fi
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]]; then echo "ROUNDS must be a whole number, got $ROUNDS" >&2; exit 2; fi
if ! [[ "$videos" =~ ^[1-9][0-9]*$ ]]; then echo "VIDEOS must be a positive whole number, got $videos" >&2; exit 2; fi

# Each name is a stage (the part before "_") with its config, configs/shapes/NAME.yaml; the rounds' copies of
# generate_more and world_more (NAME2, NAME3, ...) take the same config and numbers.
# vae_long is the vae stage again, on 33-frame windows (as long as the rollout decodes: a context latent + 8): a
# causal VAE trained only on short windows loses shape and colour along longer ones. world_state, generate_more and
# world_more: see their configs.
names=(vae vae_long align generate world world_state)
for ((r = 1; r <= ROUNDS; r++)); do
  suffix=$([ "$r" = 1 ] && echo "" || echo "$r")
  names+=("generate_more$suffix" "world_more$suffix")
done
if [ -n "${LAST:-}" ] && [[ " ${names[*]} " != *" $LAST "* ]]; then
  echo "LAST must name a stage of this run (${names[*]}), got $LAST" >&2; exit 2
fi

[ -f "$OUT/data/captions.json" ] || owl data shapes --out "$OUT/data" --videos "$videos" --seconds 24 --seed 1

previous="preset:$PRESET"
for name in "${names[@]}"; do
  config=${name%%[0-9]*}
  stage=${config%%_*}
  i=0
  for known in vae vae_long align generate world world_state generate_more world_more; do
    [ "$known" = "$config" ] && break
    i=$((i + 1))
  done
  dir="$OUT/$name"
  if [ ! -f "$dir/done.json" ]; then
    resume=""
    ls "$dir"/checkpoints/step-* >/dev/null 2>&1 && resume=--resume
    owl train "$stage" --config "configs/shapes/$config.yaml" $resume \
      --set model="$previous" --set data="$OUT/data/captions.json" --set output_dir="$dir" --set steps="${steps[$i]}" \
      --set max_minutes="${minutes[$i]}" --set max_videos="$videos"
  fi
  previous="$dir"
  [ "$name" != "${LAST:-}" ] || break
done

if [ "$SHIP" = 1 ]; then
  rm -rf checkpoints/.owl-shapes.tmp && mkdir -p checkpoints
  cp -r "$previous/model" checkpoints/.owl-shapes.tmp && rm -rf checkpoints/.owl-shapes.tmp/lora
  rm -rf checkpoints/owl-shapes && mv checkpoints/.owl-shapes.tmp checkpoints/owl-shapes
fi
model=$([ "$SHIP" = 1 ] && echo checkpoints/owl-shapes || echo "$previous/model")
[ "${EVAL:-1}" = 1 ] || exit 0
# held-out scenarios: a seed never used in training nor in choosing between models (reported once)
[ -d "$OUT/heldout96/scenarios" ] || owl data shapes --out "$OUT/heldout96" --videos 96 --seconds 24 --seed 1000
owl eval shapes --probe --model "$model" --scenarios "$OUT/heldout96/scenarios" --probe-train "$OUT/data/scenarios" \
  --out "$OUT/probe.json"
for memory in full last; do
  owl eval shapes --model "$model" --scenarios "$OUT/heldout96/scenarios" --memory "$memory" \
    --probe-train "$OUT/data/scenarios" --out "$OUT/eval-$memory.json"
done

#!/usr/bin/env bash
# Owl-1's three stages at real size: Qwen2.5-VL-3B-Instruct + Wan2.1-T2V-1.3B (configs/real/), on the GPUs of this
# machine through accelerate, then a 24 s rollout. The checkpoints and data are yours, on disk (nothing is fetched):
#   LMM=Qwen2.5-VL-3B-Instruct VDM=Wan2.1-T2V-1.3B-Diffusers DATA=activitynet/captions.json bash runs/real.sh
# Settings (environment):
#   CONFIGS     the stage configs (default configs/real; configs/real/ti2v-5b for VDM=Wan2.2-TI2V-5B-Diffusers)
#   ACCELERATE  accelerate config (default configs/accelerate/ddp.yaml; fsdp.yaml and deepspeed_zero2.yaml train but
#               write no resume state, so --resume is refused under them)
#   NPROC       processes (default: every visible GPU, at least 1)
#   OUT         output folder (default outputs/real); each stage's model is OUT/STAGE/model
#   SET         extra overrides for every stage, e.g. SET="steps=2 batch_size=1" for a smoke run
#   INIT        extra `owl init` flags, e.g. INIT="--clip-seconds 4"
#   PROMPT      the rollout's prompt
set -euo pipefail
cd "$(dirname "$0")/.."
: "${LMM:?set LMM to a Qwen2.5-VL folder}" "${VDM:?set VDM to a Wan folder}" "${DATA:?set DATA to a dense-caption file}"
CONFIGS=${CONFIGS:-configs/real}
ACCELERATE=${ACCELERATE:-configs/accelerate/ddp.yaml}
OUT=${OUT:-outputs/real}
NPROC=${NPROC:-$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))")}
PROMPT=${PROMPT:-"a dog runs along the beach at sunset."}
overrides=()
for kv in ${SET:-}; do overrides+=(--set "$kv"); done

[ -d "$OUT/init" ] || owl init --lmm "$LMM" --vdm "$VDM" --out "$OUT/init" ${INIT:-}
model=$OUT/init
for stage in align generate world; do
  accelerate launch --config_file "$ACCELERATE" --num_processes "$NPROC" -m owl.train "$stage" \
    --config "$CONFIGS/$stage.yaml" --set "model=$model" --set "data=$DATA" --set "output_dir=$OUT/$stage" \
    "${overrides[@]}"
  model=$OUT/$stage/model
done
dtype=bfloat16
python3 -c "import torch; raise SystemExit(not torch.cuda.is_available())" || dtype=float32
owl generate --model "$model" --prompt "$PROMPT" --seconds 24 --dtype "$dtype" --out "$OUT/rollout.mp4"

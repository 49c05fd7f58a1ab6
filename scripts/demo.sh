#!/usr/bin/env bash
# Sets up (idempotent), builds gym and runs the main job: a real training run on the embedded
# tiny default (the base model is created on first use; no download).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here"
# GSPO on a tiny Qwen3 (created on first use) with the accuracy reward, printing the reward
# rising (~1 min); its SFT warm start (configs/tiny/sft_tiny.yaml, ~15 s) runs first when
# outputs/sft_tiny does not exist yet. 32 prompts are held out and scored greedily every 100 steps
# (eval_reward in the log), and the run ends with its report.html.
out=outputs/gspo_tiny
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = --output_dir ] && [ "$i" -lt $# ]; then j=$((i + 1)); out="${!j}"; fi
  case "${!i}" in --output_dir=*) out="${!i#--output_dir=}" ;; esac
done
./build/gym train configs/tiny/gspo_tiny.yaml --val_size 32 --eval_strategy steps --eval_steps 100 "$@"
./build/gym report "$out"

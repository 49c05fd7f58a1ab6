#!/usr/bin/env bash
# Sets up (idempotent), builds gym and runs the main job: a real training run on the embedded
# tiny default (the base model is created on first use; no download).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here"
# 1) LoRA SFT of a tiny Qwen3 (created on first use) on the shipped arithmetic set (~15 s),
# 2) GSPO continuing that adapter with the accuracy reward, printing the reward rising (~1 min).
./build/gym train configs/tiny/sft_tiny.yaml
./build/gym train configs/tiny/gspo_tiny.yaml "$@"

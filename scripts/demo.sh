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
# outputs/sft_tiny does not exist yet.
./build/gym train configs/tiny/gspo_tiny.yaml "$@"

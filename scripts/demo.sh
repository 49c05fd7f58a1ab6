#!/usr/bin/env bash
# Sets up (idempotent), builds gym and runs the main job: a real training run on the embedded
# tiny default (the base model is created on first use; no download).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here"
./build/gym train configs/tiny/sft_tiny.yaml "$@"

#!/usr/bin/env bash
# Sets up (idempotent), builds incrementally and runs the whole test suite through CTest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
bash "$here/scripts/build.sh"
cd "$here/build"
ctest --output-on-failure -j"$(nproc)" "$@"
# A short run of every libFuzzer target (8 s each, ~1 minute; fuzz/, docs/reliability.md). Its clang
# build lives in build/fuzz. GYM_SKIP_FUZZ=1 leaves it out.
if [ "${GYM_SKIP_FUZZ:-0}" != 1 ]; then
  bash "$here/scripts/fuzz.sh" all "${GYM_FUZZ_SECONDS:-8}"
fi

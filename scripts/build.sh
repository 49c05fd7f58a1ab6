#!/usr/bin/env bash
# Configure (once) and build incrementally. Builds are serialised with a lock so that several
# shells on this 2-core machine never compile at the same time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${GYM_BUILD_DIR:-$here/build}"
exec 9>"/tmp/gym-build.lock"
flock 9
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -- -j"$(nproc)"

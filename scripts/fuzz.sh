#!/usr/bin/env bash
# Builds (incrementally, under the same lock as scripts/build.sh) and runs one libFuzzer target:
#   bash scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#   bash scripts/fuzz.sh all SECONDS      # every target, SECONDS each
# Targets: safetensors_fuzz tokenizer_fuzz tokenize_fuzz config_fuzz dataset_fuzz adapter_fuzz
# checkpoint_fuzz (fuzz/*.cpp). The build folder is build/fuzz (clang, GYM_FUZZ=ON); the seed corpus
# fuzz/corpus/TARGET is copied to build/fuzz/corpus/TARGET, which grows with what the run finds.
# Crashes are written to build/fuzz/crashes/TARGET/; the exit status is libFuzzer's (0: no crash).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${GYM_FUZZ_BUILD_DIR:-$here/build/fuzz}"
all=(safetensors_fuzz tokenizer_fuzz tokenize_fuzz config_fuzz dataset_fuzz adapter_fuzz checkpoint_fuzz)
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags]; targets: ${all[*]}" >&2
  exit 2
fi
target="$1" seconds="$2"
shift 2
if [ "$target" = all ]; then targets=("${all[@]}"); else targets=("$target"); fi

(
  exec 9>"/tmp/gym-build.lock"
  flock 9
  if [ ! -f "$build/build.ninja" ]; then
    CC=clang CXX=clang++ cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DGYM_FUZZ=ON -DGYM_BUILD_TESTS=OFF -DGYM_CUDA=OFF >/dev/null
  fi
  cmake --build "$build" --target "${targets[@]}" -- -j"$(nproc)"
)

# LibTorch is not instrumented; its own allocations at exit are not gym's leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The targets write their inputs to files (the readers take paths): keep them in memory, in one
# folder of this run that is removed at the end (the targets' scratch folders included).
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then
  TMPDIR="$(mktemp -d /dev/shm/gym-fuzz.XXXXXX)"
  export TMPDIR
  trap 'rm -rf "$TMPDIR"' EXIT
fi
rc=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t" crashes="$build/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  [ -d "$here/fuzz/corpus/$t" ] && cp -n "$here/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $t for ${seconds} s"
  set +e
  "$build/fuzz/$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$@" "$corpus" 2>&1 | grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'
  r=${PIPESTATUS[0]}
  set -e
  if [ "$r" -ne 0 ]; then echo "fuzz: $t FAILED (exit $r); reproducer(s) in $crashes" >&2; rc=1; fi
done
exit "$rc"

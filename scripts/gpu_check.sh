#!/usr/bin/env bash
# GPU check of gym on a machine with PyTorch (CUDA), nvcc, CMake and ninja but no package registry.
# Two steps, each meant as one device call of at most 6 minutes (docs/gpu.md):
#   scripts/gpu_check.sh build   configure + build gym and gym_tests in build-gpu/ against the
#                                LibTorch of `python3 -c 'import torch'`, GYM_CUDA=ON, with the
#                                dependencies carried in .gpu_deps/ (scripts/make_gpu_deps.sh)
#   scripts/gpu_check.sh run     the ops' parity tests on the GPU (kernel vs twin, fixtures in float32
#                                and bf16), the rl/NF4 vector tests, a tiny SFT and GSPO run on cuda,
#                                the ops bench; writes build-gpu/gpu_check.json (and $OUT/gpu_check.json)
#   scripts/gpu_check.sh all     both
# Environment: GYM_GPU_DEPS (default .gpu_deps), GYM_GPU_BUILD (default build-gpu),
# GYM_CUDA_ARCHITECTURES (default 90: the H200), GYM_GPU_DEVICE_ARGS (what selects cuda for
# `gym train`, default "--device cuda"), GYM_GPU_STEP_TIMEOUT (seconds per train run, default 150).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="${GYM_GPU_DEPS:-$here/.gpu_deps}"
build="${GYM_GPU_BUILD:-$here/build-gpu}"
step="${1:-all}"
log() { echo "gpu_check: $*"; }

setup_env() {
  if [ ! -d "$deps/usr/include" ]; then
    log "no dependency bundle at $deps: run scripts/make_gpu_deps.sh where the Debian packages are, and carry it"
    exit 2
  fi
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_LIBDIR="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig"
  export PKG_CONFIG_SYSROOT_DIR="$deps"
  export PKG_CONFIG="$deps/usr/bin/pkgconf"
  export PYTHONUNBUFFERED=1
  py="${PYTHON:-python3}"
}

do_build() {
  setup_env
  local torch_prefix torch_root cxxflags="" nvcc
  torch_prefix="$("$py" -c 'import torch;print(torch.utils.cmake_prefix_path)')" || { log "python3 cannot import torch"; exit 2; }
  torch_root="$("$py" -c 'import torch,os;print(os.path.dirname(torch.__file__))')"
  [ -d "$torch_root/include/gloo" ] || cxxflags="-idirafter $deps/gloo/include"
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  log "torch $("$py" -c 'import torch;print(torch.__version__, torch.version.cuda)'), nvcc $nvcc"
  mkdir -p "$build"
  local t0=$SECONDS
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix;$deps/usr;$deps/usr/lib/x86_64-linux-gnu/cmake;$deps/usr/share/cmake" \
      -DPKG_CONFIG_EXECUTABLE="$deps/usr/bin/pkgconf" -DCMAKE_CUDA_COMPILER="$nvcc" \
      -DGYM_CUDA=ON -DGYM_CUDA_ARCHITECTURES="${GYM_CUDA_ARCHITECTURES:-90}" -DCMAKE_CXX_FLAGS="$cxxflags" \
      2>&1 | tee "$build/configure.log" | tail -25
    [ -f "$build/build.ninja" ] || { log "configure failed (build-gpu/configure.log)"; exit 1; }
  fi
  cmake --build "$build" --target gym gym_tests -- -j"$(nproc)" 2>&1 | tee "$build/build.log" | grep -E "error|FAILED|warning: " | head -60
  local rc=${PIPESTATUS[0]}
  echo "{\"build_rc\": $rc, \"build_seconds\": $((SECONDS - t0))}" >"$build/build_status.json"
  log "build rc $rc in $((SECONDS - t0)) s"
  return "$rc"
}

# Runs one command with a timeout; records {"rc", "seconds", "tail"} under key $1 in $build/steps/.
step_run() {
  local key="$1" limit="$2"
  shift 2
  mkdir -p "$build/steps"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$build/steps/$key.log" 2>&1
  local rc=$?
  "$py" - "$build/steps/$key.log" "$rc" "$((SECONDS - t0))" >"$build/steps/$key.json" <<'PY'
import json, sys
text = open(sys.argv[1], errors="replace").read()
print(json.dumps({"rc": int(sys.argv[2]), "seconds": int(sys.argv[3]), "tail": text[-3000:]}))
PY
  log "$key: rc $rc in $((SECONDS - t0)) s"
}

do_run() {
  setup_env
  [ -x "$build/gym_tests" ] || { log "no $build/gym_tests: run 'scripts/gpu_check.sh build' first"; exit 2; }
  rm -rf "$build/steps" "$build/runs"
  mkdir -p "$build/steps" "$build/runs"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >"$build/steps/gpu.txt" 2>&1
  # 1. ops parity on the GPU (kernel vs twin; the fixtures in float32 and bf16) and the CPU vector tests.
  step_run ops_tests 240 "$build/gym_tests" --gtest_filter='Ops*:Rl*:Nf4*:DevicePlacement*:ModelBf16*:-RlEndToEnd.*' --gtest_output="json:$build/steps/gtest.json"
  # 2. tiny SFT and GSPO runs on cuda.
  local dev_args="${GYM_GPU_DEVICE_ARGS:---device cuda}" lim="${GYM_GPU_STEP_TIMEOUT:-150}"
  # shellcheck disable=SC2086
  step_run sft_cuda "$lim" "$build/gym" train "$here/configs/tiny/sft_tiny.yaml" --output_dir "$build/runs/sft" $dev_args
  # shellcheck disable=SC2086
  step_run gspo_cuda "$lim" "$build/gym" train "$here/configs/tiny/gspo_tiny.yaml" --output_dir "$build/runs/gspo" $dev_args
  # 3. the ops bench (kernel vs twin vs reference timings, JSON).
  GYM_OPS_BENCH_JSON="$build/steps/bench.json" step_run bench 120 "$build/gym_tests" --gtest_also_run_disabled_tests \
    --gtest_filter='OpsBench.DISABLED_*'
  # 4. gym's own model benches on the GPU (the same JSON keys as on the CPU; docs/performance.md).
  for b in sft generate gspo; do
    step_run "gym_bench_$b" 60 "$build/gym" bench "$b" --shape small --device cuda --json
  done
  summarize
}

summarize() {
  "$py" - "$build" "$here" <<'PY' | tee "$build/gpu_check.json"
import json, os, subprocess, sys
build, here = sys.argv[1], sys.argv[2]
steps = os.path.join(build, "steps")
def load(name, default=None):
    try:
        with open(os.path.join(steps, name)) as f:
            return json.load(f)
    except Exception:
        return default
summary = {"ran_on_gpu": True}
try:
    summary["gpu"] = open(os.path.join(steps, "gpu.txt")).read().strip()
except Exception:
    summary["gpu"] = None
try:
    import torch
    summary["torch"] = torch.__version__
    summary["torch_cuda"] = torch.version.cuda
    summary["cuda_available"] = torch.cuda.is_available()
except Exception as e:
    summary["torch"] = f"import failed: {e}"
try:
    summary["commit"] = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
except Exception:
    summary["commit"] = None
summary["build"] = json.load(open(os.path.join(build, "build_status.json"))) if os.path.exists(os.path.join(build, "build_status.json")) else None
g = load("gtest.json", {})
tests = {}
for suite in g.get("testsuites", []):
    for t in suite.get("testsuite", []):
        name = f"{suite['name']}.{t['name']}"
        if t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
            tests[name] = "skipped"
        elif t.get("failures"):
            tests[name] = "failed"
        else:
            tests[name] = "passed"
summary["tests"] = {"passed": sum(v == "passed" for v in tests.values()), "failed": sorted(k for k, v in tests.items() if v == "failed"),
                    "skipped": sorted(k for k, v in tests.items() if v == "skipped"),
                    "gpu_parity": {k: v for k, v in tests.items() if "Cuda" in k}}
for key in ("ops_tests", "sft_cuda", "gspo_cuda", "bench"):
    s = load(key + ".json")
    if s is not None and key != "ops_tests":
        summary[key] = s
    elif s is not None:
        summary[key] = {"rc": s["rc"], "seconds": s["seconds"]}
summary["bench_results"] = load("bench.json")
gym_bench = {}
for b in ("sft", "generate", "gspo"):
    try:
        lines = [l for l in open(os.path.join(steps, f"gym_bench_{b}.log")).read().splitlines() if l.startswith("{")]
        gym_bench[b] = json.loads(lines[-1])
    except Exception as e:
        gym_bench[b] = {"error": str(e)[:200]}
summary["gym_bench"] = gym_bench
summary["ok"] = bool(summary["build"] and summary["build"].get("build_rc") == 0 and not summary["tests"]["failed"]
                     and summary["tests"]["passed"] > 0 and all(summary.get(k, {}).get("rc") == 0 for k in ("sft_cuda", "gspo_cuda")))
print(json.dumps(summary, indent=1))
PY
  [ -n "${OUT:-}" ] && cp "$build/gpu_check.json" "$OUT/gpu_check.json" && cp "$build/steps/"*.log "$OUT/" 2>/dev/null
  log "summary: $build/gpu_check.json"
}

case "$step" in
  build) do_build ;;
  run) do_run ;;
  all) do_build && do_run ;;
  *) echo "usage: scripts/gpu_check.sh build|run|all" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Compiles every CUDA kernel (src/ops/kernels/*.cu) alone with nvcc, as CI does on each submission:
#   nvcc -std=c++17 -c -Iinclude -Isrc -gencode ... file.cu
# Exit 0 when all compile, 1 when one does not (its errors are printed), 77 (CTest's "skipped")
# with one line when no nvcc is found. nvcc: $NVCC (NVCC=none: skip), else on PATH, else
# /usr/local/cuda/bin/nvcc.
# Architectures: GYM_CUDA_ARCHS, comma-separated (default 80,90). Warnings are errors.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${NVCC+x}" ]; then nvcc="$NVCC"; else nvcc="$(command -v nvcc || true)"; fi
[ -z "${NVCC+x}" ] && [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ] || ! [ -x "$(command -v "$nvcc" || true)" ]; then
  echo "[ SKIPPED ] OpsCudaCompile: no nvcc (set NVCC or install the CUDA toolkit in /usr/local/cuda)"
  exit 77
fi
archs="${GYM_CUDA_ARCHS:-80,90}"
gencode=()
for a in ${archs//,/ }; do gencode+=("-gencode=arch=compute_${a},code=sm_${a}"); done
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
shopt -s nullglob
files=("$here"/src/ops/kernels/*.cu)
if [ "${#files[@]}" -eq 0 ]; then echo "check_cuda_kernels: no .cu files under src/ops/kernels" >&2; exit 1; fi
cd "$here"
pids=()
for f in "${files[@]}"; do
  name="$(basename "$f" .cu)"
  ( "$nvcc" -std=c++17 -c -Iinclude -Isrc "${gencode[@]}" -Werror all-warnings -Xcompiler=-Wall,-Wextra \
      "$f" -o "$out/$name.o" >"$out/$name.log" 2>&1 ) &
  pids+=("$!")
done
failed=0
for i in "${!files[@]}"; do
  name="$(basename "${files[$i]}" .cu)"
  if wait "${pids[$i]}"; then
    echo "ok    ${files[$i]#$here/}"
  else
    echo "FAIL  ${files[$i]#$here/}"
    cat "$out/$name.log"
    failed=1
  fi
done
echo "check_cuda_kernels: ${#files[@]} kernel files, nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), sm ${archs}"
exit "$failed"

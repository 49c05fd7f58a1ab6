#!/usr/bin/env bash
# Compiles the NCCL path of the c10d communicator (src/dist/comm_c10d.cpp with USE_C10D_NCCL) against
# the LibTorch headers found and the CUDA toolkit's headers (cuda_runtime.h, nccl.h), as CI does on
# each submission with Debian's CPU LibTorch (its headers ship ProcessGroupNCCL.hpp). Syntax only: a
# CPU LibTorch has no ProcessGroupNCCL symbols to link (a CUDA build links them; docs/gpu.md).
# Exit 0 when it compiles, 1 when it does not, 77 (CTest's "skipped") with one line when a header is missing.
# TORCH_INCLUDE: LibTorch's include dir (default /usr/include); CUDA_HOME: default /usr/local/cuda.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_inc="${TORCH_INCLUDE:-/usr/include}"
cuda="${CUDA_HOME:-/usr/local/cuda}"
cxx="${CXX:-c++}"
for need in "$torch_inc/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp" "$cuda/include/nccl.h" "$cuda/include/cuda_runtime.h"; do
  if [ ! -f "$need" ]; then echo "[ SKIPPED ] DistNcclCompile: $need not found"; exit 77; fi
done
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
# A LibTorch built without CUDA lacks this generated header; a CUDA build has it (the shim is not used then).
if [ ! -f "$torch_inc/c10/cuda/impl/cuda_cmake_macros.h" ]; then
  mkdir -p "$shim/c10/cuda/impl"
  printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$shim/c10/cuda/impl/cuda_cmake_macros.h"
fi
sys_inc=()
[ "$torch_inc" != /usr/include ] && sys_inc+=(-isystem "$torch_inc")   # /usr/include is already searched
cd "$here"
if "$cxx" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -D_GLIBCXX_USE_CXX11_ABI=1 \
    -DUSE_DISTRIBUTED -DUSE_C10D_GLOO -DUSE_C10D_NCCL -DFMT_SHARED -DSPDLOG_FMT_EXTERNAL \
    -Iinclude -Isrc "${sys_inc[@]}" -isystem "$torch_inc/torch/csrc/api/include" -isystem "$cuda/include" -isystem "$shim" \
    src/dist/comm_c10d.cpp; then
  echo "ok    src/dist/comm_c10d.cpp with USE_C10D_NCCL (ProcessGroupNCCL)"
else
  echo "FAIL  src/dist/comm_c10d.cpp with USE_C10D_NCCL"
  exit 1
fi

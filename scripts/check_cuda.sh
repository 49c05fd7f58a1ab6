#!/usr/bin/env bash
# LibTorch 2.6 + CUDA link check: builds gym with GYM_CUDA=ON against Debian 13 (trixie)'s
# libtorch-cuda-dev 2.6 (CUDA 12.4, NCCL, ProcessGroupNCCL) in a debootstrap chroot, runs the CPU test
# suite there (LibTorch 2.x compatibility; the CUDA tests skip themselves, there is no GPU), and checks
# that the linked CUDA build of gym starts and reports "no CUDA device" (that line is echoed).
# Called directly it never skips itself; .ci/run decides whether to call it (docs/gpu.md).
#
# Stages (each says "check_cuda: <stage>" with its time):
#   1 chroot  debootstrap trixie (main contrib non-free) into $cache/root, then apt-get the build and
#             CUDA packages. Docs and static CUDA libs are never unpacked (dpkg path-exclude); the
#             nvidia-cudnn download question is declined, and a generated stand-in libcudnn.so.9
#             whose functions abort lets the CUDA LibTorch link and load (link-only, no cuDNN here).
#             Done once: a stamp records the package list, so warm runs skip this stage.
#   2 sync    copies the clone (without .git and build*/) to /src/gym and ../shared to /src/shared in
#             the chroot; only changed files get a new mtime, so a fresh clone rebuilds nothing.
#   3 build   cmake -G Ninja -DGYM_CUDA=ON into /build (kept in $cache), ccache in $cache/root.
#   4 test    ctest in /build (the CPU suite), then `gym --version`, which must name "no CUDA device".
# In-chroot commands run in their own mount namespace (/proc, /dev, /sys bound there), so nothing
# stays mounted on the host whatever way the script ends; a trap also unmounts as belt and braces.
#
# Cache (reused between runs and fresh clones): $GYM_CHECK_CUDA_CACHE, default
# /var/cache/gym-check-cuda: root/ (chroot ~5 GB, with /build and the ccache inside), lock.
# Concurrent runs wait on the lock (flock). Needs root, util-linux and network on a cold run; installs
# debootstrap on the host when it is missing (a fresh CI machine has none).
# Env: GYM_CHECK_CUDA_CACHE, GYM_CHECK_CUDA_MIRROR (default http://deb.debian.org/debian),
#      GYM_CHECK_CUDA_JOBS (default 2), GYM_CHECK_CUDA_SHARED (default <clone>/../shared).
# Arguments are passed to ctest (e.g. -R Sft).
# Exit: 0 build, tests and the gym start check passed; 1 configure, build, a test or the start check
#       failed; 2 the check could not run (not root, a tool missing, chroot creation failed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${GYM_CHECK_CUDA_CACHE:-/var/cache/gym-check-cuda}"
root="$cache/root"
mirror="${GYM_CHECK_CUDA_MIRROR:-http://deb.debian.org/debian}"
jobs="${GYM_CHECK_CUDA_JOBS:-2}"
shared="${GYM_CHECK_CUDA_SHARED:-$here/../shared}"
suite=trixie
gcc13_dir=/usr/lib/gcc/x86_64-linux-gnu/13   # nvcc 12.4's host compiler is g++-13; the rest is g++-14

# The chroot's packages. libgloo-cuda-dev, not libgloo-dev (libgloo0 conflicts with the CUDA
# LibTorch's libgloo-cuda-0). libnccl-dev: ProcessGroupNCCL.hpp includes nccl.h, and
# libtorch-cuda-dev does not pull it in.
PACKAGES=(
  libtorch-cuda-dev nvidia-cuda-toolkit nvidia-cuda-toolkit-gcc libgloo-cuda-dev libnccl-dev
  g++ cmake ninja-build ccache pkg-config rsync python3
  libopenblas0-pthread libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libpcre2-dev libutf8proc-dev bubblewrap libpng-dev
)

log() { printf 'check_cuda: %s\n' "$*"; }
fail_setup() { log "cannot run: $*" >&2; exit 2; }
fail_check() { log "FAILED: $*" >&2; exit 1; }
stage_start() { stage_t0=$SECONDS; log "$1"; }
stage_end() { log "$1 done in $((SECONDS - stage_t0)) s"; }

preflight() {
  [ "$(id -u)" -eq 0 ] || fail_setup "needs root (debootstrap, chroot, mounts)"
  # A fresh machine (CI clones afresh) has util-linux but not debootstrap: install it, as setup.sh
  # installs the build's own packages.
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
      fail_setup "debootstrap is missing and apt-get could not install it"
  fi
  local tool
  for tool in debootstrap unshare flock chroot mount; do
    command -v "$tool" >/dev/null 2>&1 || fail_setup "$tool not found (apt-get install debootstrap util-linux)"
  done
  [ -d "$shared" ] || log "warning: $shared not found; tests that read ../shared will fail"
}

take_lock() {
  mkdir -p "$cache"
  exec 9>"$cache/lock"
  if ! flock -n 9; then
    log "waiting for another check_cuda.sh run (lock $cache/lock)"
    flock 9
  fi
}

# Runs "$@" chrooted into $root, in a private mount namespace with /proc, /dev and /sys bound.
in_root() {
  unshare --mount --propagation private --fork -- /bin/sh -euc '
    r=$1; shift
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount --rbind -o ro /sys "$r/sys" 2>/dev/null || mount --rbind /sys "$r/sys"
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"' in_root "$root" "$@"
}

cleanup() {
  # Only needed if a mount escaped its namespace (it should not); never fails the run.
  local m
  for m in sys dev proc; do
    mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m" 2>/dev/null || true
  done
}

package_stamp() { printf '%s\n' "$suite" "${PACKAGES[@]}" | md5sum | cut -d' ' -f1; }

bootstrap_base() {
  [ -x "$root/usr/bin/apt-get" ] && [ -f "$root/.gym-debootstrap-done" ] && return 0
  rm -rf "$root"
  mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
  write_dpkg_config
  unshare --mount --propagation private -- debootstrap --variant=minbase \
    --components=main,contrib,non-free,non-free-firmware "$suite" "$root" "$mirror" ||
    fail_setup "debootstrap $suite from $mirror failed (log: $root/debootstrap/debootstrap.log)"
  write_dpkg_config   # debootstrap may have replaced the folder's contents
  touch "$root/.gym-debootstrap-done"
}

# Docs, man pages, locales and the static CUDA libs are never unpacked (~3 GB less on disk).
# libcudart_static.a stays: CMake's CUDA language links it when it checks the compiler.
# force-unsafe-io: no fsync per file (a throwaway chroot; unpacking is several times faster).
write_dpkg_config() {
  cat >"$root/etc/dpkg/dpkg.cfg.d/90-gym-check-cuda" <<'EOF'
force-unsafe-io
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/doc-base/*
path-exclude=/usr/lib/x86_64-linux-gnu/*_static.a
path-exclude=/usr/lib/x86_64-linux-gnu/*_static_*.a
path-exclude=/usr/lib/nvidia-cuda-toolkit/doc/*
path-include=/usr/lib/x86_64-linux-gnu/libcudart_static.a
EOF
}

install_packages() {
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main contrib non-free non-free-firmware
EOF
  cat >"$root/etc/apt/apt.conf.d/90-gym-check-cuda" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Retries "3";
EOF
  # nvidia-cudnn's postinst downloads cuDNN from NVIDIA when its license question is answered
  # "I Agree" (the default); that cannot work here, so the question is declined.
  echo 'nvidia-cudnn nvidia-cudnn/question select I Decline' | in_root debconf-set-selections
  in_root apt-get update -qq || fail_setup "apt-get update in the chroot failed"
  in_root apt-get install -y -q "${PACKAGES[@]}" >"$cache/apt.log" 2>&1 ||
    fail_setup "apt-get install in the chroot failed (log: $cache/apt.log)"
  in_root apt-get clean
}

# The stand-in libcudnn.so.9: every cudnn* function the CUDA LibTorch imports (versioned
# libcudnn.so.9, as the real one), each printing its name and aborting. It exists so LibTorch links
# and loads without cuDNN, which cannot be fetched here: a link-only device, no cuDNN call works.
make_cudnn_stub() {
  local dir=/usr/local/lib/gym-cudnn-stub s
  mkdir -p "$root$dir"
  in_root /bin/sh -c 'nm -D --undefined-only /usr/lib/x86_64-linux-gnu/libtorch*.so.*.*.*' |
    awk '$2 ~ /^cudnn[A-Za-z0-9_]*@libcudnn\.so\.9$/ {sub(/@.*/, "", $2); print $2}' | sort -u \
    >"$root$dir/symbols.txt"
  [ -s "$root$dir/symbols.txt" ] || fail_setup "no cudnn symbols found in the chroot's LibTorch"
  {
    echo '/* Generated by scripts/check_cuda.sh: a link-only stand-in for cuDNN 9. */'
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo 'static void stub(const char* f) { fprintf(stderr, "%s: libcudnn.so.9 is a link-only stand-in\n", f); abort(); }'
    while read -r s; do echo "int $s(void) { stub(\"$s\"); return 0; }"; done <"$root$dir/symbols.txt"
  } >"$root$dir/cudnn_stub.c"
  echo 'libcudnn.so.9 { global: cudnn*; local: *; };' >"$root$dir/cudnn_stub.map"
  in_root gcc -shared -fPIC -O1 -Wl,-soname,libcudnn.so.9 -Wl,--version-script,$dir/cudnn_stub.map \
    -o "$dir/libcudnn.so.9" "$dir/cudnn_stub.c" || fail_setup "building the cuDNN stand-in failed"
  echo "$dir" >"$root/etc/ld.so.conf.d/gym-cudnn-stub.conf"
  in_root ldconfig
  log "cuDNN stand-in: $(wc -l <"$root$dir/symbols.txt") functions in $dir/libcudnn.so.9 (link-only)"
}

stage_chroot() {
  stage_start "chroot ($root)"
  local want; want="$(package_stamp)"
  if [ "$(cat "$root/.gym-packages" 2>/dev/null)" = "$want" ]; then
    log "chroot ready (cached)"
  else
    bootstrap_base
    install_packages
    make_cudnn_stub
    echo "$want" >"$root/.gym-packages"
  fi
  stage_end chroot
}

stage_sync() {
  stage_start "sync sources to /src/gym and /src/shared"
  mkdir -p "$root/src/gym" "$root/src/shared" "$root/mnt/clone" "$root/mnt/shared"
  # -c: files are compared by content and copied without their mtime, so unchanged files keep the
  # mtimes ninja saw last time; a fresh clone (new mtimes everywhere) then rebuilds nothing.
  unshare --mount --propagation private --fork -- /bin/sh -euc '
    r=$1; clone=$2; shared=$3
    mount --bind -o ro "$clone" "$r/mnt/clone"
    [ -d "$shared" ] && mount --bind -o ro "$shared" "$r/mnt/shared"
    exec chroot "$r" /bin/sh -euc "
      rsync -rlc --delete --exclude=/.git --exclude=/build*/ /mnt/clone/ /src/gym/
      rsync -rlc --delete /mnt/shared/ /src/shared/"' sync "$root" "$here" "$shared"
  stage_end sync
}

stage_build() {
  stage_start "build (GYM_CUDA=ON, -j$jobs)"
  local env=(CCACHE_DIR=/var/cache/ccache CCACHE_MAXSIZE=5G
             CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES_EXCLUDE="$gcc13_dir")
  # The exclusion keeps g++-13's folder (libstdc++ 13) out of the g++-14 link lines; it is read when
  # CMake detects the CUDA compiler, i.e. on the first configure of /build.
  in_root env "${env[@]}" cmake -S /src/gym -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGYM_CUDA=ON -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache >"$cache/configure.log" 2>&1 ||
    { tail -30 "$cache/configure.log"; fail_check "cmake configure (log: $cache/configure.log)"; }
  grep -E 'gym: CUDA kernels|Found CUDA|Torch' "$cache/configure.log" | sed 's/^/  /' || true
  in_root env "${env[@]}" ninja -C /build -j"$jobs" >"$cache/build.log" 2>&1 ||
    { grep -E 'error|FAILED' "$cache/build.log" | head -30; fail_check "build (log: $cache/build.log)"; }
  tail -1 "$cache/build.log" | sed 's/^/  /'
  stage_end build
}

stage_test() {
  stage_start "test (ctest in the chroot, -j$jobs)"
  local rc=0
  in_root /bin/sh -c 'cd /build && exec ctest --output-on-failure -j"$0" "$@"' "$jobs" "$@" \
    >"$cache/ctest.log" 2>&1 || rc=$?
  sed -n '/tests passed\|tests failed/,$p' "$cache/ctest.log"
  log "skipped: $(grep -c '(Skipped)' "$cache/ctest.log" || true) (full log: $cache/ctest.log)"
  stage_end test
  return "$rc"
}

# gym --version names the CUDA devices LibTorch sees; in the chroot there is none.
check_gym_starts() {
  local out
  out="$(in_root /build/gym --version 2>&1)" || { echo "$out"; fail_check "gym --version did not start"; }
  echo "$out" | sed 's/^/  /'
  local line; line="$(echo "$out" | grep 'no CUDA device' | head -1)" ||
    fail_check "gym --version printed no line with 'no CUDA device'"
  echo "$line"
}

main() {
  local t0=$SECONDS test_rc=0
  preflight
  take_lock
  trap cleanup EXIT
  stage_chroot
  stage_sync
  stage_build
  stage_test "$@" || test_rc=$?
  check_gym_starts
  [ "$test_rc" -eq 0 ] || fail_check "ctest exit $test_rc (log: $cache/ctest.log)"
  log "ok: LibTorch 2.6 + CUDA 12.4 build, tests and start check passed in $((SECONDS - t0)) s"
}

main "$@"

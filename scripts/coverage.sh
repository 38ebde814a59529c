#!/usr/bin/env bash
# Line coverage of the whole test suite (every feature, real servers), with cargo-llvm-cov.
# Installs what is missing: Debian's llvm-22 (rustc's LLVM major version) and cargo-llvm-cov.
# Prints the summary table; the last line is the total.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/corekit/target}"

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
llvm_bin="/usr/lib/llvm-${llvm_major}/bin"
if [ ! -x "$llvm_bin/llvm-cov" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "llvm-${llvm_major}" >/dev/null
fi
export LLVM_COV="$llvm_bin/llvm-cov" LLVM_PROFDATA="$llvm_bin/llvm-profdata"
command -v cargo-llvm-cov >/dev/null || cargo install cargo-llvm-cov --locked

scripts/services.sh up
cargo llvm-cov --all-features --summary-only "$@"

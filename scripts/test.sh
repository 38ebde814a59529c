#!/usr/bin/env bash
# The whole test suite: starts (installing where missing) every server the tests need, then runs
# every test with every feature. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Keep the build outside the clone so a fresh clone (CI's) reuses it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/corekit/target}"
# CI restarts the emulators this script owns with empty data, as on a fresh machine.
if [ "${CI:-}" = true ]; then scripts/services.sh fresh; else scripts/services.sh up; fi
cargo test --all-features "$@"

#!/usr/bin/env bash
# One command for the whole benchmark: builds everything (release), runs every case, writes
# bench/RESULTS.md. `bench/run.sh --quick` is a small smoke run (writes bench/RESULTS-quick.md).
# See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target/bench}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
exec python3 driver.py "$@"

#!/usr/bin/env bash
# CI smoke run of every fuzz target: SECONDS_PER_TARGET each (default 60), zero crashes allowed.
# The committed seed corpus is read-only input; new units go to a scratch directory.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${SECONDS_PER_TARGET:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# No sanitizer: plain stable toolchain (an AddressSanitizer build needs RUSTC_BOOTSTRAP=1).
cargo fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|Done|==[0-9]+== ERROR|SUMMARY|thread .* panicked)' || true
  if [ -d "artifacts/$target" ] && [ -n "$(ls -A "artifacts/$target")" ]; then
    echo "fuzz: $target found a crash: fuzz/artifacts/$target" >&2
    exit 1
  fi
done
echo "fuzz: every target ran ${seconds}s with no crash"

#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/fuzz_targets) for SECONDS each, starting
# from the committed seed corpora and the MQTT dictionary.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s, every target
#
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the
# stable toolchain. New inputs go to target/fuzz-corpus/, not the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(parse_connect decide rewrite)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=$PWD/target/fuzz
for target in "${targets[@]}"; do
    work=$PWD/target/fuzz-corpus/$target
    mkdir -p "$work"
    echo "== fuzz $target for ${seconds}s"
    (cd fuzz && cargo fuzz run "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -dict=mqtt.dict -print_final_stats=1 2>&1) |
        grep -E '^(#[0-9]+.*(DONE|pulse)|Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|panicked)' |
        tail -8
done

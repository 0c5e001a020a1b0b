#!/usr/bin/env bash
# Gateway benchmarks: builds the load generator and the module (vendored
# nginx 1.28 and Debian's nginx 1.22), runs every gateway and measurement,
# and writes docs/BENCHMARKS.md + docs/bench-*.png.
#
#   bench/run.sh            full run (~10-15 min)
#   bench/run.sh --quick    fewer connections, one repetition (~3 min)
#   bench/run.sh --no-build use what is already built
#   bench/run.sh --report-only   rewrite the docs from bench/results/results.json
#   bench/run.sh --no-build --phases cpu --merge   re-run one phase (e.g. on a quieter machine)
#   (other arguments go to bench/bench.py: --only a,b  --phases check,callgrind,strace,cpu)
#
# Needs (Debian 12) the packages of `scripts/deps.sh build test bench` and
# python3; BENCH_APT=1 installs them.
# Build outputs go to $BENCH_TARGET_DIR (default target/bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${BENCH_TARGET_DIR:-$root/target/bench}
build=1
args=()
for a in "$@"; do
    case $a in
        --no-build) build="" ;;
        *) args+=("$a") ;;
    esac
done
for a in "${args[@]}"; do [[ $a == --report-only ]] && build=""; done

if [[ ${BENCH_APT:-} == 1 ]]; then
    scripts/deps.sh build test bench
fi
for tool in /usr/sbin/nginx /usr/sbin/haproxy valgrind callgrind_control callgrind_annotate strace taskset python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (BENCH_APT=1 installs it)" >&2; exit 1; }
done
# The charts need matplotlib: Debian's python3-matplotlib serves /usr/bin/python3,
# which may not be the python3 first on PATH.
python=python3
"$python" -c 'import matplotlib' 2>/dev/null || python=/usr/bin/python3
"$python" -c 'import matplotlib' 2>/dev/null || { echo "run.sh: python3-matplotlib is missing (BENCH_APT=1 installs it)" >&2; exit 1; }

loadgen=$root/bench/loadgen/target/release/loadgen
debian_module=$target/debian-module/ngx_stream_mqtt_preread_module.so
vendored_module=$target/release/libngx_stream_mqtt_preread_module.so
if [[ -n $build ]]; then
    echo "== building the load generator"
    cargo build --release --quiet --manifest-path bench/loadgen/Cargo.toml
    echo "== building the module for the vendored nginx 1.28 (into $target)"
    CARGO_TARGET_DIR=$target cargo build --release --quiet
    echo "== building the module for Debian's nginx 1.22"
    scripts/build-module.sh --nginx /usr/sbin/nginx --source /usr/share/nginx/src --out "$target/debian-module" \
        >"$target/debian-module.log" 2>&1 || { tail -20 "$target/debian-module.log" >&2; exit 1; }
fi
vendored_nginx=$(ls -t "$target"/release/build/nginx-sys-*/out/objs/nginx 2>/dev/null | head -1 || true)
for f in "$loadgen" "$debian_module" "$vendored_module" "$vendored_nginx"; do
    [[ -n $f && -e $f ]] || { echo "run.sh: missing build output ${f:-vendored nginx}; run without --no-build" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "$python" bench/bench.py --loadgen "$loadgen" --vendored-nginx "$vendored_nginx" \
    --vendored-module "$vendored_module" --debian-module "$debian_module" "${args[@]}"

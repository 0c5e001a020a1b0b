#!/usr/bin/env bash
# Heavy reliability runs (several minutes; docs/RELIABILITY.md records the
# figures). Everything runs on 127.0.0.1, every load is bounded, and every
# process is stopped by PID.
#
#   scripts/soak.sh              all of: slow leaks valgrind scale fleet
#   scripts/soak.sh slow leaks   only those
#   scripts/soak.sh --quick      scale, and fleet compare at 10,000 devices
#
#   slow      1,000 slow clients (stalled, trickling, silent; TCP and TLS) closed
#             by preread_timeout while devices connect (tests/reliability_slow.rs)
#   leaks     worker RSS over 100,000 sessions of every outcome (tests/reliability_leaks.rs)
#   valgrind  nginx + module under valgrind memcheck over every outcome, the
#             malformed flood and first packets of every size (tests/reliability_scenarios.rs,
#             reliability_malformed.rs, forwarding.rs), and admission control
#             with its zones full, across a reload and on takeovers (admission.rs)
#   scale     10,000 concurrent mutual-TLS sessions to three brokers, held ~a minute,
#             every device publishing (scripts/soak/scale.py, bench/loadgen)
#   fleet     the same devices through (a) nginx proxy_pass only, (b) nginx + the
#             module, (d) HAProxy 2.6 with MQTT rules; tuning one setting at a
#             time; upstream source addresses; reconnect storms, in a private
#             network namespace (scripts/soak/fleet.py, docs/SCALE.md). Debian's
#             nginx 1.22 with target/distro-module (built if missing).
#
# Environment: SOAK_OUT (default target/soak) for logs and JSON;
# SCALE_SESSIONS (10000), SCALE_HOLD (80 s), SCALE_RAMP (500/s);
# SOAK_SLOW_CLIENTS (1000); SOAK_LEAK_SESSIONS (100000);
# FLEET_SESSIONS (10000; the full run is 100000), FLEET_MODES
# ("compare tune ports storm storm-limit"), FLEET_RAMP (200/s), FLEET_HOLD (60 s),
# FLEET_RETRY (set: in compare, a device that times out connects again);
# CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RUNS=("$@")
if [[ ${RUNS[0]:-} == --quick ]]; then
    RUNS=(scale fleet)
    export FLEET_SESSIONS=10000 FLEET_MODES=compare
fi
[[ ${#RUNS[@]} -eq 0 ]] && RUNS=(slow leaks valgrind scale fleet)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$(realpath -m "${SOAK_OUT:-$TARGET/soak}")
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$TARGET
export SOAK_SLOW_CLIENTS=${SOAK_SLOW_CLIENTS:-1000}
export SOAK_LEAK_SESSIONS=${SOAK_LEAK_SESSIONS:-100000}

# As many descriptors as we may have (the hard limit; root may not raise it
# in a container).
ulimit -n "$(ulimit -Hn)"
echo "== soak $(date -u +%FT%TZ): ${RUNS[*]}; output in $OUT; RLIMIT_NOFILE $(ulimit -n)"

newest_nginx() { ls -t "$TARGET/$1"/build/nginx-sys-*/out/objs/nginx | head -1; }
status=0
record() { # name, exit code
    echo "$1: $([[ $2 -eq 0 ]] && echo PASS || echo "FAIL ($2)")" | tee -a "$OUT/summary.txt"
    [[ $2 -eq 0 ]] || status=1
}
: > "$OUT/summary.txt"

for run in "${RUNS[@]}"; do
    case $run in
    slow | leaks)
        cargo build --release --locked -q
        test=reliability_$run
        echo "== $run (release build)"
        set +e
        cargo nextest run --release --locked --test "$test" --no-capture 2>&1 | tee "$OUT/$run.log"
        record "$run" "${PIPESTATUS[0]}"
        set -e
        ;;
    valgrind)
        command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)"; exit 1; }
        cargo build --locked -q # debug: line numbers in the stacks
        VG_LOG_DIR=$OUT/valgrind
        rm -rf "$VG_LOG_DIR" && mkdir -p "$VG_LOG_DIR"
        echo "== valgrind (debug build), logs in $VG_LOG_DIR"
        set +e
        MQTT_TEST_NGINX=$ROOT/scripts/soak/valgrind-nginx.sh VG_NGINX=$(newest_nginx debug) \
            VG_LOG_DIR=$VG_LOG_DIR \
            cargo nextest run --locked --no-fail-fast \
            --test reliability_scenarios --test reliability_malformed --test forwarding \
            --test admission -E 'not test(connect_rate_is_limited_per_device_across_workers)' \
            2>&1 | tee "$OUT/valgrind.log"
        tests=${PIPESTATUS[0]}
        set -e
        # Every error valgrind reported (after nginx.supp), and those with a
        # frame in the module.
        errors=0 module=0 procs=0
        for log in "$VG_LOG_DIR"/vg.*.log; do
            procs=$((procs + 1))
            if [[ -s $log ]]; then
                n=$(grep -cE '^==[0-9]+== (Invalid|Conditional|Use of uninit|Syscall param|Mismatched|.*(definitely|indirectly) lost in loss record)' "$log" || true)
                errors=$((errors + n))
                if grep -qE 'ngx_stream_mqtt|mqtt_preread|libngx_stream_mqtt' "$log"; then
                    module=$((module + 1))
                    echo "module frames in $log"
                fi
            fi
        done
        echo "valgrind: $procs nginx processes, $errors errors reported, $module logs naming the module" |
            tee -a "$OUT/summary.txt"
        record "valgrind end-to-end tests" "$tests"
        record "valgrind errors" "$((errors + module))"
        ;;
    scale)
        cargo build --release --locked -q
        cargo build --release --locked -q --manifest-path bench/loadgen/Cargo.toml \
            --target-dir "$TARGET/loadgen"
        echo "== scale (release build)"
        set +e
        python3 scripts/soak/scale.py --nginx "$(newest_nginx release)" \
            --module "$TARGET/release/libngx_stream_mqtt_preread_module.so" \
            --preload "${MQTT_TEST_PRELOAD:-}" \
            --loadgen "$TARGET/loadgen/release/loadgen" --out "$OUT/scale" \
            --sessions "${SCALE_SESSIONS:-10000}" --hold "${SCALE_HOLD:-80}" \
            --ramp "${SCALE_RAMP:-500}" 2>&1 | tee "$OUT/scale.log"
        record scale "${PIPESTATUS[0]}"
        set -e
        ;;
    fleet)
        cargo build --release --locked -q --manifest-path bench/loadgen/Cargo.toml \
            --target-dir "$TARGET/loadgen"
        module=${FLEET_MODULE:-$TARGET/distro-module/ngx_stream_mqtt_preread_module.so}
        [[ -f $module ]] || scripts/build-module.sh --nginx /usr/sbin/nginx \
            --source /usr/share/nginx/src --out "$(dirname "$module")"
        n=${FLEET_SESSIONS:-10000}
        echo "== fleet ($n devices)"
        for mode in ${FLEET_MODES:-compare tune ports storm storm-limit}; do
            label=$mode extra=()
            case $mode in
            tune) extra=(--sessions "$((n < 5000 ? n : 5000))" --publish-interval 0 --hold 30) ;;
            ports) extra=(--sessions 3000 --brokers 1 --port-range "50000 50999") ;;
            storm-limit) mode=storm extra=(--sessions "$n" --limit) ;;
            *) extra=(--sessions "$n" ${FLEET_RETRY:+--retry}) ;;
            esac
            set +e
            python3 scripts/soak/fleet.py "$mode" --module "$module" \
                --loadgen "$TARGET/loadgen/release/loadgen" --certs "$OUT/fleet/certs-$n" \
                --out "$OUT/fleet" --ramp "${FLEET_RAMP:-200}" --hold "${FLEET_HOLD:-60}" \
                "${extra[@]}" 2>&1 | tee "$OUT/fleet-$label.log"
            # ports: the run without proxy_bind fails by design; the check is the fix.
            record "fleet $label" "${PIPESTATUS[0]}"
            set -e
        done
        ;;
    *)
        echo "unknown run $run (slow leaks valgrind scale fleet)"
        exit 2
        ;;
    esac
done
echo "== summary"
cat "$OUT/summary.txt"
exit $status

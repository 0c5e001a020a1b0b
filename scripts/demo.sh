#!/usr/bin/env bash
# The gateway demo: builds the module and the vendored nginx, makes a demo PKI,
# starts three mosquitto brokers and nginx on 127.0.0.1, and walks through
# what the gateway does with real mosquitto clients. Everything it starts is
# stopped when it ends; the logs stay in target/demo/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/deps.sh build test
scripts/build-module.sh --out "$root/dist/vendored"

demo=$root/target/demo
rm -rf "$demo"
mkdir -p "$demo"/{logs,modules,brokers}
cp dist/vendored/ngx_stream_mqtt_preread_module.so "$demo/modules/"
cp nginx-conf/demo.conf "$demo/nginx.conf"
scripts/demo-pki.sh "$demo/certs" thing001 thing002 >/dev/null

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing is listening on 127.0.0.1:$1" >&2
    exit 1
}

for port in 1883 8883 18831 18832 18833; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use; the demo needs 1883, 8883 and 18831-18833" >&2
        exit 1
    fi
done

for port in 18831 18832 18833; do
    cat >"$demo/brokers/$port.conf" <<CONF
listener $port 127.0.0.1
user $(id -un)
allow_anonymous true
persistence false
log_dest file $demo/brokers/$port.log
connection_messages true
CONF
    mosquitto -c "$demo/brokers/$port.conf" &
    pids+=($!)
done
dist/vendored/nginx -p "$demo" -c "$demo/nginx.conf" -g "daemon off; pid $demo/nginx.pid;" &
pids+=($!)
for port in 18831 18832 18833 1883 8883; do wait_port "$port"; done
# The readiness probes above are sessions too; start the logs after them.
: >"$demo/logs/mqtt-access.log"
: >"$demo/logs/error.log"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
last_upstream() { tail -1 "$demo/logs/mqtt-access.log" | sed -n 's/.*upstream=\([0-9.:]*\).*/\1/p'; }
tls=(-p 8883 --cafile "$demo/certs/root.crt")

say "1. Device thing001 publishes through nginx (plain MQTT on 1883)."
broker=""
mosquitto_pub -h 127.0.0.1 -p 1883 -i thing001 -t fleet/thing001/temp -m 21.5 -q 1
sleep 0.2
broker=$(last_upstream)
echo "   nginx hashed ClientId thing001 to broker $broker."
echo "   A subscriber on that broker receives what thing001 publishes:"
mosquitto_sub -h 127.0.0.1 -p "${broker##*:}" -t 'fleet/#' -C 1 -W 5 -v >"$demo/received.txt" &
sub=$!
sleep 0.3
mosquitto_pub -h 127.0.0.1 -p 1883 -i thing001 -t fleet/thing001/temp -m 22.0 -q 1
wait "$sub" || true
sed 's/^/   received: /' "$demo/received.txt"

say "2. thing001 reconnects, over mutual TLS (8883) with its own certificate."
mosquitto_pub -h 127.0.0.1 "${tls[@]}" --cert "$demo/certs/thing001.crt" \
    --key "$demo/certs/thing001.key" -i thing001 -t fleet/thing001/temp -m 22.4 -q 1
sleep 0.2
again=$(last_upstream)
echo "   ClientId thing001 == certificate CN thing001: accepted, routed to $again."
[[ $again == "$broker" ]] && echo "   Same broker as before: its session is where it left it."

say "3. A device with thing002's certificate claims to be thing001."
mosquitto_pub -h 127.0.0.1 "${tls[@]}" --cert "$demo/certs/thing002.crt" \
    --key "$demo/certs/thing002.key" -i thing001 -t fleet/thing001/temp -m 99 2>&1 |
    sed 's/^/   mosquitto_pub: /' || true
echo "   nginx answered with CONNACK 0x02 (identifier rejected) and closed;"
echo "   nothing reached a broker."

say "4. A device without a certificate."
mosquitto_pub -h 127.0.0.1 "${tls[@]}" -i thing003 -t fleet/thing003/temp -m 1 2>&1 |
    sed 's/^/   mosquitto_pub: /' || true
echo "   nginx answered with CONNACK 0x05 (not authorised) and closed."

sleep 0.2
say "What nginx logged"
sed 's/^/   /' "$demo/logs/mqtt-access.log"
grep 'mqtt preread: rejected' "$demo/logs/error.log" | sed 's/^.*mqtt preread: /   /' || true

say "Done. Logs: $demo/logs/ (nginx), $demo/brokers/*.log (brokers). Everything started here is stopped now."

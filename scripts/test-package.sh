#!/usr/bin/env bash
# Tests the Debian package on this machine, as root: what an nginx user does
# with it, and that nothing of it is left behind.
#
#   scripts/test-package.sh [DEB]     (default: build it with scripts/package-deb.sh)
#   SKIP_E2E=1 scripts/test-package.sh   without the end-to-end suite
#
#  1. apt refuses the package for another nginx ABI (a copy of it with the
#     nginx-abi dependency changed);
#  2. `apt-get install ./DEB`; the module, its modules-available file and the
#     modules-enabled link are in place, and the stock Debian configuration
#     passes `nginx -t` with the module loaded;
#  3. the end-to-end suite, against /usr/sbin/nginx and the installed .so;
#  4. a gateway: the stock /etc/nginx/nginx.conf plus one stream {} block,
#     a mosquitto broker, and mosquitto_pub publishing through nginx;
#  5. `apt-get remove` sets the link aside, and a reinstallation restores it;
#  6. `apt-get purge` removes all of it; the stock configuration still passes
#     `nginx -t`, and nginx still starts.
#
# nginx and mosquitto listen on 127.0.0.1 only, with their own pid files, and
# are stopped by PID. The copies of nginx.conf leave out the stock
# `include /etc/nginx/sites-enabled/*;` (the default site listens on port 80
# of every address) and write their pid and logs under target/test-package/.
# The package is purged when the script ends, whether or not a test failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
package=libnginx-mod-stream-mqtt-preread
module=/usr/lib/nginx/modules/ngx_stream_mqtt_preread_module.so
available=/usr/share/nginx/modules-available/mod-stream-mqtt-preread.conf
link=/etc/nginx/modules-enabled/60-mod-stream-mqtt-preread.conf
work=$root/target/test-package

[[ $(id -u) -eq 0 ]] || { echo "test-package.sh: installs a package, run it as root" >&2; exit 1; }

if [[ $# -gt 0 ]]; then
    deb=$(realpath "$1")
else
    scripts/package-deb.sh
    version=$(cargo pkgid --locked -p ngx_stream_mqtt_preread_module | sed 's/.*[#@]//')
    deb=$root/dist/${package}_${version//-/\~}_$(dpkg --print-architecture).deb
fi
scripts/deps.sh build test

if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep "installed" >/dev/null; then
    echo "test-package.sh: $package is installed already; purge it first" >&2
    exit 1
fi

rm -rf "$work"
mkdir -p "$work"
pids=()
created_policy=""
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        if kill "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
        fi
    done
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep "install\|config-files" >/dev/null; then
        apt_get purge "$package" || true
    fi
    [[ -z $created_policy ]] || rm -f /usr/sbin/policy-rc.d
    exit "$status"
}
trap cleanup EXIT

# The package triggers an nginx reload; no service of this machine's is
# reloaded for a test (as in scripts/deps.sh).
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi

apt_get() {
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 "$@" \
        >>"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; return 1; }
}

step() { echo "== package: $*"; }
fail() { echo "test-package.sh: FAILED: $*" >&2; exit 1; }

# A port below the kernel's ephemeral range (ip_local_port_range starts at
# 32768), so that no outgoing connection can be holding it, and that no
# socket of any state uses; never one already handed out by this script.
# Sets the variable named $1.
taken_ports=()
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        [[ " ${taken_ports[*]} " == *" $port "* ]] && continue
        [[ -n $(ss -Htan "sport = :$port") ]] && continue
        taken_ports+=("$port")
        printf -v "$1" '%s' "$port"
        return
    done
}

# Waits until something listens on $1, while process $2 runs; on failure
# shows the end of the files after them, that process's output and logs.
wait_port() {
    local port=$1 pid=$2
    shift 2
    for _ in $(seq 100); do
        [[ -z $(ss -Htln "sport = :$port") ]] || return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$@" >&2 2>/dev/null || true
            fail "process $pid exited before listening on $port"
        fi
        sleep 0.1
    done
    tail -n 20 "$@" >&2 2>/dev/null || true
    fail "nothing listens on 127.0.0.1:$port"
}

# A copy of the stock nginx.conf that can run beside any other nginx: no
# default site, its own pid file and logs.
stock_copy() {
    sed -e '\|include /etc/nginx/sites-enabled/\*;|d' \
        -e "s|^pid .*|pid $1/nginx.pid;|" \
        -e "s|/var/log/nginx/|$1/|g" /etc/nginx/nginx.conf
}

# Runs nginx in the foreground (so that $! is the master) with config $1.
start_nginx() {
    /usr/sbin/nginx -c "$1" -g 'daemon off;' >>"$work/nginx.out" 2>&1 &
    nginx_pid=$!
    pids+=("$nginx_pid")
}

stop_nginx() {
    kill -QUIT "$nginx_pid"
    wait "$nginx_pid" || true
}

step "apt refuses the package for another nginx ABI"
abi=$(dpkg-deb -f "$deb" Depends | grep -o 'nginx-abi-[^ ,]*')
dpkg-deb -R "$deb" "$work/other-abi"
sed -i "s/$abi/nginx-abi-0.0.0-0/" "$work/other-abi/DEBIAN/control"
dpkg-deb --root-owner-group -b "$work/other-abi" "$work/other-abi.deb" >/dev/null
if apt-get install -s "$work/other-abi.deb" >"$work/other-abi.log" 2>&1; then
    fail "apt would install a package that depends on nginx-abi-0.0.0-0"
fi
grep -q "nginx-abi-0.0.0-0" "$work/other-abi.log" || { cat "$work/other-abi.log" >&2; fail "unexpected apt error"; }

step "apt-get install $(basename "$deb")"
apt_get install "$deb"
[[ -f $module ]] || fail "$module missing"
grep -qx "load_module modules/ngx_stream_mqtt_preread_module.so;" "$available" || fail "$available"
[[ $(readlink "$link") == "$available" ]] || fail "$link does not point to $available"

step "nginx -t with the stock configuration"
/usr/sbin/nginx -t -q
# The stock configuration loads the stream module, then this one.
/usr/sbin/nginx -T 2>/dev/null | grep '^load_module' >"$work/load_module"
stream_line=$(grep -nx 'load_module modules/ngx_stream_module.so;' "$work/load_module" | cut -d: -f1)
mqtt_line=$(grep -nx 'load_module modules/ngx_stream_mqtt_preread_module.so;' "$work/load_module" | cut -d: -f1)
[[ -n $stream_line && -n $mqtt_line && $stream_line -lt $mqtt_line ]] ||
    { cat "$work/load_module" >&2; fail "nginx -T does not load the stream module, then this one"; }

if [[ -z ${SKIP_E2E:-} ]]; then
    step "end-to-end suite: /usr/sbin/nginx with $module"
    MQTT_TEST_NGINX=/usr/sbin/nginx \
    MQTT_TEST_MODULE=$module \
    MQTT_TEST_PRELOAD=/usr/lib/nginx/modules/ngx_stream_module.so \
    MQTT_TEST_NJS=/usr/lib/nginx/modules/ngx_stream_js_module.so \
        cargo nextest run --locked --no-fail-fast --test '*'
fi

step "a gateway: the stock nginx.conf plus one stream {} block"
free_port broker
free_port gateway
cat >"$work/mosquitto.conf" <<EOF
listener $broker 127.0.0.1
allow_anonymous true
persistence false
log_dest file $work/mosquitto.log
# As root, mosquitto would drop to its own user, who cannot write that log.
user root
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.out" 2>&1 &
mosquitto_pid=$!
pids+=("$mosquitto_pid")
wait_port "$broker" "$mosquitto_pid" "$work/mosquitto.out" "$work/mosquitto.log"

mkdir -p "$work/gateway"
{
    stock_copy "$work/gateway"
    cat <<EOF

stream {
    log_format mqtt 'client_id="\$mqtt_client_id" status=\$status upstream=\$upstream_addr';

    upstream brokers {
        hash \$mqtt_client_id consistent;
        server 127.0.0.1:$broker;
    }

    server {
        listen 127.0.0.1:$gateway;
        mqtt_preread on;
        proxy_pass brokers;
        access_log $work/gateway/mqtt.log mqtt;
    }
}
EOF
} >"$work/gateway/nginx.conf"
start_nginx "$work/gateway/nginx.conf"
wait_port "$gateway" "$nginx_pid" "$work/nginx.out"

# Retained, so that the subscriber reads it whenever it is in.
mosquitto_pub -h 127.0.0.1 -p "$gateway" -i thing001 -t test/package -r -m "through the gateway"
mosquitto_sub -h 127.0.0.1 -p "$broker" -t test/package -C 1 -W 10 >"$work/received" ||
    fail "the broker has no message on test/package"
[[ $(cat "$work/received") == "through the gateway" ]] || fail "received: $(cat "$work/received")"
stop_nginx
grep -q "client_id=\"thing001\" status=200 upstream=127.0.0.1:$broker" "$work/gateway/mqtt.log" ||
    { cat "$work/gateway/mqtt.log" >&2; fail "no access-log line for thing001"; }
echo "   thing001 published through 127.0.0.1:$gateway to the broker on $broker"

step "apt-get remove sets the link aside; reinstalling restores it"
apt_get remove "$package"
[[ ! -e $link && -L $link.removed && ! -e $module ]] || fail "after remove: $(ls -l /etc/nginx/modules-enabled/)"
/usr/sbin/nginx -t -q
apt_get install "$deb"
[[ $(readlink "$link") == "$available" && ! -L $link.removed ]] || fail "link not restored"

step "apt-get purge removes everything"
apt_get purge "$package"
for path in "$module" "$available" "$link" "$link.removed"; do
    [[ ! -e $path && ! -L $path ]] || fail "$path is left after purge"
done
/usr/sbin/nginx -t -q

step "nginx starts after the purge"
mkdir -p "$work/after"
{
    stock_copy "$work/after"
    printf '\nstream {\n    server {\n        listen 127.0.0.1:%s;\n        return "nginx is up\\n";\n    }\n}\n' "$gateway"
} >"$work/after/nginx.conf"
start_nginx "$work/after/nginx.conf"
wait_port "$gateway" "$nginx_pid" "$work/nginx.out"
exec 3<>"/dev/tcp/127.0.0.1/$gateway"
read -r reply <&3
exec 3<&-
[[ $reply == "nginx is up" ]] || fail "nginx answered '$reply'"
stop_nginx
echo "== package: all passed"

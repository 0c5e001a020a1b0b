#!/usr/bin/env bash
# Installs the system packages a build, the tests or the demo need.
#   scripts/deps.sh [build|test|package|bench]...   (default: build test)
# As root, missing packages are installed with apt-get; otherwise the script
# names them and exits non-zero.
set -euo pipefail

declare -A groups=(
    # bindgen needs libclang; the vendored nginx needs PCRE2, zlib and OpenSSL
    # headers; libFuzzer (scripts/fuzz.sh) is C++.
    [build]="libclang-dev libpcre2-dev zlib1g-dev libssl-dev make gcc g++"
    # real brokers, clients, PKI tooling, and Debian's nginx 1.22 with its
    # sources (njs: a preread handler that runs before this module's).
    # Prometheus (and promtool) scrape mqtt_status in tests/metrics.rs.
    [test]="mosquitto mosquitto-clients openssl nginx nginx-dev libnginx-mod-stream libnginx-mod-stream-js prometheus"
    # scripts/package-deb.sh: the nginx the package is for, its sources, and
    # the stream module the package depends on.
    [package]="nginx nginx-dev libnginx-mod-stream"
    # the other gateways and the measuring tools of the benchmark; the
    # allocators that scripts/soak/fleet.py's tuning runs try under nginx.
    [bench]="haproxy valgrind strace python3-matplotlib libjemalloc2 libtcmalloc-minimal4"
)

wanted=()
for group in "${@:-build test}"; do
    for g in $group; do
        [[ -n "${groups[$g]:-}" ]] || { echo "deps.sh: unknown group '$g'" >&2; exit 2; }
        read -ra pkgs <<<"${groups[$g]}"
        wanted+=("${pkgs[@]}")
    done
done

missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "Missing packages: ${missing[*]}" >&2
    echo "Install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's nginx and mosquitto packages try to start services; nothing here
# wants them running, and without an init system they cannot start anyway.
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# The whole test suite: pure-logic unit and property tests, then the
# end-to-end suite against real nginx (the vendored 1.28, then Debian's 1.22),
# brokers and clients. As root, the Debian run is that of the Debian package:
# scripts/test-package.sh builds it, installs it, runs the suite against the
# installed module, runs a gateway on the stock configuration, and purges it.
# Otherwise the module built by scripts/build-module.sh is loaded from
# target/distro-module.
#
#   scripts/test.sh              everything
#   SKIP_DISTRO=1 scripts/test.sh   skip the Debian nginx 1.22 run
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh build test

echo "== unit and property tests of the core (no nginx)"
cargo test --locked -p mqtt-core

echo "== module and vendored nginx"
cargo build --locked

echo "== end-to-end: vendored nginx"
cargo nextest run --locked --no-fail-fast --test '*'

if [[ -z ${SKIP_DISTRO:-} && -x /usr/sbin/nginx && -d /usr/share/nginx/src ]]; then
    echo "== end-to-end: Debian nginx $(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')"
    if [[ $(id -u) -eq 0 ]]; then
        scripts/test-package.sh
    else
        scripts/build-module.sh --nginx /usr/sbin/nginx --source /usr/share/nginx/src --out target/distro-module
        MQTT_TEST_NGINX=/usr/sbin/nginx \
        MQTT_TEST_MODULE=$PWD/target/distro-module/ngx_stream_mqtt_preread_module.so \
        MQTT_TEST_PRELOAD=/usr/lib/nginx/modules/ngx_stream_module.so \
        MQTT_TEST_NJS=/usr/lib/nginx/modules/ngx_stream_js_module.so \
            cargo nextest run --locked --no-fail-fast --test '*'
    fi
fi

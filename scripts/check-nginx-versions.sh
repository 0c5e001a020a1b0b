#!/usr/bin/env bash
# Builds the module with nginx's own build system, in an nginx tree of each
# version the README claims:
#
#   ./configure --with-compat --with-stream=dynamic --with-stream_ssl_module \
#       --add-dynamic-module=<this checkout>
#   make modules        ->  objs/ngx_stream_mqtt_preread_module.so
#
#   1.22  Debian 12's nginx-dev (/usr/share/nginx/src, installed)
#   1.26  Debian 13's nginx-dev (suite trixie)
#   1.28  the nginx source the vendored build uses (the nginx-src crate)
#   1.30  Debian unstable's nginx-dev (suite sid)
#
# Where an nginx binary of the same version is at hand, the module is loaded
# into it and passes a few end-to-end tests: Debian's /usr/sbin/nginx for
# 1.22, the vendored build's nginx for 1.28 (when `cargo build` has made it).
# The others are built (compiled and linked) only: Debian's nginx-dev trees
# hold headers and the configure scripts, not nginx's C sources, so nginx
# itself cannot be built from them, but `make modules` needs nothing else.
#
#   scripts/check-nginx-versions.sh [VERSION...]   (default: 1.22 1.26 1.28 1.30)
#
# The Debian 13 and unstable packages are fetched with `apt-get download`
# under a private apt configuration in target/nginx-versions/, leaving the
# machine's own apt sources and lists untouched. The Rust build is unoptimised
# (NGX_CARGO_PROFILE=dev; set CHECK_PROFILE=release for an optimised one),
# with one cargo target directory per version, since the nginx bindings
# differ between versions.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(1.22 1.26 1.28 1.30)
work=$root/target/nginx-versions
module=ngx_stream_mqtt_preread_module.so
e2e_tests=(persistence mtls protocol metrics)

scripts/deps.sh build test

# Prints the nginx source tree of a version, fetching it if need be.
tree_of() {
    case $1 in
        1.22) echo /usr/share/nginx/src ;;
        1.26) debian_tree trixie ;;
        1.28) vendored_tree ;;
        1.30) debian_tree sid ;;
        *) echo "check-nginx-versions.sh: no nginx tree for $1" >&2; return 1 ;;
    esac
}

# nginx-dev of a Debian suite, downloaded and extracted under $work/<suite>.
debian_tree() {
    local suite=$1 dir=$work/$1
    rm -rf "$dir"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian $suite main" >"$dir/sources.list"
    local apt=(-q -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
        -o APT::Sandbox::User=root -o Acquire::Languages=none
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
        -o Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false)
    apt-get "${apt[@]}" update >"$dir/update.log" 2>&1 || { cat "$dir/update.log" >&2; return 1; }
    (cd "$dir" && apt-get "${apt[@]}" download nginx-dev >download.log 2>&1) ||
        { cat "$dir/download.log" >&2; return 1; }
    dpkg-deb -x "$dir"/nginx-dev_*.deb "$dir/root"
    echo "$dir/root/usr/share/nginx/src"
}

# The nginx-src crate's tree, as cargo has it for this checkout's lock file.
vendored_tree() {
    cargo fetch --locked >/dev/null 2>&1
    local manifest
    manifest=$(cargo metadata --locked --format-version 1 |
        python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "nginx-src"))')
    echo "$(dirname "$manifest")/nginx"
}

# The vendored build's nginx binary (what the end-to-end tests use by
# default: the newest), or nothing before `cargo build` has made one.
vendored_nginx() {
    local bin newest=""
    for bin in target/debug/build/nginx-sys-*/out/objs/nginx; do
        if [[ -x $bin && ( -z $newest || $bin -nt $newest ) ]]; then
            newest=$bin
        fi
    done
    echo "$newest"
}

# Loads the module into nginx BIN (after PRELOAD, if any) with `nginx -t`,
# then runs the end-to-end subset against the pair.
run_e2e() {
    local bin=$1 so=$2 preload=$3 dir=$4
    mkdir -p "$dir/prefix/logs"
    {
        [[ -z $preload ]] || echo "load_module $preload;"
        echo "load_module $so;"
        echo "error_log stderr notice; pid $dir/prefix/nginx.pid; events {}"
        echo "stream { server { listen 127.0.0.1:1; mqtt_preread on;"
        echo "         mqtt_client_id_match cn; proxy_pass 127.0.0.1:1; } }"
    } >"$dir/prefix/load.conf"
    "$bin" -t -q -p "$dir/prefix" -c "$dir/prefix/load.conf"
    MQTT_TEST_NGINX=$bin MQTT_TEST_MODULE=$so MQTT_TEST_PRELOAD=$preload \
        cargo nextest run --locked --no-fail-fast "${e2e_tests[@]/#/--test=}"
}

summary=()
for version in "${versions[@]}"; do
    start=$SECONDS
    echo "== nginx $version: --add-dynamic-module"
    src=$(tree_of "$version")
    full=$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$src/src/core/nginx.h")
    [[ $full == "$version".* ]] || { echo "$src is nginx $full, not $version" >&2; exit 1; }

    dir=$work/nginx-$full
    rm -rf "$dir/nginx"
    mkdir -p "$dir"
    cp -r "$src" "$dir/nginx"
    # A release tarball or Debian's tree has ./configure; the repository's
    # layout (the nginx-src crate), auto/configure.
    configure=./configure
    [[ -x $dir/nginx/configure ]] || configure=auto/configure
    (cd "$dir/nginx" && NGX_CARGO_PROFILE=${CHECK_PROFILE:-dev} $configure \
        --with-compat --with-stream=dynamic --with-stream_ssl_module \
        --add-dynamic-module="$root" >"$dir/configure.log" 2>&1) ||
        { tail -20 "$dir/configure.log" >&2; exit 1; }
    # In a full source tree, `make modules` (this module and the dynamic
    # stream module). Debian's header trees cannot build the stream module,
    # and leave out the part of auto/install that writes the top-level
    # Makefile: there, make builds this module's target of objs/Makefile.
    if [[ -f $dir/nginx/src/core/nginx.c ]]; then
        make_args=(modules)
    else
        make_args=(-f objs/Makefile "objs/$module")
    fi
    (cd "$dir/nginx" && make "${make_args[@]}" >"$dir/make.log" 2>&1) ||
        { tail -30 "$dir/make.log" >&2; exit 1; }
    so=$dir/nginx/objs/$module
    exports=$(nm -D --defined-only "$so" | awk '{ print $3 }' | sort | tr '\n' ' ')
    [[ $exports == "ngx_module_names ngx_module_order ngx_modules " ]] ||
        { echo "$so exports: $exports" >&2; exit 1; }
    result="nginx $full: built"

    installed=$(/usr/sbin/nginx -v 2>&1 | sed -n 's|^nginx version: [a-z]*/||p' || true)
    vendored=$(vendored_nginx)
    if [[ $installed == "$full" ]]; then
        echo "== nginx $full: loaded into /usr/sbin/nginx, end-to-end subset"
        run_e2e /usr/sbin/nginx "$so" /usr/lib/nginx/modules/ngx_stream_module.so "$dir"
        result+=", loaded into /usr/sbin/nginx, e2e: ${e2e_tests[*]}"
    elif [[ -n $vendored ]] && "$vendored" -v 2>&1 | grep "/$full\$" >/dev/null; then
        echo "== nginx $full: loaded into $vendored, end-to-end subset"
        run_e2e "$vendored" "$so" "" "$dir"
        result+=", loaded into the vendored nginx, e2e: ${e2e_tests[*]}"
    fi
    summary+=("$result ($((SECONDS - start)) s)")
done

echo "== summary"
printf '%s\n' "${summary[@]}"

#!/usr/bin/env bash
# Builds ngx_stream_mqtt_preread_module.so.
#
#   scripts/build-module.sh [--out DIR]
#       against the nginx 1.28 that ships with the ngx crate (vendored); the
#       nginx binary it builds is copied beside the module.
#
#   scripts/build-module.sh --nginx BIN --source DIR [--out DIR]
#       against an installed nginx: BIN is its binary, DIR the source tree of
#       the same version. The tree is configured with the arguments `BIN -V`
#       prints (plus --with-compat), leaving out the other dynamic and
#       third-party modules, whose libraries the module does not need.
#       Debian/Ubuntu: --nginx /usr/sbin/nginx --source /usr/share/nginx/src
#       (package nginx-dev).
#
#   scripts/build-module.sh --tree DIR --objs DIR --target-dir DIR [--profile P]
#       for nginx's own build system: DIR is an nginx source tree configured
#       with --add-dynamic-module=<this checkout>, objs its build directory.
#       Builds the crate as a static library (in --target-dir, cargo profile
#       P, default release) that nginx's Makefile links, with the module
#       table nginx generates, into objs/ngx_stream_mqtt_preread_module.so.
#       The Makefile written by `config` runs this; it is not for use by hand.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# The cargo features of a build against an nginx tree other than the vendored
# one (both the installed-nginx and the nginx-build modes).
tree_features=(--no-default-features)

nginx_bin="" source_dir="" out="" tree="" objs="" target_dir="" profile=release
while [[ $# -gt 0 ]]; do
    case $1 in
        --nginx) nginx_bin=$2; shift 2 ;;
        --source) source_dir=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --tree) tree=$2; shift 2 ;;
        --objs) objs=$2; shift 2 ;;
        --target-dir) target_dir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        *) echo "build-module.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
module=ngx_stream_mqtt_preread_module.so
cd "$root"

if [[ -n $tree ]]; then
    [[ -n $objs && -n $target_dir ]] ||
        { echo "build-module.sh: --tree needs --objs and --target-dir" >&2; exit 2; }
    # nginx links the module table it generates (objs/*_modules.c); the
    # crate leaves its own out under this cfg.
    NGINX_SOURCE_DIR=$tree NGINX_BUILD_DIR=$objs \
        cargo rustc --locked --lib --crate-type staticlib --profile "$profile" \
        "${tree_features[@]}" --target-dir "$target_dir" -- --cfg ngx_modules_generated
    exit 0
fi

if [[ -z $nginx_bin ]]; then
    out=${out:-$root/dist/vendored}
    cargo build --release --locked
    mkdir -p "$out"
    cp target/release/libngx_stream_mqtt_preread_module.so "$out/$module"
    cp "$(ls -t target/release/build/nginx-sys-*/out/objs/nginx | head -1)" "$out/nginx"
    echo "built $out/$module (and $out/nginx)"
    exit 0
fi

[[ -n $source_dir ]] || { echo "build-module.sh: --nginx needs --source" >&2; exit 2; }
version=$("$nginx_bin" -v 2>&1 | sed -n 's|^nginx version: [a-z]*/||p')
[[ -f $source_dir/src/core/nginx.h ]] || { echo "no nginx source at $source_dir" >&2; exit 1; }
grep -q "NGINX_VERSION *\"$version\"" "$source_dir/src/core/nginx.h" ||
    { echo "$source_dir is not nginx $version" >&2; exit 1; }

# The configure arguments of the binary, as a shell word list.
eval "configured=($("$nginx_bin" -V 2>&1 | sed -n 's/^configure arguments: //p'))"
args=(--with-compat)
has_stream=""
for arg in "${configured[@]}"; do
    case $arg in
        --with-compat) ;;
        --with-stream | --with-stream=dynamic) args+=("$arg"); has_stream=1 ;;
        # Other modules' libraries are not needed, and the build goes to our
        # own directory, not the one the binary was built in.
        --with-*=dynamic | --add-module=* | --add-dynamic-module=* | --builddir=*) ;;
        *) args+=("$arg") ;;
    esac
done
[[ -n $has_stream ]] || { echo "$nginx_bin was built without the stream module" >&2; exit 1; }

name=nginx-$version
build_root=$root/target/$name
out=${out:-$root/dist/$name}
rm -rf "$build_root/src"
mkdir -p "$build_root"
cp -r "$source_dir" "$build_root/src"
echo "configuring nginx $version: ${args[*]}"
# A release tarball has ./configure; a checkout of the repository auto/configure.
configure=./configure
[[ -x $build_root/src/configure ]] || configure=auto/configure
(cd "$build_root/src" && $configure "${args[@]}" >"$build_root/configure.log" 2>&1) ||
    { tail -20 "$build_root/configure.log" >&2; exit 1; }

NGINX_SOURCE_DIR=$build_root/src NGINX_BUILD_DIR=$build_root/src/objs \
    cargo build --release --locked "${tree_features[@]}" --target-dir "$build_root/cargo"
mkdir -p "$out"
cp "$build_root/cargo/release/libngx_stream_mqtt_preread_module.so" "$out/$module"
echo "built $out/$module for nginx $version"

#!/usr/bin/env bash
# Builds the Debian package of the module for the nginx installed on this
# machine (Debian/Ubuntu's `nginx` package):
#
#   scripts/package-deb.sh [--module SO] [--out DIR]
#   apt-get install ./dist/libnginx-mod-stream-mqtt-preread_<version>_<arch>.deb
#
# The module is built with scripts/build-module.sh against /usr/sbin/nginx and
# /usr/share/nginx/src (package nginx-dev), unless --module names one already
# built that way. The package is laid out as Debian's own nginx module
# packages are (libnginx-mod-stream):
#
#   /usr/lib/nginx/modules/ngx_stream_mqtt_preread_module.so
#   /usr/share/nginx/modules-available/mod-stream-mqtt-preread.conf  (load_module)
#   /etc/nginx/modules-enabled/60-mod-stream-mqtt-preread.conf       (a link, made by
#       the postinst, after 50-mod-stream.conf so that the stream module loads first)
#
# and depends on the exact nginx ABI it was built for (nginx-abi-<version>-<n>,
# which Debian's nginx provides), so that apt refuses it for another nginx.
# Only dpkg-deb is used; nothing is downloaded.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module_so="" out=$root/dist
while [[ $# -gt 0 ]]; do
    case $1 in
        --module) module_so=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "package-deb.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
cd "$root"

package=libnginx-mod-stream-mqtt-preread
module=ngx_stream_mqtt_preread_module.so
conf=mod-stream-mqtt-preread.conf
link=60-mod-stream-mqtt-preread.conf
nginx_bin=/usr/sbin/nginx

scripts/deps.sh build package

# The nginx this package is for, and the ABI its package provides.
nginx_pkg=$(dpkg-query -S "$nginx_bin" | cut -d: -f1)
nginx_version=$("$nginx_bin" -v 2>&1 | sed -n 's|^nginx version: [a-z]*/||p')
abi=$(dpkg-query -W -f='${Provides}' "$nginx_pkg" | tr ',' '\n' | sed -n 's/^ *\(nginx-abi-[^ ]*\).*/\1/p')
[[ -n $abi ]] || { echo "package-deb.sh: $nginx_pkg provides no nginx-abi-*" >&2; exit 1; }

if [[ -z $module_so ]]; then
    scripts/build-module.sh --nginx "$nginx_bin" --source /usr/share/nginx/src --out target/deb-module
    module_so=target/deb-module/$module
fi

# The crate's version, as a Debian version (a semver pre-release sorts before
# its release: 0.2.0-rc.1 becomes 0.2.0~rc.1).
version=$(cargo pkgid --locked -p ngx_stream_mqtt_preread_module | sed 's/.*[#@]//')
version=${version//-/\~}
arch=$(dpkg --print-architecture)
deb=$out/${package}_${version}_${arch}.deb

stage=$root/target/deb/$package
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/nginx/modules" \
    "$stage/usr/share/nginx/modules-available" "$stage/usr/share/doc/$package/examples"

install -m 0644 "$module_so" "$stage/usr/lib/nginx/modules/$module"
strip --strip-unneeded "$stage/usr/lib/nginx/modules/$module"
echo "load_module modules/$module;" >"$stage/usr/share/nginx/modules-available/$conf"

doc=$stage/usr/share/doc/$package
gzip -9n <CHANGELOG.md >"$doc/changelog.gz"
install -m 0644 README.md "$doc/README.md"
install -m 0644 nginx-conf/*.conf "$doc/examples/"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ngx_stream_mqtt_preread_module

Files: *
Copyright: the ngx_stream_mqtt_preread_module authors
License: Apache-2.0
 On Debian systems, the full text of the Apache License, Version 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF

# Shared libraries the module needs beyond nginx itself: libc at the newest
# symbol version it uses, and whatever else it links (libgcc_s for Rust's
# unwinder), each by the package that holds it here.
so=$stage/usr/lib/nginx/modules/$module
glibc=$(objdump -T "$so" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
depends=("$abi" libnginx-mod-stream "libc6 (>= $glibc)")
for lib in $(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case $lib in libc.so.* | libm.so.* | ld-linux*.so.*) continue ;; esac
    # awk reads to the end: a reader that stops early would leave ldconfig to
    # die of SIGPIPE, which pipefail turns into a failure.
    path=$(ldconfig -p | awk -v l="$lib" '$1 == l && !found { print $NF; found = 1 }')
    [[ -n $path ]] || { echo "package-deb.sh: $lib not found" >&2; exit 1; }
    # dpkg may know the file under /lib or /usr/lib (merged /usr).
    owner=""
    for p in "$path" "${path#/usr}" "/usr$path" "$(readlink -f "$path")"; do
        owner=$(dpkg-query -S "$p" 2>/dev/null | cut -d: -f1 | sed -n 1p) && [[ -n $owner ]] && break
    done
    [[ -n $owner ]] || { echo "package-deb.sh: no package holds $path" >&2; exit 1; }
    depends+=("$owner")
done

# DEBFULLNAME and DEBEMAIL, as Debian's own tools read them, name whoever
# builds the package.
maintainer=${DEBFULLNAME:-ngx_stream_mqtt_preread_module developers}
[[ -z ${DEBEMAIL:-} ]] || maintainer+=" <$DEBEMAIL>"

cat >"$stage/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $(IFS=,; d="${depends[*]}"; echo "${d//,/, }")
Recommends: nginx
Section: httpd
Priority: optional
Description: MQTT CONNECT preread module for nginx's stream proxy
 The stream module ngx_stream_mqtt_preread_module reads each MQTT client's
 CONNECT before nginx picks an upstream: \$mqtt_client_id for
 "hash \$mqtt_client_id consistent" (session persistence across a pool of
 brokers), and ClientIds bound to the verified client certificate
 (mqtt_client_id_match).
 .
 Built for nginx $nginx_version ($abi).
EOF

# nginx reloads, if it runs, when the package is configured or removed.
echo "activate-noawait nginx-reload" >"$stage/DEBIAN/triggers"

# The link in modules-enabled is made by the postinst rather than shipped, as
# in Debian's module packages: an administrator who deletes it keeps it
# deleted across upgrades. Removal sets it aside as <link>.removed (so that
# nginx does not include a dangling link) and a reinstallation puts it back;
# purge deletes it.
cat >"$stage/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/$link
set_aside=no
if [ -L "\$link.removed" ]; then
    rm -f "\$link.removed"
    set_aside=yes
fi
# A first installation, or one after a removal that set the link aside.
if [ -z "\$2" ] || [ \$set_aside = yes ]; then
    ln -sf /usr/share/nginx/modules-available/$conf "\$link"
fi
EOF
cat >"$stage/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/$link
if [ "\$1" = remove ] || [ "\$1" = deconfigure ]; then
    if [ -L "\$link" ]; then
        mv "\$link" "\$link.removed"
    fi
fi
EOF
cat >"$stage/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
link=/etc/nginx/modules-enabled/$link
case "\$1" in
    remove)
        if [ -L "\$link" ]; then
            mv "\$link" "\$link.removed"
        fi
        ;;
    purge)
        for l in "\$link" "\$link.removed"; do
            if [ -L "\$l" ]; then
                rm -f "\$l"
            fi
        done
        ;;
esac
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
find "$stage" -type d -exec chmod 0755 {} +

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "built $deb (Depends: $(dpkg-deb -f "$deb" Depends))"

#!/bin/sh
# nginx under valgrind massif, for `fleet.py tune --nginx` (what a session
# holds on the heap, by allocation site).
#   MASSIF_NGINX    the real nginx binary (default /usr/sbin/nginx)
#   MASSIF_DIR      where each process writes massif.out.<pid>; the workers
#                   write theirs as nginx's `user` (nobody): chmod 1777
# Workers are forked, not exec'd: valgrind follows them without
# --trace-children. The allocation functions of nginx and OpenSSL are
# listed so that each block is charged to its caller. Under valgrind nginx
# cannot raise its descriptor limit (an alert), so the run's "no crash or
# alert" check fails; the figures that matter are massif's.
#   MASSIF_DIR=/tmp/m scripts/soak/fleet.py tune --nginx $PWD/scripts/soak/massif-nginx.sh \
#       --sessions 1000 --ramp 10 --hold 20 --publish-interval 0 --variants pbs1k ...
#   scripts/soak/massif_sites.py 1000 /tmp/m/massif.out.<worker pid> ...   (or ms_print)
nginx=${MASSIF_NGINX:-/usr/sbin/nginx}
for arg in "$@"; do
    [ "$arg" = "-t" ] && exec "$nginx" "$@"
done
exec valgrind --tool=massif --massif-out-file="${MASSIF_DIR:?}/massif.out.%p" \
    --depth=40 --threshold=0.1 --peak-inaccuracy=0.5 \
    --alloc-fn=CRYPTO_malloc --alloc-fn=CRYPTO_zalloc --alloc-fn=CRYPTO_realloc \
    --alloc-fn=CRYPTO_memdup --alloc-fn=CRYPTO_strdup --alloc-fn=CRYPTO_strndup \
    --alloc-fn=ngx_alloc --alloc-fn=ngx_calloc --alloc-fn=ngx_memalign \
    "$nginx" "$@"

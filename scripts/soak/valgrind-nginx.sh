#!/bin/sh
# nginx under valgrind memcheck, for MQTT_TEST_NGINX (used by scripts/soak.sh).
#   VG_NGINX    the real nginx binary
#   VG_LOG_DIR  where each process writes vg.<pid>.log (the master, its
#               forked workers, and `nginx -t` runs)
# Forked workers are followed by valgrind without --trace-children (that
# option is about exec). Definite and indirect leaks count as errors;
# "still reachable" memory (nginx's cycle pool, OpenSSL's globals at exit) does not.
# `nginx -t` exits without freeing its cycle (every certificate it loaded
# would show as lost): it runs without valgrind.
for arg in "$@"; do
    [ "$arg" = "-t" ] && exec "${VG_NGINX:?}" "$@"
done
exec valgrind --tool=memcheck --quiet \
    --log-file="${VG_LOG_DIR:?}/vg.%p.log" \
    --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect \
    --num-callers=40 --error-exitcode=99 \
    --suppressions="$(dirname "$0")/nginx.supp" \
    "${VG_NGINX:?}" "$@"

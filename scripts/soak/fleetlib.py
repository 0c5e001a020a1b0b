"""The pieces of scripts/soak/fleet.py: processes, configurations, samples."""

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time

# Tuning variants of (b), one setting at a time; `lowmem` is
# nginx-conf/low-memory.conf's set.
VARIANTS = {
    "base": "",
    "pbs4k": "proxy_buffer_size 4k;",
    "pbs1k": "proxy_buffer_size 1k;",
    "pbs512": "proxy_buffer_size 512;",
    "preread1k": "preread_buffer_size 1k;",
    "cacheoff": "ssl_session_cache off;",
    "chacha": "ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256;",
    "nt0": "ssl_conf_command NumTickets 0;",
    "wc": "",  # worker_connections just above the sessions (fleetenv.nginx_conf)
    "tcpmem": "",  # kernel: tcp_rmem/tcp_wmem 4096 4096 65536 in the namespace
    "lowmem": "proxy_buffer_size 1k;",  # as in nginx-conf/low-memory.conf
    # Another allocator for nginx (VARIANT_ENV), alone and with 1k buffers.
    "jemalloc": "",
    "jemalloc1k": "proxy_buffer_size 1k;",
    "tcmalloc": "",
    "tcmalloc1k": "proxy_buffer_size 1k;",
}
_LIB = "/usr/lib/x86_64-linux-gnu"
# jemalloc with one arena and freed pages returned at once: what an
# allocator set for memory rather than speed keeps.
_JEMALLOC = {"LD_PRELOAD": f"{_LIB}/libjemalloc.so.2",
             "MALLOC_CONF": "narenas:1,tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0"}
_TCMALLOC = {"LD_PRELOAD": f"{_LIB}/libtcmalloc_minimal.so.4"}
# The environment nginx starts with, per variant (Debian's libjemalloc2 and
# libtcmalloc-minimal4).
VARIANT_ENV = {"jemalloc": _JEMALLOC, "jemalloc1k": _JEMALLOC,
               "tcmalloc": _TCMALLOC, "tcmalloc1k": _TCMALLOC}
TCP_SMALL = "4096 4096 65536"
# CONNECTs a second the storm's `--limit` lets through, gateway-wide.
LIMIT_RATE = 200
# About the full mutual-TLS handshakes a second this 2-core machine makes
# with the devices on it too (docs/SCALE.md).
HANDSHAKES_PER_S = 200


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    return {"cpus": os.cpu_count(), "cpu": model, "mem_mib": mem, "kernel": os.uname().release}


def count_devices(certs):
    n = 0
    with open(os.path.join(certs, "devices.pem")) as f:
        for line in f:
            if line.startswith("-----BEGIN CERTIFICATE"):
                n += 1
    return n


_TAKEN = set()


def free_port():
    """A free port below the ephemeral range: at 100,000 devices the
    gateway's upstream connections hold nearly every ephemeral port, and one
    of them would take a broker's port while the broker restarts."""
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for port in range(10000, lo):
        if port in _TAKEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _TAKEN.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def listening(port):
    r = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
    return bool(r.stdout.strip())


def accept_queue(port):
    """Sum of the listening sockets' accept queues (Recv-Q) on port."""
    r = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
    return sum(int(line.split()[1]) for line in r.stdout.splitlines() if line.split())


def children(pid):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(e))
            except OSError:
                pass
    return out


def mem(pid):
    """Rss, Pss and Private (clean + dirty) of a process, KiB."""
    m = {"rss": 0, "pss": 0, "private": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Rss":
                    m["rss"] = int(v.split()[0])
                elif k == "Pss":
                    m["pss"] = int(v.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    m["private"] += int(v.split()[0])
    except OSError:
        pass
    return m


def cpu_ns(pid):
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        return 0


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                p = line.split()
                return int(p[p.index("mem") + 1])
    return 0


class Procs:
    """Started processes, stopped by PID in reverse order."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, log=None, **kw):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT if log else subprocess.DEVNULL, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=15):
        if p.poll() is None:
            workers = children(p.pid) if sig == signal.SIGQUIT else []
            try:
                p.send_signal(sig)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for w in workers:
                try:
                    os.kill(w, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self):
        for name, p in reversed(list(self.procs)):
            self.stop(p, signal.SIGQUIT if name == "nginx" else signal.SIGTERM)


def ratios(r, base):
    out = {}
    for k in ("rss_per_device_kib", "pss_per_device_kib", "private_per_device_kib",
              "cpu_us_per_connect", "p50_ms", "p99_ms"):
        if base.get(k) and r.get(k) is not None:
            out[k] = round(r[k] / base[k], 3)
    return out


def brief(r):
    return {k: v for k, v in r.items() if k not in ("samples", "loadgen", "timeline", "errlog")}


def wait_until(pred, timeout, step=0.1):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def read_progress(path):
    """The last progress line of a loadgen log: (t, live, connacks, errors, reconnects)."""
    last = None
    try:
        with open(path, "rb") as f:
            # Progress lines come every 500 ms: the last one is in the tail.
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            for line in f.read().decode(errors="replace").splitlines():
                if line.startswith("[") and "live sessions" in line:
                    last = line
    except OSError:
        return None
    if not last:
        return None
    m = re.match(r"\[\s*([\d.]+)s\] live sessions (\d+), connacks (\d+), errors (\d+), "
                 r"publishes (\d+), reconnects (\d+)", last)
    return tuple(float(x) for x in m.groups()) if m else None


from fleetenv import Env  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit("library of scripts/soak/fleet.py")

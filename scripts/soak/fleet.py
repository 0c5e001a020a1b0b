#!/usr/bin/env python3
"""Fleet scale on one box: the same mutual-TLS devices through several
gateways one after the other, to mosquitto brokers, in a private network
namespace (its own 127.0.0.0/8, its own ip_local_port_range, nothing shared
with the host's other listeners).

    scripts/soak/fleet.py compare --sessions 10000 [--gateways a,b,d]
    scripts/soak/fleet.py tune    --sessions 5000  [--gateways a,b] [--variants base,pbs1k,...]
    scripts/soak/fleet.py ports   --sessions 3000 --port-range "50000 50999"
    scripts/soak/fleet.py storm   --sessions 10000 [--limit]

Common: --nginx --module --preload --haproxy --loadgen --certs --out.

Gateways: (a) nginx, proxy_pass only; (b) nginx + the module
(`mqtt_client_id_match cn`, `hash $mqtt_client_id consistent`); (d) HAProxy
2.6 with its MQTT rules (CN = ClientId, hash on the ClientId). Same TLS
(TLS 1.3 with client certificates, no tickets) everywhere.

Per process the descriptor limit is what the container grants (RLIMIT_NOFILE
hard limit), so the run spreads the load over as many nginx workers, HAProxy
processes (one port, SO_REUSEPORT), brokers and load generators as that
needs; memory is summed over them.

Every process is started here and stopped by PID at the end, also on
failure. DIR/<mode>.json holds the figures.
"""

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fleetlib as L  # noqa: E402


def enter_netns():
    """Re-executes this script in a new network namespace (loopback up)."""
    if os.environ.get("FLEET_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    env = dict(os.environ, FLEET_NETNS="1")
    os.execvpe("unshare", ["unshare", "-n", "--", sys.executable, os.path.abspath(__file__)]
               + sys.argv[1:], env)


def args():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["compare", "tune", "ports", "storm"])
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--module", required=True)
    ap.add_argument("--preload", default="/usr/lib/nginx/modules/ngx_stream_module.so")
    ap.add_argument("--haproxy", default="/usr/sbin/haproxy")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--certs", required=True, help="a `loadgen certs` directory (made if missing)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--gateways", default=None,
                    help="compare: default a,b,d; tune: default b (a and b take variants)")
    ap.add_argument("--variants", default=",".join(L.VARIANTS))
    ap.add_argument("--hold", type=int, default=60, help="seconds on the plateau")
    ap.add_argument("--ramp", type=float, default=500, help="connects per second")
    ap.add_argument("--publish-interval", type=float, default=10,
                    help="seconds between a device's publishes (0: idle, PINGREQ only)")
    ap.add_argument("--brokers", type=int, default=0, help="default: 3, more if the fd limit needs")
    ap.add_argument("--workers", type=int, default=0, help="default: 2, more if the fd limit needs")
    ap.add_argument("--port-range", default="", help="ip_local_port_range in the namespace")
    ap.add_argument("--proxy-bind", type=int, default=0,
                    help="(b) binds upstream connections over this many 127.0.1.x addresses")
    ap.add_argument("--limit", action="store_true", help="storm: mqtt_limit_connect on")
    ap.add_argument("--backlog", type=int, default=4096, help="nginx's listen backlog")
    ap.add_argument("--retry", action="store_true",
                    help="compare/tune: a device that times out or is refused connects again (back-off)")
    return ap.parse_args()


def main():
    a = args()
    for k in ("module", "loadgen", "nginx", "haproxy", "certs"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    enter_netns()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.port_range:
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
            f.write(a.port_range)
    lo, hi = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    ports = hi - lo + 1
    n = a.sessions
    # Descriptors: a worker holds 2 per session, a broker 1, a load generator 1.
    usable = hard - 1500
    brokers = math.ceil(n / usable)
    if a.mode == "storm":
        # The storm stops one broker: the others take its devices, and the
        # hash spreads them unevenly, so one broker more, each a sixth short
        # of its limit.
        brokers = math.ceil(n / (0.85 * usable)) + 1
    lay = {
        "fd_limit": hard,
        "ephemeral_ports": ports,
        "workers": a.workers or max(2, math.ceil(2 * n / usable)),
        "haproxy_procs": max(1, math.ceil(2 * n / usable)),
        "brokers": a.brokers or max(3, brokers),
        "loadgens": max(1, math.ceil(n / usable)),
    }
    # Device-side source addresses: at most 80% of the port range each.
    per_src = max(1, min(10000, int(ports * 0.8)))
    lay["device_sources"] = math.ceil(n / per_src)
    certs = os.path.abspath(a.certs)
    if not os.path.exists(os.path.join(certs, "devices.pem")):
        subprocess.run([a.loadgen, "certs", "--dir", certs, "--devices", str(n),
                        "--prefix", "dev-"], check=True)
    have = L.count_devices(certs)
    if have < n:
        sys.exit(f"{certs} has {have} devices, {n} wanted")
    env = L.Env(a, out, certs, lay)
    print(f"== fleet {a.mode} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {n} devices, "
          f"layout {lay}", flush=True)
    result = {"mode": a.mode, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": L.machine(), "sessions": n, "layout": lay, "hold_secs": a.hold,
              "ramp_per_s": a.ramp, "publish_interval": a.publish_interval, "runs": []}
    ok = True
    try:
        if a.mode == "compare":
            for g in (a.gateways or "a,b,d").split(","):
                r = env.guarded(g)
                result["runs"].append(r)
                ok &= all(r["checks"].values())
            base = next((r for r in result["runs"] if r["gateway"] == "a"), None)
            if base:
                for r in result["runs"]:
                    r["vs_a"] = L.ratios(r, base)
        elif a.mode == "tune":
            gateways = (a.gateways or "b").split(",")
            if not set(gateways) <= {"a", "b"}:
                sys.exit("tune: --gateways takes a and b")
            for v in a.variants.split(","):
                for g in gateways:
                    r = env.guarded(g, variant=v)
                    result["runs"].append(r)
                    ok &= all(r["checks"].values())
        elif a.mode == "ports":
            for k in (0, a.proxy_bind or 4):
                r = env.guarded("b", proxy_bind=k)
                result["runs"].append(r)
            # Expected: without proxy_bind the port range caps each broker;
            # with it every device gets through.
            ok = all(result["runs"][-1]["checks"].values())
        elif a.mode == "storm":
            r = env.storm(limit=a.limit)
            result["runs"].append(r)
            ok = all(r["checks"].values())
    finally:
        env.procs.stop_all()
    name = a.mode + ("-limit" if a.limit else "")
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)
    for r in result["runs"]:
        print(json.dumps(L.brief(r), indent=1), flush=True)
    print(f"fleet {a.mode}: {'all checks passed' if ok else 'FAILED'}; {out}/{name}.json")
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

#!/usr/bin/env python3
"""Scale soak: N concurrent mutual-TLS device sessions through nginx (the
module with `mqtt_client_id_match cn`) to three mosquitto brokers, held for a
while, every device publishing; subscribers on the brokers count what
arrives. Records nginx worker memory per session.

    scripts/soak/scale.py --nginx BIN --module SO --loadgen BIN --out DIR
                          [--sessions 10000] [--hold 80] [--ramp 500]

Everything runs on 127.0.0.1 and is stopped by PID at the end (also on
failure). Exit status 0 only when every check passed; DIR/scale.json holds
the figures.
"""

import argparse
import collections
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode}) before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} never listened on {port}")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


class Procs:
    """Started processes, stopped by PID in reverse order."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=10):
        if p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self):
        for name, p in reversed(self.procs):
            if name == "nginx":
                workers = children(p.pid)
                self.stop(p, signal.SIGQUIT)
                for w in workers:
                    try:
                        os.kill(w, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            else:
                self.stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--preload", default="")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--hold", type=int, default=80)
    ap.add_argument("--ramp", type=float, default=500)
    ap.add_argument("--publish-interval", type=float, default=10)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per_worker_fds = 2 * a.sessions // a.workers + 2000
    if per_worker_fds > hard or a.sessions + 500 > hard:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} too low for {a.sessions} sessions "
                 f"over {a.workers} workers")

    certs = os.path.join(out, "certs")
    if not os.path.exists(os.path.join(certs, "devices.pem")):
        subprocess.run([a.loadgen, "certs", "--dir", certs, "--devices", str(a.sessions),
                        "--prefix", "dev-"], check=True)

    procs = Procs()
    result = {"sessions": a.sessions, "hold_secs": a.hold, "ramp_per_s": a.ramp,
              "nginx_workers": a.workers, "checks": {}}
    try:
        # Brokers: no connection limit, debug log (one line per PUBLISH).
        brokers = []
        for i in range(3):
            port = free_port()
            d = os.path.join(out, f"broker{i}")
            os.makedirs(d, exist_ok=True)
            log = os.path.join(d, "mosquitto.log")
            if os.path.exists(log):
                os.remove(log)
            conf = os.path.join(d, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(f"listener {port} 127.0.0.1\nmax_connections -1\nallow_anonymous true\n"
                        f"persistence false\nlog_dest file {log}\nlog_type all\n"
                        "connection_messages true\nuser root\n")
            p = procs.start(f"broker{i}", ["mosquitto", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port, p, "mosquitto")
            brokers.append({"port": port, "log": log, "proc": p})

        # Subscribers on each broker: count the devices' messages.
        subs = []
        for i, b in enumerate(brokers):
            f = open(os.path.join(out, f"sub{i}.txt"), "w")
            p = procs.start(f"sub{i}", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b["port"]),
                                        "-i", f"soak-observer-{i}", "-t", "bench/telemetry",
                                        "-F", "%t"], stdout=f, stderr=subprocess.DEVNULL)
            subs.append((p, f))
        time.sleep(1)

        # nginx: the module, mutual TLS, ClientId = CN, hash to the brokers.
        port = free_port()
        prefix = os.path.join(out, "nginx")
        os.makedirs(prefix, exist_ok=True)
        for name in ("access.log", "error.log"):
            if os.path.exists(os.path.join(prefix, name)):
                os.remove(os.path.join(prefix, name))
        loads = "".join(f"load_module {m};\n" for m in a.preload.split() if m)
        upstream = "".join(f"        server 127.0.0.1:{b['port']};\n" for b in brokers)
        conf = f"""daemon off;
master_process on;
worker_processes {a.workers};
worker_rlimit_nofile {min(hard, per_worker_fds + 1000)};
error_log {prefix}/error.log notice;
pid {prefix}/nginx.pid;
{loads}load_module {a.module};
events {{ worker_connections {per_worker_fds}; }}
stream {{
    log_format mqtt '$mqtt_client_id\\t$mqtt_cert_cn\\t$status\\t$mqtt_reject_reason\\t$upstream_addr\\t$session_time';
    access_log {prefix}/access.log mqtt buffer=256k flush=1s;
    upstream brokers {{
        hash $mqtt_client_id consistent;
{upstream}    }}
    server {{
        listen 127.0.0.1:{port} ssl reuseport;
        ssl_certificate {certs}/server-chain.pem;
        ssl_certificate_key {certs}/server.key;
        ssl_client_certificate {certs}/ca.pem;
        ssl_verify_client optional;
        mqtt_client_id_match cn;
        proxy_pass brokers;
    }}
}}
"""
        conf_path = os.path.join(prefix, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        subprocess.run([a.nginx, "-t", "-p", prefix, "-c", conf_path, "-e",
                        os.path.join(prefix, "error.log")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ng = procs.start("nginx", [a.nginx, "-p", prefix, "-c", conf_path, "-e",
                                   os.path.join(prefix, "error.log")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(port, ng, "nginx")
        time.sleep(1)
        workers = children(ng.pid)
        base = {w: rss_kib(w) for w in workers}
        print(f"nginx workers {workers}, baseline RSS KiB {base}", flush=True)

        # The devices.
        lg_json = os.path.join(out, "loadgen.json")
        lg = procs.start("loadgen", [
            a.loadgen, "hold", "--target", f"127.0.0.1:{port}", "--tls", certs,
            "--devices", str(a.sessions), "--sessions", str(a.sessions),
            "--ramp", str(a.ramp), "--hold-secs", str(a.hold),
            "--publish-interval", str(a.publish_interval), "--publish", "1",
            "--payload", "32", "--timeout-ms", "30000", "--json", lg_json,
            "--threads", "1"])
        samples = []
        t0 = time.time()
        while lg.poll() is None:
            time.sleep(2)
            fds = 0
            for w in workers:
                try:
                    fds += len(os.listdir(f"/proc/{w}/fd"))
                except OSError:
                    pass
            s = {"t": round(time.time() - t0, 1),
                 "rss_kib": {w: rss_kib(w) for w in workers},
                 "worker_fds": fds}
            samples.append(s)
            if len(samples) % 5 == 0:
                print(f"[{s['t']:6.1f}s] worker RSS KiB {s['rss_kib']}, worker fds {fds}",
                      flush=True)
            if time.time() - t0 > a.hold + a.sessions / a.ramp + 120:
                procs.stop(lg)
                sys.exit("loadgen did not finish in time")
        with open(lg_json) as f:
            lg_summary = json.load(f)
        result["loadgen"] = lg_summary
        time.sleep(3)
        for p, f in subs:
            procs.stop(p)
            f.close()
        # Access log flush (buffer=..., flush=1s), then stop nginx.
        time.sleep(2)
        procs.stop_all()

        # Figures.
        peak = max(samples, key=lambda s: s["worker_fds"])
        plateau = [s for s in samples if s["worker_fds"] >= peak["worker_fds"] * 0.98]
        mid = plateau[len(plateau) // 2]
        delta = sum(mid["rss_kib"][w] - base[w] for w in workers)
        result["worker_rss_baseline_kib"] = base
        result["worker_rss_plateau_kib"] = mid["rss_kib"]
        result["plateau_worker_fds"] = mid["worker_fds"]
        result["plateau_seconds"] = round(plateau[-1]["t"] - plateau[0]["t"], 1)
        live = lg_summary.get("peak_live", lg_summary.get("extra", {}).get("peak_live"))
        result["peak_live_sessions"] = live
        result["worker_rss_per_session_kib"] = round(delta / a.sessions, 2)
        result["rss_samples"] = samples

        # Every device was accepted by nginx and proxied to one broker.
        entries = []
        with open(os.path.join(prefix, "access.log")) as f:
            for line in f:
                cid, cn, status, reason, up, stime = line.rstrip("\n").split("\t")
                entries.append((cid, cn, status, reason, up))
        # Only the devices' sessions: the readiness probe (a bare TCP
        # connect) is logged too.
        dev_entries = [e for e in entries if e[0].startswith("dev-")]
        statuses = collections.Counter(e[2] for e in dev_entries)
        routed = {e[0]: e[4] for e in entries if e[2] == "200"}
        result["access_log"] = {"device_entries": len(dev_entries), "statuses": dict(statuses),
                                "other_entries": len(entries) - len(dev_entries)}
        # Every device's PUBLISH reached the broker nginx chose for it.
        pub_re = re.compile(r"Received PUBLISH from (\S+) ")
        published = collections.defaultdict(set)
        per_broker = {}
        for i, b in enumerate(brokers):
            n = 0
            with open(b["log"], errors="replace") as f:
                for line in f:
                    m = pub_re.search(line)
                    if m and m.group(1).startswith("dev-"):
                        published[m.group(1)].add(f"127.0.0.1:{b['port']}")
                        n += 1
            per_broker[f"127.0.0.1:{b['port']}"] = n
        received = {}
        for i, b in enumerate(brokers):
            with open(os.path.join(out, f"sub{i}.txt")) as f:
                received[f"127.0.0.1:{b['port']}"] = sum(1 for _ in f)
        result["publishes_received_by_brokers"] = per_broker
        result["messages_received_by_subscribers"] = received
        devices = {f"dev-{i:06}" for i in range(a.sessions)}
        wrong_broker = [d for d in devices if published.get(d) and published[d] != {routed.get(d)}]
        checks = {
            "all sessions got CONNACK": lg_summary.get("ok") == a.sessions,
            "no loadgen errors": not lg_summary.get("errors"),
            f"{a.sessions} concurrent": (live or 0) >= a.sessions,
            "nginx accepted every device (status 200)": len(dev_entries) == a.sessions
            and all(e[2] == "200" and e[3] == "" for e in dev_entries),
            "every device published, seen by a broker": all(d in published for d in devices),
            "each device's messages on the broker nginx chose": not wrong_broker,
            "subscribers received every message": received == per_broker,
            "all three brokers used": all(v > 0 for v in per_broker.values()),
        }
        with open(os.path.join(prefix, "error.log")) as f:
            err = f.read()
        serious = [l for l in err.splitlines()
                   if "exited on signal" in l or "[alert]" in l or "[emerg]" in l or "[crit]" in l]
        checks["no crash or alert in the error log"] = not serious
        result["serious_error_lines"] = serious[:20]
        result["checks"] = checks
    finally:
        procs.stop_all()
    with open(os.path.join(out, "scale.json"), "w") as f:
        json.dump(result, f, indent=1)
    summary = {k: v for k, v in result.items() if k not in ("rss_samples", "loadgen")}
    print(json.dumps(summary, indent=1))
    failed = [k for k, ok in result["checks"].items() if not ok]
    if failed:
        print("FAILED:", failed)
        return 1
    print("scale: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

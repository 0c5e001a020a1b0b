"""One run of scripts/soak/fleet.py: brokers, a gateway, the devices, the figures."""

import collections
import json
import os
import re
import signal
import subprocess
import threading
import time

import fleetlib as L

PUB_RE = re.compile(r"Received PUBLISH from (dev-\d+) ")
CONN_RE = re.compile(r"^(\d+): New client connected from \S+ as (dev-\d+) ")


class Env:
    def __init__(self, a, out, certs, lay):
        self.a, self.out, self.certs, self.lay = a, out, certs, lay
        self.procs = L.Procs()
        self.n = a.sessions

    # ---- brokers -------------------------------------------------------
    def start_brokers(self, d):
        brokers = []
        for i in range(self.lay["brokers"]):
            port = L.free_port()
            brokers.append(self.start_broker(d, i, port))
        return brokers

    def start_broker(self, d, i, port, gen=0):
        bd = os.path.join(d, f"broker{i}")
        os.makedirs(bd, exist_ok=True)
        log = os.path.join(bd, f"mosquitto.{gen}.log")
        sub_out = os.path.join(bd, f"sub.{gen}.txt")
        for old in (log, sub_out):
            if os.path.exists(old):
                os.remove(old)
        conf = os.path.join(bd, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nmax_connections -1\nallow_anonymous true\n"
                    f"persistence false\nlog_dest file {log}\nlog_type all\n"
                    "connection_messages true\nmax_keepalive 65535\nuser root\n")
        p = self.procs.start(f"broker{i}", ["mosquitto", "-c", conf])
        if not L.wait_until(lambda: L.listening(port), 20):
            raise RuntimeError(f"mosquitto on {port} did not listen")
        sub = self.procs.start(f"sub{i}", ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
                                           "-i", f"observer-{i}-{gen}", "-t", "bench/telemetry",
                                           "-F", "%t"], log=sub_out)
        return {"i": i, "port": port, "addr": f"127.0.0.1:{port}", "proc": p, "sub": sub,
                "logs": [log], "subs": [sub_out]}

    def stop_brokers(self, brokers):
        time.sleep(3)
        for b in brokers:
            self.procs.stop(b["sub"])
        for b in brokers:
            self.procs.stop(b["proc"])

    # ---- gateways ------------------------------------------------------
    def nginx_conf(self, d, port, brokers, g, variant="", proxy_bind=0, limit=False):
        a, lay = self.a, self.lay
        per_worker = 2 * self.n // lay["workers"] + 1000
        wc = per_worker if variant != "wc" else 2 * self.n // lay["workers"] + 100
        servers = "".join(f"        server {b['addr']};\n" for b in brokers)
        mod = g == "b"
        loads = "".join(f"load_module {m};\n" for m in a.preload.split() if m)
        if mod:
            loads += f"load_module {a.module};\n"
        stream_extra, server_extra = "", ""
        if mod:
            server_extra += "        mqtt_client_id_match cn;\n"
            fmt = "'$mqtt_client_id\\t$status\\t$mqtt_reject_reason\\t$upstream_addr\\t$session_time'"
        else:
            fmt = "'-\\t$status\\t-\\t$upstream_addr\\t$session_time'"
        if proxy_bind:
            share = 100 / proxy_bind
            lines = "".join(f"        {share:.2f}% 127.0.1.{k + 1};\n" for k in range(proxy_bind - 1))
            stream_extra += (f"    split_clients \"$mqtt_client_id\" $mqtt_source {{\n{lines}"
                             f"        * 127.0.1.{proxy_bind};\n    }}\n")
            server_extra += "        proxy_bind $mqtt_source;\n"
        if limit:
            # One key for the whole gateway: at most rate CONNECTs a second
            # reach the brokers (below the ~350 full handshakes a second this
            # 2-core machine manages); the rest get CONNACK 0x03 and come back.
            stream_extra += ("    mqtt_limit_connect_zone gateway zone=storm:1m "
                             f"rate={L.LIMIT_RATE}r/s;\n")
            server_extra += "        mqtt_limit_connect zone=storm burst=100;\n"
        tune = L.VARIANTS.get(variant, "")
        tune = "".join(f"        {t.strip()};\n" for t in tune.split(";") if t.strip())
        hash_line = "hash $mqtt_client_id consistent;" if mod else "# round-robin"
        return f"""daemon off;
master_process on;
worker_processes {lay['workers']};
worker_rlimit_nofile {min(lay['fd_limit'], per_worker + 500)};
error_log {d}/error.log notice;
pid {d}/nginx.pid;
{loads}events {{ worker_connections {wc}; }}
stream {{
    log_format fleet {fmt};
    access_log {d}/access.log fleet buffer=256k flush=1s;
{stream_extra}    upstream brokers {{
        {hash_line}
{servers}    }}
    server {{
        listen 127.0.0.1:{port} ssl reuseport backlog={a.backlog};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {self.certs}/server-chain.pem;
        ssl_certificate_key {self.certs}/server.key;
        ssl_client_certificate {self.certs}/ca.pem;
        ssl_verify_client on;
        ssl_session_tickets off;
{tune}{server_extra}        proxy_pass brokers;
    }}
}}
"""

    def haproxy_conf(self, port, brokers):
        servers = "".join(f"    server s{b['i']} {b['addr']}\n" for b in brokers)
        # HAProxy wants 2 x maxconn descriptors (and refuses to start without).
        per = min(-(-self.n // self.lay["haproxy_procs"]) + 500, (self.lay["fd_limit"] - 200) // 2)
        return f"""global
    nbthread 1
    maxconn {per}
    log stderr format short local0 notice

defaults
    mode tcp
    log global
    timeout connect 5s
    timeout client 600s
    timeout server 600s

frontend mqtt_tls
    bind 127.0.0.1:{port} ssl crt {self.certs}/server.bundle.pem ca-file {self.certs}/ca.pem verify required ssl-min-ver TLSv1.2 no-tls-tickets
    tcp-request inspect-delay 30s
    tcp-request content reject unless {{ req.payload(0,0),mqtt_is_valid }}
    tcp-request content set-var(txn.clientid) req.payload(0,0),mqtt_field_value(connect,client_identifier)
    tcp-request content reject unless {{ ssl_c_s_dn(cn),strcmp(txn.clientid) eq 0 }}
    default_backend brokers

backend brokers
    balance hash var(txn.clientid)
    hash-type consistent
{servers}"""

    def start_gateway(self, d, g, brokers, **kw):
        port = L.free_port()
        os.makedirs(d, exist_ok=True)
        if g in ("a", "b"):
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write(self.nginx_conf(d, port, brokers, g, **kw))
            argv = [self.a.nginx, "-p", d + "/", "-e", f"{d}/error.log", "-c", conf]
            subprocess.run(argv + ["-t"], check=True, capture_output=True)
            env = dict(os.environ, **L.VARIANT_ENV.get(kw.get("variant", ""), {}))
            p = self.procs.start("nginx", argv, log=os.path.join(d, "stderr.log"), env=env)
            ok = L.wait_until(lambda: L.listening(port) and
                              len(L.children(p.pid)) >= self.lay["workers"], 30)
            gw = {"kind": "nginx", "port": port, "master": p, "conf": conf}
        else:
            conf = os.path.join(d, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(self.haproxy_conf(port, brokers))
            hs = [self.procs.start("haproxy", [self.a.haproxy, "-db", "-f", conf],
                                   log=os.path.join(d, f"haproxy{k}.log"))
                  for k in range(self.lay["haproxy_procs"])]
            ok = L.wait_until(lambda: L.listening(port), 30)
            gw = {"kind": "haproxy", "port": port, "haproxies": hs, "conf": conf}
        if not ok:
            raise RuntimeError(f"gateway {g} did not come up; see {d}")
        time.sleep(1)
        return gw

    def gw_pids(self, gw):
        if gw["kind"] == "nginx":
            return L.children(gw["master"].pid)
        return [p.pid for p in gw["haproxies"]]

    def stop_gateway(self, gw):
        if gw["kind"] == "nginx":
            time.sleep(2)  # access log flush
            self.procs.stop(gw["master"], signal.SIGQUIT)
        else:
            for p in gw["haproxies"]:
                self.procs.stop(p)

    # ---- devices -------------------------------------------------------
    def start_devices(self, d, hold, ramp, tag="", reconnect=False):
        a, lay = self.a, self.lay
        k = lay["loadgens"]
        per_src = max(1, -(-self.n // lay["device_sources"]))
        shards, off = [], 0
        for s in range(k):
            cnt = self.n // k + (1 if s < self.n % k else 0)
            srcs = max(1, -(-cnt // per_src))
            js = os.path.join(d, f"loadgen{s}{tag}.json")
            log = os.path.join(d, f"loadgen{s}{tag}.log")
            argv = [a.loadgen, "hold", "--target", f"127.0.0.1:{self.port}", "--tls", self.certs,
                    "--devices", str(cnt), "--offset", str(off), "--sessions", str(cnt),
                    "--source-base", f"127.1.{s}.1", "--source-count", str(srcs),
                    "--ramp", str(ramp / k), "--hold-secs", str(hold),
                    "--publish-interval", str(a.publish_interval), "--publish", "1",
                    "--payload", "32", "--timeout-ms", "30000", "--json", js,
                    "--report-ms", "500"]
            if reconnect:
                argv += ["--reconnect", "--reconnect-jitter-ms", "2000"]
            p = self.procs.start(f"loadgen{s}", argv, log=log)
            shards.append({"proc": p, "json": js, "log": log, "n": cnt})
            off += cnt
        return shards

    def live(self, shards):
        t = 0
        for s in shards:
            pr = L.read_progress(s["log"])
            t += int(pr[1]) if pr else 0
        return t

    def collect(self, shards):
        out = []
        for s in shards:
            try:
                with open(s["json"]) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                out.append({"ok": 0, "errors": {"no-summary": s["n"]}, "publishes": 0})
        return out

    # ---- one measured phase -------------------------------------------
    def guarded(self, g, **kw):
        """phase(), a failure recorded as a failed run (the next phases still run)."""
        try:
            return self.phase(g, **kw)
        except Exception as e:  # noqa: BLE001
            print(f"   phase {g} {kw} failed: {e!r}", flush=True)
            return {"gateway": g, "name": g, "failed": repr(e), "checks": {"phase ran": False}}

    def phase(self, g, variant="", proxy_bind=0):
        a = self.a
        name = g + (f"-{variant}" if variant else "") + (f"-bind{proxy_bind}" if proxy_bind else "")
        if a.mode == "ports":
            name = f"b-bind{proxy_bind}"
        d = os.path.join(self.out, a.mode, name)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            p = os.path.join(d, f)
            if os.path.isfile(p):
                os.remove(p)
        print(f"-- {name}: {self.n} devices", flush=True)
        restore = None
        if variant == "tcpmem":
            restore = {}
            for k in ("tcp_rmem", "tcp_wmem"):
                path = f"/proc/sys/net/ipv4/{k}"
                restore[path] = open(path).read().strip()
                with open(path, "w") as f:
                    f.write(L.TCP_SMALL)
        brokers = self.start_brokers(d)
        gw = None
        try:
            gw = self.start_gateway(d, g, brokers, variant=variant, proxy_bind=proxy_bind) \
                if g != "d" else self.start_gateway(d, g, brokers)
            self.port = gw["port"]
            pids = self.gw_pids(gw)
            base = {p: L.mem(p) for p in pids}
            tcp0 = L.tcp_mem_pages()
            cpu0 = sum(L.cpu_ns(p) for p in pids)
            ramp_secs = self.n / a.ramp
            # Sessions hold until told to stop: a.hold seconds after the last
            # one is in, or, if not all get in, at twice the ramp time.
            hold = int(3 * ramp_secs + a.hold + 120)
            t0 = time.time()
            shards = self.start_devices(d, hold, a.ramp, reconnect=a.retry)
            samples, cpu_full, t_full, stopping = [], None, None, False
            while any(s["proc"].poll() is None for s in shards):
                time.sleep(2)
                m = {p: L.mem(p) for p in pids}
                live = self.live(shards)
                s = {"t": round(time.time() - t0, 1), "live": live,
                     "fds": sum(L.nfds(p) for p in pids) if self.n <= 20000 else None,
                     "rss": sum(v["rss"] for v in m.values()),
                     "pss": sum(v["pss"] for v in m.values()),
                     "private": sum(v["private"] for v in m.values()),
                     "cpu_ns": sum(L.cpu_ns(p) for p in pids),
                     "tcp_mem_pages": L.tcp_mem_pages()}
                samples.append(s)
                if t_full is None and live >= self.n:
                    t_full, cpu_full = s["t"], s["cpu_ns"]
                if len(samples) % 10 == 0:
                    print(f"[{s['t']:6.1f}s] live {live} fds {s['fds']} rss {s['rss']} KiB "
                          f"private {s['private']} KiB", flush=True)
                late = s["t"] > 2 * ramp_secs + 60
                if not stopping and ((t_full and s["t"] >= t_full + a.hold) or late):
                    stopping = True
                    for sh in shards:
                        if sh["proc"].poll() is None:
                            sh["proc"].send_signal(signal.SIGTERM)
                if time.time() - t0 > hold + 180:
                    raise RuntimeError("devices did not finish in time")
            lg = self.collect(shards)
        finally:
            if gw:
                self.stop_gateway(gw)
            self.stop_brokers(brokers)
            if restore:
                for path, v in restore.items():
                    with open(path, "w") as f:
                        f.write(v)
        return self.figures(name, g, d, brokers, base, samples, cpu0, cpu_full, t_full, lg,
                            tcp0, variant, proxy_bind)

    def figures(self, name, g, d, brokers, base, samples, cpu0, cpu_full, t_full, lg, tcp0,
                variant, proxy_bind):
        n = self.n
        r = {"gateway": g, "name": name, "variant": variant, "proxy_bind": proxy_bind}
        full = [s for s in samples if s["live"] >= n] or \
            sorted(samples, key=lambda s: -s["live"])[:3]
        mid = full[len(full) // 2]
        for k in ("rss", "pss", "private"):
            b = sum(v[k] for v in base.values())
            r[f"{k}_baseline_kib"] = b
            r[f"{k}_plateau_kib"] = mid[k]
            # Per device connected on the plateau (all n when the run passes).
            r[f"{k}_per_device_kib"] = round((mid[k] - b) / max(1, mid["live"]), 2)
        r["kernel_tcp_mem_per_device_kib"] = round((mid["tcp_mem_pages"] - tcp0) * 4 / n, 2)
        r["plateau_seconds"] = round(full[-1]["t"] - full[0]["t"], 1) if full else 0
        r["plateau_live"] = mid["live"]
        r["cpu_us_per_connect"] = round((cpu_full - cpu0) / 1000 / n, 1) if cpu_full else None
        r["connects_secs"] = t_full
        oks = sum(x.get("ok", 0) for x in lg)
        errors = collections.Counter()
        for x in lg:
            errors.update(x.get("errors", {}))
        r["connacks"] = oks
        r["errors"] = dict(errors)
        p50s = sorted(x.get("p50_ms", 0) for x in lg)
        r["p50_ms"] = p50s[len(p50s) // 2] if p50s else None
        r["p99_ms"] = max((x.get("p99_ms", 0) for x in lg), default=None)
        sent = sum(x.get("publishes", 0) for x in lg)
        per_broker, devices_at = {}, collections.defaultdict(set)
        received = {}
        for b in brokers:
            cnt = 0
            for log in b["logs"]:
                with open(log, errors="replace") as f:
                    for line in f:
                        m = PUB_RE.search(line)
                        if m:
                            devices_at[m.group(1)].add(b["addr"])
                            cnt += 1
            per_broker[b["addr"]] = cnt
            received[b["addr"]] = sum(sum(1 for _ in open(s)) for s in b["subs"])
        r["published"] = sent
        r["publishes_at_brokers"] = per_broker
        r["received_by_subscribers"] = received
        routed = {}
        if g in ("a", "b") and os.path.exists(os.path.join(d, "access.log")):
            with open(os.path.join(d, "access.log")) as f:
                for line in f:
                    p = line.rstrip("\n").split("\t")
                    if len(p) >= 4 and p[0].startswith("dev-") and p[1] == "200":
                        routed[p[0]] = p[3].split(",")[-1].strip()
        multi = sum(1 for v in devices_at.values() if len(v) > 1)
        wrong = sum(1 for dev, v in devices_at.items() if dev in routed and v != {routed[dev]})
        errlog = []
        ep = os.path.join(d, "error.log")
        if os.path.exists(ep):
            with open(ep, errors="replace") as f:
                errlog = [ln.strip() for ln in f
                          if any(w in ln for w in ("[alert]", "[emerg]", "[crit]", "exited on signal"))]
            with open(ep, errors="replace") as f:
                r["upstream_addr_not_available"] = sum(
                    1 for ln in f if "99: Cannot assign requested address" in ln)
        r["errlog"] = errlog[:10]
        r["checks"] = {
            "every device got CONNACK": oks == n,
            "no device errors": not errors,
            "all devices live at once": mid["live"] >= n,
            "every message at a broker": sum(per_broker.values()) == sent,
            "every message at a subscriber": received == per_broker,
            "every device published": len(devices_at) == n or self.a.publish_interval == 0,
            "each device on one broker": multi == 0,
            "on the broker nginx logged": wrong == 0,
            "no crash or alert": not errlog,
        }
        if self.a.retry:
            # Devices that timed out or were refused came back on their
            # back-off: what counts is that all were in at once.
            r["connect_failures_retried"] = sum(errors.values())
            r["checks"]["every device got CONNACK"] = oks >= n
            del r["checks"]["no device errors"]
        r["samples"] = samples
        r["loadgen"] = lg
        return r

    # ---- reconnect storm ------------------------------------------------
    def storm(self, limit=False):
        from fleetstorm import storm
        return storm(self, limit)

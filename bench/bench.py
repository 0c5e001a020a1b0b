#!/usr/bin/env python3
"""Gateway benchmark: this module vs njs vs HAProxy vs no MQTT awareness.

Run through bench/run.sh, which builds the load generator and the modules
first. One worker of each gateway on CPU 1; the load generator, the CONNACK
responder and mosquitto on CPU 0. Writes docs/BENCHMARKS.md and
docs/bench-*.png; raw results go to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateways as gwmod  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GW_CPU = 1
LOAD_CPU = 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.out = Path(args.results)
        self.pki = self.out / "pki"
        self.loadgen_bin = args.loadgen
        self.js = ROOT / "bench" / "gateways" / "mqtt.js"
        self.results: dict = {"meta": {}, "callgrind": {}, "strace": {}, "cpu": {}, "check": {}}
        self.gws = gwmod.all_gateways(args.vendored_nginx, args.vendored_module, args.debian_module)
        if args.only:
            keep = set(args.only.split(","))
            self.gws = [g for g in self.gws if g.key in keep]
        # sizes
        q = self.quick
        self.cg_n = {"tcp": 300 if q else 1000, "tls": 60 if q else 400}
        self.st_n = {"tcp": 300 if q else 1000, "tls": 100 if q else 300}
        self.rate = {"tcp": 1000.0, "tls": 200.0}
        self.cpu_secs = 2.5 if q else 5.0
        self.reps = 1 if q else 3

    # ------------------------------------------------------------------ helpers
    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def loadgen(self, port: int, transport: str, extra: list[str], label: str,
                timeout_s: float = 300.0) -> dict:
        jpath = self.out / "loadgen" / f"{label}.json"
        jpath.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["taskset", "-c", str(LOAD_CPU), self.loadgen_bin, "run",
               "--target", f"127.0.0.1:{port}", "--disconnect", "--quiet",
               "--json", str(jpath), "--label", label, "--devices", "1000"]
        if transport == "tls":
            cmd += ["--tls", str(self.pki)]
        cmd += extra
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout_s)
        try:
            data = json.loads(jpath.read_text())
        except (OSError, ValueError):
            raise RuntimeError(f"loadgen {label} failed ({r.returncode}): {r.stdout.decode(errors='replace')}")
        return data

    def start_gateway(self, g, wrapper: list[str] | None = None, tag: str = "") -> "subprocess.Popen":
        cmd = (wrapper or []) + g.command()
        log = g.workdir / f"{tag or 'run'}.log"
        timeout = 180.0 if wrapper else 30.0
        return procs.start(cmd, log, cpu=GW_CPU, ports=(g.tcp_port, g.tls_port), timeout=timeout)

    def stop_gateway(self, g, p) -> None:
        # nginx: SIGQUIT is a graceful stop; haproxy: SIGUSR1 is its soft stop.
        sig = signal.SIGQUIT if g.kind == "nginx" else signal.SIGUSR1
        procs.stop(p, sig=sig, grace=60.0)

    # ------------------------------------------------------------------ setup
    def setup(self, keep: bool = False) -> None:
        """keep: re-run some phases and merge them into the existing results.json."""
        previous = self.out / "results.json"
        if keep and previous.exists():
            self.results = json.loads(previous.read_text())
            for d in ("gw", "loadgen"):
                shutil.rmtree(self.out / d, ignore_errors=True)
        else:
            if self.out.exists():
                shutil.rmtree(self.out)
            self.out.mkdir(parents=True)
        if not (self.pki / "devices.pem").exists():
            subprocess.run([self.loadgen_bin, "certs", "--dir", str(self.pki), "--devices", "1000"],
                           check=True, stdout=subprocess.DEVNULL)
        missing = gwmod.check_files(self.gws)
        if missing:
            raise SystemExit(f"missing: {', '.join(missing)}")
        for g in self.gws:
            g.write_conf(self.out / "gw" / g.key, self.pki, self.js)
        # Backends on the load generator's CPU.
        self.responder = procs.start(
            [self.loadgen_bin, "responder", "--max-secs", "3600"]
            + sum((["--listen", a] for a in gwmod.RESPONDERS), []),
            self.out / "responder.log", cpu=LOAD_CPU, ports=(19001, 19002))
        self.mosquitto = None
        if any(g.key == "bmosq" for g in self.gws) and shutil.which("mosquitto"):
            conf = gwmod.mosquitto_conf(self.out / "mosquitto")
            self.mosquitto = procs.start(["mosquitto", "-c", str(conf)], self.out / "mosquitto" / "log",
                                         cpu=LOAD_CPU, ports=(19011,))
        old_meta = self.results.get("meta", {})
        quick = old_meta.get("quick")
        self.results["meta"] = meta(self)
        if keep:
            # Sizes of the phases not re-run stay those they were measured with.
            for phase, key in (("callgrind", "cg_n"), ("strace", "st_n"), ("cpu", "rates"), ("cpu", "cpu_secs"),
                               ("cpu", "reps"), ("cpu", "cpu_phase_at"), ("cpu", "cpu_phase_git")):
                if phase not in self.args.phases.split(",") and key in old_meta:
                    self.results["meta"][key] = old_meta[key]
        if keep and quick is not None and quick != self.quick:
            self.results["meta"]["mixed_modes"] = True

    # ------------------------------------------------------------------ checks
    def functional_checks(self) -> None:
        """Each gateway forwards a good session; the MQTT-aware ones refuse a
        ClientId that is not the certificate's CN."""
        self.log("functional checks")
        for g in self.gws:
            p = self.start_gateway(g, tag="check")
            try:
                row = {}
                for t, port in (("tcp", g.tcp_port), ("tls", g.tls_port)):
                    ok = self.loadgen(port, t, ["--concurrency", "4", "--count", "40"], f"check-{g.key}-{t}")
                    row[t] = {"ok": ok["ok"], "errors": ok["errors"]}
                bad = self.loadgen(g.tls_port, "tls", ["--concurrency", "2", "--count", "10", "--mismatch"],
                                   f"check-{g.key}-mismatch")
                row["mismatch_accepted"] = bad["ok"]
                row["mismatch_errors"] = bad["errors"]
                # A slow client (CONNECT in 2 ms steps) must still get through.
                tr = self.loadgen(g.tcp_port, "tcp", ["--concurrency", "2", "--count", "4", "--trickle-ms", "2"],
                                  f"check-{g.key}-trickle")
                row["trickle_ok"] = tr["ok"]
                self.results["check"][g.key] = row
                self.log(f"  {g.key}: tcp {row['tcp']['ok']}/40 tls {row['tls']['ok']}/40 "
                         f"mismatch accepted {bad['ok']}/10 {bad['errors']} trickle {tr['ok']}/4")
            finally:
                self.stop_gateway(g, p)

    # ------------------------------------------------------------------ callgrind
    def callgrind(self) -> None:
        self.log("callgrind: user-space instructions per connection")
        for g in [g for g in self.gws if g.profile]:
            base = g.workdir / "callgrind.out"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={base}",
                       "--dump-instr=no", "--collect-jumps=no", "--vgdb=yes"]
            p = self.start_gateway(g, wrapper, tag="callgrind")
            pid = p.pid
            try:
                # Warm up both listeners (pools, lazy initialisation), then
                # dump: every later dump holds only what came after.
                self.loadgen(g.tcp_port, "tcp", ["--concurrency", "1", "--count", "50", "--timeout-ms", "60000"],
                             f"cg-{g.key}-warm-tcp")
                self.loadgen(g.tls_port, "tls", ["--concurrency", "1", "--count", "20", "--timeout-ms", "60000"],
                             f"cg-{g.key}-warm-tls")
                self.cg_dump(g, pid, "warmup")
                row = {}
                for t, port in (("tcp", g.tcp_port), ("tls", g.tls_port)):
                    n = self.cg_n[t]
                    r = self.loadgen(port, t, ["--concurrency", "1", "--count", str(n), "--timeout-ms", "60000"],
                                     f"cg-{g.key}-{t}")
                    f = self.cg_dump(g, pid, t)
                    ir = callgrind_total(f)
                    row[t] = {"n": r["ok"], "errors": r["errors"], "ir_total": ir,
                              "ir_per_conn": ir / max(r["ok"], 1), "file": str(f)}
                    if g.variant == "module":
                        row[t]["module_funcs"] = module_breakdown(f, r["ok"])
                    self.log(f"  {g.key} {t}: {row[t]['ir_per_conn']:,.0f} Ir/conn ({r['ok']} conns)")
                self.results["callgrind"][g.key] = row
            finally:
                self.stop_gateway(g, p)

    def cg_dump(self, g, pid: int, tag: str) -> Path:
        before = set(g.workdir.glob("callgrind.out*"))
        subprocess.run(["callgrind_control", "-d", tag, str(pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        deadline = time.time() + 60
        while time.time() < deadline:
            new = [p for p in g.workdir.glob("callgrind.out*") if p not in before]
            if new:
                time.sleep(0.3)
                return max(new, key=lambda p: p.stat().st_mtime)
            time.sleep(0.1)
        raise RuntimeError(f"callgrind dump {tag} of {pid} did not appear")

    # ------------------------------------------------------------------ strace
    def strace(self) -> None:
        self.log("strace: syscalls per connection")
        for g in [g for g in self.gws if g.profile]:
            p = self.start_gateway(g, tag="strace")
            try:
                self.loadgen(g.tcp_port, "tcp", ["--concurrency", "1", "--count", "50"], f"st-{g.key}-warm-tcp")
                self.loadgen(g.tls_port, "tls", ["--concurrency", "1", "--count", "20"], f"st-{g.key}-warm-tls")
                row = {}
                for t, port in (("tcp", g.tcp_port), ("tls", g.tls_port)):
                    out = g.workdir / f"strace-{t}.txt"
                    errf = g.workdir / f"strace-{t}.err"
                    sp = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(p.pid)],
                                          stdout=subprocess.DEVNULL, stderr=open(errf, "wb"))
                    procs.STARTED.append(sp)
                    deadline = time.time() + 10
                    while "attached" not in errf.read_text(errors="replace") and time.time() < deadline:
                        time.sleep(0.05)
                    time.sleep(0.2)
                    n = self.st_n[t]
                    r = self.loadgen(port, t, ["--concurrency", "1", "--count", str(n)], f"st-{g.key}-{t}")
                    time.sleep(0.2)
                    procs.stop(sp, sig=signal.SIGINT)
                    calls = parse_strace(out)
                    per = {k: v / max(r["ok"], 1) for k, v in calls.items()}
                    row[t] = {"n": r["ok"], "errors": r["errors"], "total_per_conn": sum(per.values()),
                              "per_conn": per}
                    self.log(f"  {g.key} {t}: {row[t]['total_per_conn']:.2f} syscalls/conn")
                self.results["strace"][g.key] = row
            finally:
                self.stop_gateway(g, p)

    # ------------------------------------------------------------------ cpu + latency
    def cpu_latency(self) -> None:
        self.log(f"CPU and latency at a fixed rate, {self.reps} interleaved repetitions")
        running = {}
        try:
            gws = [g for g in self.gws if g.cpu]
            for g in gws:
                running[g.key] = self.start_gateway(g, tag="cpu")
            for g in gws:  # warm-up
                self.loadgen(g.tcp_port, "tcp", ["--concurrency", "2", "--count", "200"], f"cpu-{g.key}-warm-tcp")
                self.loadgen(g.tls_port, "tls", ["--concurrency", "2", "--count", "50"], f"cpu-{g.key}-warm-tls")
            samples: dict = {}
            for rep in range(self.reps):
                order = gws[rep % len(gws):] + gws[:rep % len(gws)]
                for t in ("tcp", "tls"):
                    for g in order:
                        pid = running[g.key].pid
                        rate = self.rate[t]
                        n = int(rate * self.cpu_secs)
                        port = g.tcp_port if t == "tcp" else g.tls_port
                        others = [self.responder.pid] + ([self.mosquitto.pid] if self.mosquitto else [])
                        busy0, ours0 = procs.busy_jiffies(), procs.ticks_of([pid] + others)
                        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        ns0, tk0 = procs.cpu_times(pid)
                        t0 = time.time()
                        r = self.loadgen(port, t, ["--rate", str(rate), "--count", str(n)], f"cpu-{g.key}-{t}-{rep}")
                        wall = time.time() - t0
                        ns1, tk1 = procs.cpu_times(pid)
                        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        busy1, ours1 = procs.busy_jiffies(), procs.ticks_of([pid] + others)
                        hz = os.sysconf("SC_CLK_TCK")
                        loadgen_s = (ch1.ru_utime + ch1.ru_stime) - (ch0.ru_utime + ch0.ru_stime)
                        # CPU used by anything but this benchmark, in cores (2 = both CPUs busy).
                        foreign = max(0.0, ((busy1 - busy0) - (ours1 - ours0)) / hz - loadgen_s) / wall
                        ok = max(r["ok"], 1)
                        s = {"n": r["ok"], "errors": r["errors"], "cpu_us": (ns1 - ns0) / 1000 / ok,
                             "cpu_us_stat": (tk1 - tk0) * 1e6 / os.sysconf("SC_CLK_TCK") / ok,
                             "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "max_ms": r["max_ms"],
                             "lag_p99_ms": r.get("start_lag_p99_ms", 0), "foreign_cores": foreign,
                             "loadavg": os.getloadavg()[0]}
                        samples.setdefault(g.key, {}).setdefault(t, []).append(s)
                        self.log(f"  rep {rep} {t} {g.key}: {s['cpu_us']:.1f} us/conn, p50 {s['p50_ms']:.3f} "
                                 f"p99 {s['p99_ms']:.3f} ms, ok {r['ok']}/{n} {r['errors'] or ''} (other load {foreign:.2f} cores)")
            self.results["cpu"] = {"rate": self.rate, "secs": self.cpu_secs, "reps": self.reps,
                                   "samples": samples}
        finally:
            for g in self.gws:
                if g.key in running:
                    self.stop_gateway(g, running[g.key])

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1))


# ---------------------------------------------------------------------- parsing
def callgrind_total(path: Path) -> int:
    text = path.read_text(errors="replace")
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    if not m:
        raise RuntimeError(f"no totals in {path}")
    return int(m.group(1))


MODULE_OBJ = "ngx_stream_mqtt_preread_module"
_TREE_LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+([*>])\s+(.*?)(?:\s+\((\d[\d,]*)x\))?\s+\[([^\]]*)\]\s*$")


def _fname(s: str) -> str:
    # "file:function" with file "???" or a path
    return s.split(":", 1)[1] if (s.startswith("???:") or s.startswith("./") or s.startswith("/")) else s


def module_breakdown(path: Path, n: int) -> list:
    """Our module's functions that nginx calls (entry points), with their
    inclusive Ir per connection and their callees, from callgrind_annotate
    --inclusive=yes --tree=calling."""
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=calling", "--threshold=100", str(path)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    funcs: dict = {}
    cur = None
    for line in r.stdout.splitlines():
        m = _TREE_LINE.match(line)
        if not m:
            if not line.strip():
                cur = None
            continue
        ir = int(m.group(1).replace(",", ""))
        kind, name, calls, obj = m.group(2), _fname(m.group(3)), m.group(4), m.group(5)
        if kind == "*":
            cur = None
            if MODULE_OBJ in obj:
                cur = funcs.setdefault(name, {"func": name, "ir": ir, "callees": []})
        elif cur is not None:
            cur["callees"].append({"func": name, "ir": ir, "calls": int((calls or "0").replace(",", "")),
                                   "obj": os.path.basename(obj), "in_module": MODULE_OBJ in obj})
    called_inside = {c["func"] for f in funcs.values() for c in f["callees"] if c["in_module"]}
    out = []
    for f in funcs.values():
        callees = [dict(c, ir_per_conn=c["ir"] / max(n, 1), calls_per_conn=c["calls"] / max(n, 1))
                   for c in f["callees"]]
        out.append({"func": f["func"], "entry": f["func"] not in called_inside,
                    "ir_per_conn": f["ir"] / max(n, 1),
                    "self_per_conn": (f["ir"] - sum(c["ir"] for c in f["callees"])) / max(n, 1),
                    "callees": sorted(callees, key=lambda c: -c["ir"])[:12]})
    out.sort(key=lambda x: -x["ir_per_conn"])
    return out[:40]


def parse_strace(path: Path) -> dict:
    calls = {}
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[-1] == "total" or not parts[0][0].isdigit():
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        try:
            n = int(parts[3])
        except ValueError:
            continue
        calls[parts[-1]] = calls.get(parts[-1], 0) + n
    return calls


def cmd_out(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
        return r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def meta(b: Bench) -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": b.quick,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
        "nginx_debian": cmd_out([gwmod.DEB_NGINX, "-v"]).replace("nginx version: ", ""),
        "nginx_vendored": cmd_out([b.args.vendored_nginx, "-v"]).replace("nginx version: ", ""),
        "haproxy": cmd_out([gwmod.HAPROXY, "-v"]).splitlines()[0],
        "openssl": cmd_out(["openssl", "version"]),
        "valgrind": cmd_out(["valgrind", "--version"]),
        "strace": cmd_out(["strace", "-V"]).splitlines()[0],
        "mosquitto": cmd_out(["mosquitto", "-h"]).splitlines()[0],
        "git": cmd_out(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
        "gateways": {g.key: g.label for g in b.gws},
        "rates": b.rate, "cg_n": b.cg_n, "st_n": b.st_n, "cpu_secs": b.cpu_secs, "reps": b.reps,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--vendored-nginx", required=True)
    ap.add_argument("--vendored-module", required=True)
    ap.add_argument("--debian-module", required=True)
    ap.add_argument("--results", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--docs", default=str(ROOT / "docs"))
    ap.add_argument("--only", help="comma-separated gateway keys (development)")
    ap.add_argument("--phases", default="check,callgrind,strace,cpu")
    ap.add_argument("--report-only", action="store_true", help="rewrite the docs from results.json")
    ap.add_argument("--merge", action="store_true",
                    help="keep results.json and replace only the phases run (e.g. --phases cpu --merge)")
    args = ap.parse_args()

    b = Bench(args)
    if args.report_only:
        b.results = json.loads((Path(args.results) / "results.json").read_text())
        report.write(b.results, Path(args.docs))
        return 0
    t0 = time.time()
    phases = args.phases.split(",")
    # A TERM (timeout, kill) unwinds like an error, so that everything this
    # run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        b.setup(keep=args.merge)
        if "check" in phases:
            b.functional_checks()
            b.save()
        if "callgrind" in phases:
            b.callgrind()
            b.save()
        if "strace" in phases:
            b.strace()
            b.save()
        if "cpu" in phases:
            b.results["meta"]["cpu_phase_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            b.results["meta"]["cpu_phase_git"] = b.results["meta"].get("git")
            b.cpu_latency()
            b.save()
    finally:
        procs.stop_all()
    b.results["meta"]["duration_s"] = round(time.time() - t0)
    b.save()
    report.write(b.results, Path(args.docs))
    b.log(f"done in {time.time() - t0:.0f}s: {args.docs}/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

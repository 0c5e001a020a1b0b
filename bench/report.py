"""docs/BENCHMARKS.md and docs/bench-*.png from bench/results/results.json."""

from __future__ import annotations

import statistics
from pathlib import Path

ORDER = ["a", "a1", "b", "bnh", "brw", "brv", "blim", "bm", "c", "d0", "d", "a128", "a1128", "b128", "bmosq"]
BASE = {"a": "a", "a1": "a", "b": "a", "bnh": "a", "brw": "a", "brv": "a", "blim": "a", "bm": "a", "c": "a", "d0": "a", "d": "a",
        "a128": "a128", "a1128": "a128", "b128": "a128", "bmosq": "a"}
TRANSPORTS = (("tcp", "plain TCP"), ("tls", "mTLS"))


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_delta(x: float) -> str:
    return f"{x:+,.0f}"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def label(res, key):
    return res["meta"]["gateways"].get(key, key)


def keys(res, section):
    present = res.get(section, {})
    return [k for k in ORDER if k in present]


# ---------------------------------------------------------------------- tables
def instructions_table(res) -> list[str]:
    cg = res.get("callgrind", {})
    out = ["| gateway | TCP Ir/conn | Δ vs baseline | mTLS Ir/conn | Δ vs baseline |",
           "|---|---:|---:|---:|---:|"]
    for k in keys(res, "callgrind"):
        row = [label(res, k)]
        for t, _ in TRANSPORTS:
            v = cg[k].get(t, {}).get("ir_per_conn")
            b = cg.get(BASE[k], {}).get(t, {}).get("ir_per_conn")
            row.append(fmt_int(v) if v is not None else "–")
            if k == BASE[k]:
                row.append("baseline")
            else:
                d = fmt_delta(v - b) if v is not None and b is not None else "–"
                if k == "d" and "d0" in cg:
                    d += f" (vs d0: {fmt_delta(v - cg['d0'][t]['ir_per_conn'])})"
                row.append(d)
        out.append("| " + " | ".join(row) + " |")
    return out


def syscalls_table(res) -> list[str]:
    st = res.get("strace", {})
    out = ["| gateway | TCP syscalls/conn | Δ vs baseline | mTLS syscalls/conn | Δ vs baseline |",
           "|---|---:|---:|---:|---:|"]
    for k in keys(res, "strace"):
        row = [label(res, k)]
        for t, _ in TRANSPORTS:
            v = st[k].get(t, {}).get("total_per_conn")
            b = st.get(BASE[k], {}).get(t, {}).get("total_per_conn")
            row.append(f"{v:.2f}" if v is not None else "–")
            row.append("baseline" if k == BASE[k] else (f"{v - b:+.2f}" if v is not None and b is not None else "–"))
        out.append("| " + " | ".join(row) + " |")
    return out


def syscall_diff(res, k, base, t) -> str:
    st = res.get("strace", {})
    if k not in st or base not in st:
        return "–"
    a = st[base][t]["per_conn"]
    b = st[k][t]["per_conn"]
    parts = []
    for name in sorted(set(a) | set(b)):
        d = b.get(name, 0) - a.get(name, 0)
        if abs(d) >= 0.05:
            parts.append(f"{name} {d:+.2f}")
    return ", ".join(parts) or "none"


def cpu_stats(res, k, t, field):
    s = res.get("cpu", {}).get("samples", {}).get(k, {}).get(t, [])
    xs = [x[field] for x in s if x["n"] > 0]
    return (med(xs), min(xs), max(xs)) if xs else None


def cpu_table(res) -> list[str]:
    out = ["| gateway | TCP µs/conn, median (min–max) | × (a) | mTLS µs/conn, median (min–max) | × (a) | other load, cores |",
           "|---|---:|---:|---:|---:|---:|"]
    for k in keys(res, "cpu") if False else [k for k in ORDER if k in res.get("cpu", {}).get("samples", {})]:
        row = [label(res, k)]
        for t, _ in TRANSPORTS:
            s = cpu_stats(res, k, t, "cpu_us")
            b = cpu_stats(res, BASE[k], t, "cpu_us")
            row.append(f"{s[0]:.1f} ({s[1]:.1f}–{s[2]:.1f})" if s else "–")
            row.append(f"{s[0] / b[0]:.3f}" if s and b else "–")
        fo = [x["foreign_cores"] for t, _ in TRANSPORTS
              for x in res["cpu"]["samples"][k].get(t, []) if "foreign_cores" in x]
        row.append(f"{med(fo):.2f} (max {max(fo):.2f})" if fo else "–")
        out.append("| " + " | ".join(row) + " |")
    return out


def other_load(res) -> float | None:
    fo = [x["foreign_cores"] for k in res.get("cpu", {}).get("samples", {}).values()
          for t in k.values() for x in t if "foreign_cores" in x]
    return med(fo) if fo else None


def analysis(res) -> list[str]:
    cg = res.get("callgrind", {})

    def ir(k, t):
        return cg.get(k, {}).get(t, {}).get("ir_per_conn")

    out = []
    if all(ir(k, "tcp") is not None for k in ("a", "a1", "bnh", "b")):
        a, a1, bnh, b = (ir(k, "tcp") for k in ("a", "a1", "bnh", "b"))
        out += ["Plain TCP, nginx 1.22, (b) − (a) = "
                f"{fmt_delta(b - a)} instructions per connection, of which:", "",
                f"- {fmt_delta(bnh - a)}: the module's preread without the hash ((b-rr) − (a)): nginx's preread "
                "phase (a timer, one more pass of the phase engine, the proxy sending the preread bytes) plus "
                "the module's handler (the session context with its 800-byte read buffer, parsing the CONNECT, "
                "the content gate, the log-phase check);",
                f"- {fmt_delta(b - bnh)}: `hash $mqtt_client_id consistent` instead of round-robin ((b) − (b-rr)): "
                "evaluating `$mqtt_client_id` through nginx's script engine (the module's getter is a small part) "
                "plus nginx's own consistent-hash peer selection (CRC32 of the key, binary search over the "
                "points).", "",
                f"For comparison, (a') − (a) = {fmt_delta(a1 - a)}: `ssl_preread on`, which declines at once on "
                "MQTT bytes, pays nginx's preread phase with its `preread_buffer_size` (16k) buffer, which is "
                "allocated per session. The module reads into a buffer in its session context instead (a "
                "larger CONNECT gets one of its exact size), so its whole preread costs "
                f"{'less' if bnh < a1 else 'more'} than that no-op ({fmt_delta(bnh - a1)}).", ""]
    if ir("b", "tcp") is not None and ir("blim", "tcp") is not None:
        out += [f"Admission control, (b+lim) − (b) = {fmt_delta(ir('blim', 'tcp') - ir('b', 'tcp'))} per plain-TCP "
                "connection: `$mqtt_client_id` read once from the session and hashed once (SipHash-1-3) for "
                "both zones, a lookup in each zone's table under its mutex, and the session's count released "
                "in the log phase. Memory: a slot of 32 bytes per key in a `mqtt_limit_connect_zone`, 88 in a "
                "`mqtt_limit_conn_zone`; 10 MB hold 325,376 and 118,312 keys (the zones log their capacity at "
                "start-up; tests/admission.rs checks it is over 100,000).", ""]
    if ir("b", "tcp") is not None and ir("bm", "tcp") is not None:
        out += [f"`mqtt_metrics`, (b+m) − (b) = {fmt_delta(ir('bm', 'tcp') - ir('b', 'tcp'))} per plain-TCP "
                "connection: a few atomic additions to the server's counters in shared memory.", ""]
    if all(ir(k, "tls") is not None for k in ("a", "bnh", "b")):
        a, bnh, b = (ir(k, "tls") for k in ("a", "bnh", "b"))
        out += [f"mTLS, nginx 1.22: (b) − (a) = {fmt_delta(b - a)} per connection "
                f"({fmt_delta(bnh - a)} without the hash). The module's own mTLS cost, reading the certificate "
                "identity and checking the policy, is `preread::decide` in the mTLS table below.", ""]
    if ir("a128", "tcp") is not None and ir("b128", "tcp") is not None:
        out.append(f"nginx 1.28 (vendored): (b) − (a) = {fmt_delta(ir('b128', 'tcp') - ir('a128', 'tcp'))} TCP"
                   + (f", (a') − (a) = {fmt_delta(ir('a1128', 'tcp') - ir('a128', 'tcp'))}"
                      if ir("a1128", "tcp") is not None else "")
                   + (f"; mTLS (b) − (a) = {fmt_delta(ir('b128', 'tls') - ir('a128', 'tls'))}"
                      if ir("b128", "tls") is not None else "") + ".")
        out.append("")
    return out


def latency_table(res) -> list[str]:
    out = ["| gateway | TCP p50 ms | TCP p99 ms | mTLS p50 ms | mTLS p99 ms | errors |",
           "|---|---:|---:|---:|---:|---|"]
    samples = res.get("cpu", {}).get("samples", {})
    for k in [k for k in ORDER if k in samples]:
        row = [label(res, k)]
        errs = {}
        for t, _ in TRANSPORTS:
            for f in ("p50_ms", "p99_ms"):
                s = cpu_stats(res, k, t, f)
                row.append(f"{s[0]:.2f} ({s[1]:.2f}–{s[2]:.2f})" if s else "–")
            for x in samples[k].get(t, []):
                for e, n in x["errors"].items():
                    errs[e] = errs.get(e, 0) + n
        row.append(", ".join(f"{e} {n}" for e, n in errs.items()) or "0")
        out.append("| " + " | ".join(row) + " |")
    return out


def checks_table(res) -> list[str]:
    out = ["| gateway | TCP sessions ok | mTLS sessions ok | mismatched ClientId accepted | trickled CONNECT ok |",
           "|---|---:|---:|---:|---:|"]
    for k in [k for k in ORDER if k in res.get("check", {})]:
        c = res["check"][k]
        mm = f"{c['mismatch_accepted']}/10" + (f" ({', '.join(c['mismatch_errors'])})" if c["mismatch_errors"] else "")
        out.append(f"| {label(res, k)} | {c['tcp']['ok']}/40 | {c['tls']['ok']}/40 | {mm} | {c['trickle_ok']}/4 |")
    return out


def breakdown(res, key="b") -> list[str]:
    cg = res.get("callgrind", {}).get(key, {})
    out = []
    for t, name in TRANSPORTS:
        funcs = cg.get(t, {}).get("module_funcs") or []
        if not funcs:
            continue
        out += [f"**{name}**, {label(res, key)}: the module's functions, inclusive Ir per "
                "connection, their own (self) cost and their biggest callees:", "",
                "| function (entry points first; then callees ≥ 1k) | inclusive Ir/conn | self Ir/conn | callees (Ir/conn, calls/conn) |",
                "|---|---:|---:|---|"]
        shown = [f for f in funcs if f["entry"] or f["ir_per_conn"] >= 1000][:10]
        shown.sort(key=lambda f: (not f["entry"], -f["ir_per_conn"]))
        for f in shown:
            callees = "; ".join(
                f"`{short(c['func'])}` {fmt_int(c['ir_per_conn'])} ({c['calls_per_conn']:.2g}×, {c['obj']})"
                for c in f["callees"][:6])
            out.append(f"| `{short(f['func'])}` | {fmt_int(f['ir_per_conn'])} | {fmt_int(f['self_per_conn'])} | "
                       f"{callees or '–'} |")
        out += ["", "Other module functions (inclusive Ir/conn):", ""]
        nested = [f for f in funcs if f not in shown][:14]
        out.append(", ".join(f"`{short(f['func'])}` {fmt_int(f['ir_per_conn'])}" for f in nested) or "none")
        out.append("")
    return out


def short(name: str) -> str:
    name = name.replace("ngx_stream_mqtt_preread_module::", "")
    if len(name) > 90:
        name = name[:87] + "…"
    return name.replace("|", "\\|")


# ---------------------------------------------------------------------- targets
def targets(res) -> list[tuple[str, str, str]]:
    cg, st = res.get("callgrind", {}), res.get("strace", {})
    rows = []

    def ir(k, t):
        return cg.get(k, {}).get(t, {}).get("ir_per_conn")

    if ir("a", "tcp") is not None and ir("b", "tcp") is not None:
        d = ir("b", "tcp") - ir("a", "tcp")
        rows.append(("plain TCP: ≤ +1.0k instructions/conn over (a), nginx 1.22", f"{fmt_delta(d)}",
                     "met" if d <= 1000 else "**missed**"))
    if ir("a", "tcp") is not None and ir("bnh", "tcp") is not None:
        d = ir("bnh", "tcp") - ir("a", "tcp")
        rows.append(("plain TCP, diagnostic: (b-rr), i.e. (b) without `hash ... consistent`", fmt_delta(d),
                     "within +1.0k" if d <= 1000 else "over +1.0k"))
    if ir("b", "tcp") is not None and ir("brw", "tcp") is not None:
        d = ir("brw", "tcp") - ir("b", "tcp")
        rows.append(("plain TCP: the CONNECT rewrite ≤ +1.5k instructions/conn over (b)", fmt_delta(d),
                     "met" if d <= 1500 else "**missed**"))
    if ir("b", "tcp") is not None and ir("brv", "tcp") is not None:
        d = ir("brv", "tcp") - ir("b", "tcp")
        rows.append(("plain TCP, diagnostic: the rewrite with a single-variable username ((b+rw1))",
                     fmt_delta(d), "within +1.5k" if d <= 1500 else "over +1.5k"))
    if ir("b", "tcp") is not None and ir("blim", "tcp") is not None:
        d = ir("blim", "tcp") - ir("b", "tcp")
        rows.append(("plain TCP: admission control (a rate zone and a conn zone) ≤ +1.0k instructions/conn "
                     "over (b)", fmt_delta(d), "met" if d <= 1000 else "**missed**"))
    if "b" in st and "blim" in st:
        d = st["blim"]["tcp"]["total_per_conn"] - st["b"]["tcp"]["total_per_conn"]
        rows.append(("plain TCP: admission control makes no extra syscall over (b)",
                     f"{d:+.2f} ({syscall_diff(res, 'blim', 'b', 'tcp')})", "met" if d < 0.5 else "**missed**"))
    if ir("b", "tcp") is not None and ir("bm", "tcp") is not None:
        d = ir("bm", "tcp") - ir("b", "tcp")
        rows.append(("plain TCP: `mqtt_metrics` ≤ +300 instructions/conn over (b)", fmt_delta(d),
                     "met" if d <= 300 else "**missed**"))
    if "b" in st and "brw" in st:
        d = st["brw"]["tcp"]["total_per_conn"] - st["b"]["tcp"]["total_per_conn"]
        rows.append(("plain TCP: the CONNECT rewrite makes no extra syscall over (b)",
                     f"{d:+.2f} ({syscall_diff(res, 'brw', 'b', 'tcp')})", "met" if d < 0.5 else "**missed**"))
    if "a" in st and "b" in st:
        d = st["b"]["tcp"]["total_per_conn"] - st["a"]["tcp"]["total_per_conn"]
        rows.append(("plain TCP: no extra syscall over (a), nginx 1.22", f"{d:+.2f} ({syscall_diff(res, 'b', 'a', 'tcp')})",
                     "met" if d < 0.5 else "**missed**"))
    if ir("a", "tls") is not None and ir("b", "tls") is not None:
        d = ir("b", "tls") - ir("a", "tls")
        rows.append(("mTLS: ≤ +20k instructions/conn over (a), incl. reading the certificate identity",
                     fmt_delta(d), "met" if d <= 20000 else "**missed**"))
    for field, what in (("cpu_us", "CPU µs/conn"), ("p99_ms", "p99 CONNACK latency")):
        for t, name in TRANSPORTS:
            a, b, c = (cpu_stats(res, k, t, field) for k in ("a", "b", "c"))
            if not (a and b):
                continue
            busy = max([x.get("foreign_cores", 0) for k in ("a", "b", "c")
                        for x in res.get("cpu", {}).get("samples", {}).get(k, {}).get(t, [])] or [0])
            noise = max(a[2] - a[1], b[2] - b[1], 0.03 * a[0])
            within = abs(b[0] - a[0]) <= noise
            below_c = c is not None and b[0] < c[0]
            unit = "µs" if field == "cpu_us" else "ms"
            m = (f"(b) {b[0]:.2f} vs (a) {a[0]:.2f} {unit} (noise ±{noise:.2f})"
                 + (f", (c) {c[0]:.2f}" if c else ""))
            verdict = ("met" if within and (below_c or c is None) else
                       "**missed**" if not within and b[0] > a[0] else
                       "met (b below a)" if b[0] <= a[0] and (below_c or c is None) else "**missed** (not below c)")
            if busy > 0.2:
                verdict = (f"inconclusive: other processes used up to {busy:.1f} cores during these runs "
                           f"(would read: {verdict.replace('**', '')})")
            rows.append((f"{name}: {what} within noise of (a) and below (c)", m, verdict))
    return rows


# ---------------------------------------------------------------------- charts
def png_bars(title: str, panels: list[tuple[str, list[tuple[str, float, float | None, float | None]]]],
             unit: str, path: Path) -> None:
    """Horizontal bar chart, one panel per transport: rows of (label, value,
    lo, hi); lo-hi, when given, is drawn as a range line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heights = [0.9 + 0.32 * len(rows) for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, sum(heights) + 0.8),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (ptitle, rows) in zip(axes[:, 0], panels):
        labels = [lab for lab, *_ in rows][::-1]
        values = [v for _, v, _, _ in rows][::-1]
        colors = ["#2b7bb9" if "module" in lab else "#d98c1f" if "njs" in lab else
                  "#7b5ea7" if "HAProxy" in lab else "#8c8c8c" for lab in labels]
        bars = ax.barh(labels, values, color=colors, height=0.7)
        for i, (_, _, lo, hi) in enumerate(rows[::-1]):
            if lo is not None and hi is not None:
                ax.hlines(i, lo, hi, colors="black", linewidth=1.5)
        vmax = max([max(v, hi or v) for _, v, _, hi in rows] + [1e-9])
        for bar, (_, v, _, hi) in zip(bars, rows[::-1]):
            text = f"{v:,.1f} {unit}" if abs(v) < 100 else f"{v:,.0f} {unit}"
            ax.text(max(bar.get_width(), hi or 0, 0) + vmax * 0.01, bar.get_y() + bar.get_height() / 2,
                    text, va="center", fontsize=9)
        ax.set_xlim(min([0] + [v for _, v, _, _ in rows]) * 1.1, vmax * 1.22)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(ptitle, loc="left", fontsize=11, fontweight="bold")
        ax.tick_params(axis="y", labelsize=9)
        ax.tick_params(axis="x", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
    fig.tight_layout()
    # No timestamp in the file: the same results give the same bytes.
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def charts(res, docs: Path) -> list[str]:
    made = []
    cg = res.get("callgrind", {})
    panels = []
    for t, name in TRANSPORTS:
        rows = []
        for k in keys(res, "callgrind"):
            if k == BASE[k] or k == "d0" or k not in cg or t not in cg[k]:
                continue
            base, lab = BASE[k], label(res, k)
            if k == "d" and "d0" in cg:
                base, lab = "d0", lab + " (vs d0)"
            if t not in cg.get(base, {}):
                continue  # a run of some gateways only (--only) may lack the baseline
            rows.append((lab, cg[k][t]["ir_per_conn"] - cg[base][t]["ir_per_conn"], None, None))
        if rows:
            panels.append((f"{name}: extra user-space instructions per connection over the baseline", rows))
    if panels:
        png_bars("Extra instructions per connection (callgrind; baseline: (a) of the same nginx, HAProxy: d0)", panels,
                 "Ir", docs / "bench-instructions.png")
        made.append("bench-instructions.png")
    samples = res.get("cpu", {}).get("samples", {})
    panels = []
    for t, name in TRANSPORTS:
        rows = []
        for k in [k for k in ORDER if k in samples]:
            s = cpu_stats(res, k, t, "cpu_us")
            if s:
                rows.append((label(res, k), s[0], s[1], s[2]))
        if rows:
            panels.append((f"{name}: gateway CPU per connection (median, min–max)", rows))
    if panels:
        png_bars("Gateway CPU time per connection (/proc/PID/schedstat)", panels, "µs", docs / "bench-cpu.png")
        made.append("bench-cpu.png")
    return made


# ---------------------------------------------------------------------- document
def write(res: dict, docs: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    m = res.get("meta", {})
    made = charts(res, docs)
    rates = m.get("rates", {})
    L = []
    L += ["# Benchmarks: what MQTT awareness costs a gateway", "",
          "<!-- Generated by bench/run.sh; do not edit by hand: re-run it. -->", "",
          "A gateway in front of MQTT brokers can route on the ClientId and bind it to the "
          "device's certificate in four ways: this module, an njs script (the approach of the 2017 NGINX Plus "
          "`mqtt.js` recipe, which also runs on open-source nginx), HAProxy's MQTT converters, or not at all. "
          "This page measures what each costs per connection, in one run on one machine.", "",
          f"- Run: {m.get('date', '?')}, {'**quick mode** (fewer connections, 1 repetition)' if m.get('quick') else 'full mode'}, "
          f"{m.get('duration_s', '?')} s, tree `{m.get('git', '?')}`."
          + (f" The CPU and latency phase (section 3) is from an earlier run on a quieter machine: "
             f"{m['cpu_phase_at']}, tree `{m.get('cpu_phase_git', '?')}`."
             if m.get("cpu_phase_at") and m.get("cpu_phase_git") != m.get("git") else ""),
          f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, Linux {m.get('kernel', '?')}.",
          f"- Software: nginx {m.get('nginx_debian', '?')} (Debian) and {m.get('nginx_vendored', '?')} (vendored, "
          f"built with the module), {m.get('haproxy', '?')}, {m.get('openssl', '?')}, njs 0.7.9, "
          f"{m.get('mosquitto', '?')}, {m.get('valgrind', '?')}, {m.get('strace', '?')}.",
          "- Reproduce: `bench/run.sh` (full, ~10–15 min) or `bench/run.sh --quick` (~3 min). "
          "Raw results: `bench/results/results.json`.", ""]
    if made:
        L += [f"![{x}]({x})" for x in made] + [""]

    L += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    for what, val, verdict in targets(res):
        L.append(f"| {what} | {val} | {verdict} |")
    L += ["", "Reference points measured on this kind of machine with the same method (plain TCP): nginx 1.22 "
          "without preread ≈ 10.4k instructions per connection; `ssl_preread` +0.8k; njs +45k; HAProxy MQTT "
          "rules +2.0k; a C preread module in an nginx fork +2.1k and one syscall.", ""]

    L += ["## Gateways", "",
          "All on 127.0.0.1; each gateway process serves a plain TCP and an mTLS listener (TLS 1.3, ECDSA "
          "P-256 server and per-device client certificates, CN = ClientId, `ssl_verify_client on`, no session "
          "resumption: every connection is a full handshake). One worker (`master_process off`, or HAProxy "
          "`nbthread 1` + `cpu-map`) pinned to CPU 1 with `taskset`; load generator, CONNACK responder and "
          "mosquitto on CPU 0. Upstream: the responder's two listeners (so hashing has a choice).", "",
          "- **(a)** nginx, `proxy_pass` only (round-robin): the baseline.",
          "- **(a')** (a) + `ssl_preread on`: the floor of nginx's preread phase (on MQTT bytes it declines at once).",
          "- **(b)** nginx + this module: `mqtt_preread on`, `hash $mqtt_client_id consistent`, and on the mTLS "
          "listener `mqtt_client_id_match cn`.",
          "- **(b-rr)** diagnostic: (b) with round-robin instead of the hash, to split the module's preread from "
          "the cost of consistent hashing (instructions and syscalls only).",
          "- **(c)** nginx + njs 0.7.9: `js_preread` parses the CONNECT, sets `js_var $mqtt_cid` for "
          "`hash $mqtt_cid consistent`, and on mTLS compares the ClientId with the CN in `$ssl_client_s_dn` "
          "([bench/gateways/mqtt.js](../bench/gateways/mqtt.js)).",
          "- **(d0)** HAProxy 2.6, `mode tcp`, round-robin, no MQTT rules: HAProxy's own baseline.",
          "- **(d)** HAProxy 2.6: `req.payload(0,0),mqtt_is_valid`, "
          "`mqtt_field_value(connect,client_identifier)` into `txn.clientid`, `balance hash var(txn.clientid)` "
          "(consistent) and, on mTLS, `ssl_c_s_dn(cn),strcmp(txn.clientid)`.",
          "- nginx 1.28 rows: the vendored nginx the module builds against, (a) and (b) configured as above "
          "(it is built without `ssl_preread`, so (a') is on 1.22 only).",
          "- (b) → mosquitto: (b) in front of a real broker (mosquitto 2.0) instead of the responder.", "",
          "Configurations are generated by [bench/gateways.py](../bench/gateways.py) (copies of each run's "
          "files are under `bench/results/gw/`).", ""]

    L += ["## 1. User-space instructions per connection (callgrind)", "",
          "The reproducible figure. The gateway runs under `valgrind --tool=callgrind`; after a warm-up "
          "(50 TCP + 20 mTLS connections) `callgrind_control -d` dumps and zeroes the counters, then N "
          f"connections run one at a time (N = {m.get('cg_n', {}).get('tcp', '?')} TCP, "
          f"{m.get('cg_n', {}).get('tls', '?')} mTLS) and a second dump is divided by N. Start-up and "
          "warm-up cancel out. Each connection: TCP (+ full mTLS handshake), CONNECT (3.1.1), CONNACK, "
          "DISCONNECT, close; nginx also connects to and closes the upstream. Baseline: (a) of the same nginx "
          "(HAProxy rows also show Δ vs d0). mTLS deltas carry about ±2k of noise: a full handshake is ~6M "
          "instructions and varies with the random values of each one (compare (b) with (b-rr)); the module's own "
          "mTLS cost is exact in section 5.", ""]
    L += instructions_table(res) + [""]

    L += ["## 2. Syscalls per connection (strace)", "",
          "`strace -c -f -p PID` attached after the warm-up, N connections one at a time "
          f"(N = {m.get('st_n', {}).get('tcp', '?')} TCP, {m.get('st_n', {}).get('tls', '?')} mTLS), "
          "calls divided by N. Fractions come from `epoll_wait` and `read` calls that depend on timing "
          "(whether the CONNECT arrived with the handshake's last flight or on its own).", ""]
    L += syscalls_table(res) + [""]
    for k in ("a1", "b", "bnh", "brw", "blim", "bm", "c", "a1128", "b128"):
        base = BASE.get(k, "a")
        if k in res.get("strace", {}) and base in res.get("strace", {}):
            L.append(f"- {label(res, k)} vs {label(res, base)}: TCP {syscall_diff(res, k, base, 'tcp')}; "
                     f"mTLS {syscall_diff(res, k, base, 'tls')}.")
    L.append("")

    cpu = res.get("cpu", {})
    L += ["## 3. Gateway CPU per connection", "",
          f"Open-loop load at a fixed rate ({rates.get('tcp', '?'):.0f} connections/s TCP, "
          f"{rates.get('tls', '?'):.0f}/s mTLS, {cpu.get('secs', '?')} s each), gateways interleaved, "
          f"{cpu.get('reps', '?')} repetition(s). CPU = the worker's on-CPU time (user + system) from "
          "`/proc/PID/schedstat` (ns resolution; `utime+stime` from `/proc/PID/stat` agrees within its 10 ms "
          "ticks, see results.json) divided by the connections. Median (min–max); × (a) is the ratio of "
          "medians to (a) of the same nginx. Most of a TCP connection's cost is in the kernel (accept, "
          "connect, close on two sockets), so user-space differences are diluted here.", ""]
    L += cpu_table(res) + [""]
    ol = other_load(res)
    if ol is not None and ol > 0.1:
        L += [f"**Caution:** other processes on this machine used a median of {ol:.2f} cores during these runs "
              "(column *other load*: all non-idle CPU time minus the gateway, load generator, responder and "
              "mosquitto). Sections 3 and 4 are then noisy; sections 1 and 2 are not affected.", ""]

    L += ["## 4. CONNACK latency at a fixed rate", "",
          "From each connection's start (TCP connect) to the CONNACK, measured by the load generator in the same "
          "runs as section 3; median over repetitions (min–max). Includes the load generator's own TLS work on "
          "the other core.", ""]
    L += latency_table(res) + [""]

    L += ["## 5. Where the module's instructions go", "",
          "From `callgrind_annotate --inclusive=yes --tree=calling` of the measured dump of (b) on nginx 1.22. "
          "`content_gate` wraps the server's content handler (`proxy_pass`): its inclusive cost includes all of "
          "nginx's proxying, and only its self cost is the module's. Compare (b) with (b-rr) in section 1 for "
          "the cost of `hash ... consistent` itself.", ""]
    L += analysis(res)
    L += breakdown(res, "b") + [""]

    L += ["## Functional checks", "",
          "Before measuring, each gateway carries 40 good sessions per transport, is offered 10 mTLS sessions "
          "whose ClientId is not the certificate's CN (MQTT-aware gateways must refuse them: this module answers "
          "with a refusing CONNACK, njs and HAProxy close), and 4 CONNECTs trickled a byte every 2 ms.", ""]
    L += checks_table(res) + [""]

    L += ["## Method notes", "",
          "- Load generator: `bench/loadgen` (Rust, tokio + tokio-rustls/ring, hdrhistogram), also a CONNACK "
          "responder (`loadgen responder`) so the broker is not what is measured, and a `hold` mode for soak "
          "tests (N sessions held for T seconds, publishing periodically) with `--trickle-ms` and "
          "`--stall-after` for slow and stalled clients. `bench/loadgen/target/release/loadgen --help`.",
          "- Open loop: connections start on a fixed schedule; latency counts from the actual start (tokio "
          "timers tick in ms) and the load generator warns when starts lag, which would mean it is saturated.",
          "- TLS session tickets are off on all servers and the client never resumes: every mTLS connection is a "
          "full TLS 1.3 handshake with client-certificate verification.",
          "- njs 0.7.9 hands a preread `upload` callback the whole buffer so far on every call; the script "
          "parses that, it does not append.",
          "- `balance hash req.payload(...)` silently falls back to round-robin in HAProxy 2.6, so the ClientId "
          "goes through a variable.",
          "- Callgrind counts user-space instructions only; kernel work shows in sections 2 and 3.", ""]
    (docs / "BENCHMARKS.md").write_text("\n".join(L))

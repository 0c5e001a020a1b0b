#!/usr/bin/python3
"""Chart of a `fleet.py compare` run: gateway memory over the run, memory
per device on the plateau, connect latency; for (a), (b), (d).

    /usr/bin/python3 scripts/soak/fleet_chart.py DIR/compare.json docs/scale.png

(/usr/bin/python3: Debian's python3-matplotlib.)
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"a": "(a) nginx, proxy_pass", "b": "(b) nginx + module", "d": "(d) HAProxy 2.6 MQTT"}
COLORS = {"a": "#888888", "b": "#1f77b4", "d": "#d62728"}


def main(src, dst):
    r = json.load(open(src))
    runs = [x for x in r["runs"] if "samples" in x]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.6))
    for x in runs:
        g = x["gateway"]
        t = [s["t"] for s in x["samples"]]
        ax[0].plot(t, [(s["private"] - x["private_baseline_kib"]) / 1024 for s in x["samples"]],
                   label=LABELS.get(g, g), color=COLORS.get(g))
        ax0b = [s["live"] for s in x["samples"]]
        ax[0].plot(t, [v * x["private_per_device_kib"] / 1024 for v in ax0b], ls=":",
                   color=COLORS.get(g), lw=0.8)
    ax[0].set_xlabel("seconds since the first connect")
    ax[0].set_ylabel("gateway private memory over idle, MiB")
    ax[0].set_title(f"{r['sessions']:,} mTLS devices: memory over the run")
    ax[0].legend(fontsize=8)
    names = [LABELS.get(x["gateway"], x["gateway"]) for x in runs]
    xs = range(len(runs))
    w = 0.38
    ax[1].bar([i - w / 2 for i in xs], [x["rss_per_device_kib"] for x in runs], w, label="RSS",
              color=[COLORS.get(x["gateway"]) for x in runs], alpha=0.55)
    ax[1].bar([i + w / 2 for i in xs], [x["private_per_device_kib"] for x in runs], w,
              label="Private (smaps_rollup)", color=[COLORS.get(x["gateway"]) for x in runs])
    for i, x in enumerate(runs):
        ax[1].text(i + w / 2, x["private_per_device_kib"], f"{x['private_per_device_kib']:.1f}",
                   ha="center", va="bottom", fontsize=8)
    ax[1].set_xticks(list(xs), [n.split(" ", 1)[0] for n in names])
    ax[1].set_ylabel("KiB per device on the plateau")
    ax[1].set_title("memory per device (light: RSS, dark: Private)")
    ax[2].bar([i - w / 2 for i in xs], [x["p50_ms"] for x in runs], w, label="p50",
              color=[COLORS.get(x["gateway"]) for x in runs], alpha=0.55)
    ax[2].bar([i + w / 2 for i in xs], [x["p99_ms"] for x in runs], w, label="p99",
              color=[COLORS.get(x["gateway"]) for x in runs])
    ax[2].set_xticks(list(xs), [n.split(" ", 1)[0] for n in names])
    # p50 and p99 may be orders of magnitude apart (a backlog of handshakes).
    ax[2].set_yscale("log")
    ax[2].set_ylabel("ms, TCP connect to CONNACK (log scale)")
    ax[2].set_title("connect latency (light: p50, dark: p99)")
    fig.suptitle(f"fleet compare, {r['date']}, {r['machine']['cpus']} cores "
                 f"({r['machine']['cpu']}), ramp {r['ramp_per_s']:.0f}/s", fontsize=9)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])

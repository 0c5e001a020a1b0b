"""Reconnect storms through (b): one broker restarted, nginx reloaded, every
device dropped at once; time until all are back, failures, accept queue,
and where the devices end up."""

import collections
import os
import re
import signal
import threading
import time

import fleetlib as L

CONN_RE = re.compile(r"^(\d+): New client connected from \S+ as (dev-\d+) ")


def storm(env, limit):
    a, n = env.a, env.n
    name = "storm" + ("-limit" if limit else "")
    d = os.path.join(env.out, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if os.path.isfile(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    print(f"-- {name}: {n} devices", flush=True)
    r = {"gateway": "b", "name": name, "limit": limit, "events": {}}
    brokers = env.start_brokers(d)
    gw = env.start_gateway(d, "b", brokers, limit=limit)
    env.port = gw["port"]
    timeline = []
    stop = threading.Event()
    state = {"shards": []}
    t0 = time.time()

    def sample():
        while not stop.is_set():
            timeline.append((round(time.time() - t0, 2), env.live(state["shards"]),
                             L.accept_queue(env.port)))
            time.sleep(0.25)

    th = threading.Thread(target=sample, daemon=True)
    try:
        ramp_secs = n / a.ramp
        connect_secs = 2 * ramp_secs + 180
        # Dropped devices come back at the limit's rate, or at about the full
        # handshakes 2 cores make; they get 60 s more than three times what
        # that takes.
        rate = L.LIMIT_RATE if limit else L.HANDSHAKES_PER_S

        def recovery_secs(devices):
            return 60 + int(3 * devices // rate)
        # A stopped broker drops its share of the devices.
        broker_settle = max(180, recovery_secs(n / len(brokers)))
        # The first devices stay until the drop-all kills them.
        first_hold = int(connect_secs + broker_settle + 300)
        state["shards"] = env.start_devices(d, first_hold, a.ramp, tag="-1", reconnect=True)
        th.start()
        if not L.wait_until(lambda: env.live(state["shards"]) >= n, connect_secs, 0.5):
            raise RuntimeError(f"only {env.live(state['shards'])} of {n} connected")
        time.sleep(5)

        def event(label, action, settle=180, dip=True):
            te = time.time() - t0
            action()
            if dip:
                # The drop shows in the devices' progress lines, then the recovery.
                L.wait_until(lambda: any(x[1] < n for x in timeline if x[0] >= te), 15, 0.1)
                ok = L.wait_until(lambda: env.live(state["shards"]) >= n, settle, 0.25)
                # From the devices' own counts, polled above: at 100,000
                # connections the sampler's samples (which also ask `ss`
                # for the accept queues) come seconds apart.
                back = time.time() - t0 if ok else None
            else:
                time.sleep(settle)
                ok = env.live(state["shards"]) >= n
                back = None
            time.sleep(0.5)
            after = [x for x in timeline if x[0] >= te]
            e = {"at_s": round(te, 1), "all_back": ok,
                 "secs_until_all_back": round(back - te, 2) if back else None,
                 "min_live": min((x[1] for x in after), default=None),
                 "peak_accept_queue": max((x[2] for x in after), default=0)}
            r["events"][label] = e
            print(f"   {label}: {e}", flush=True)

        # 1. One broker restarted: its devices reconnect and move.
        b0 = brokers[0]

        def kill_broker():
            env.procs.stop(b0["proc"])
        event("broker_down", kill_broker, settle=broker_settle)
        nb = env.start_broker(d, 0, b0["port"], gen=1)
        env.procs.stop(b0["sub"])
        b0.update(proc=nb["proc"], sub=nb["sub"])
        b0["logs"] += nb["logs"]
        b0["subs"] += nb["subs"]
        time.sleep(12)  # past fail_timeout: broker 0 is tried again

        # 2. nginx reload: old workers keep their sessions.
        def reload():
            gw["master"].send_signal(signal.SIGHUP)
        event("nginx_reload", reload, settle=15, dip=False)
        time.sleep(10)

        # 3. Every device dropped at once and back (jittered over 2 s).
        def drop_all():
            for s in state["shards"]:
                env.procs.stop(s["proc"], signal.SIGKILL)
            old = state["shards"]
            state["shards"] = []
            state["old"] = old
            state["shards"] = env.start_devices(d, drop_hold, n * 2.0, tag="-2", reconnect=True)
        # The devices keep trying that long, and are stopped once all are back.
        drop_hold = recovery_secs(n)
        event("drop_all", drop_all, settle=max(300, drop_hold))
        for s in state["shards"]:
            if s["proc"].poll() is None:
                s["proc"].send_signal(signal.SIGTERM)
        for s in state["shards"]:
            s["proc"].wait(60)
        r["loadgen_after_drop"] = env.collect(state["shards"])
    finally:
        stop.set()
        for s in state["shards"] + state.get("old", []):
            if s["proc"].poll() is None:
                env.procs.stop(s["proc"], signal.SIGKILL)
        env.stop_gateway(gw)
        env.stop_brokers(brokers)
    r["timeline"] = timeline
    # Where devices went: each device's sessions in the order they ended.
    sessions = collections.defaultdict(list)
    statuses = collections.Counter()
    with open(os.path.join(d, "access.log")) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 4 and p[0].startswith("dev-"):
                statuses[p[1]] += 1
                if p[1] == "200":
                    sessions[p[0]].append(p[3].split(",")[-1].strip())
    home = {dev: s[0] for dev, s in sessions.items() if s}
    on_b0 = [dev for dev, h in home.items() if h == b0["addr"]]
    moved = sum(1 for dev in on_b0 if len(sessions[dev]) > 1 and sessions[dev][1] != b0["addr"])
    back_home = sum(1 for dev, s in sessions.items() if s[-1] == home[dev])
    r["access_log_statuses"] = dict(statuses)
    r["devices_seen"] = len(sessions)
    r["devices_homed_on_restarted_broker"] = len(on_b0)
    r["of_those_moved_while_it_was_down"] = moved
    r["devices_back_on_home_broker_at_end"] = back_home
    # Each broker's CONNECTs per second (peak) in the drop-all storm.
    peaks = {}
    t_drop = r["events"].get("drop_all", {}).get("at_s", 0) + t0
    for b in brokers:
        per_sec = collections.Counter()
        for log in b["logs"]:
            with open(log, errors="replace") as f:
                for line in f:
                    m = CONN_RE.match(line)
                    if m and int(m.group(1)) >= int(t_drop):
                        per_sec[int(m.group(1))] += 1
        peaks[b["addr"]] = {"peak_connects_per_s": max(per_sec.values(), default=0),
                            "seconds_with_connects": len(per_sec)}
    r["brokers_in_drop_all"] = peaks
    ev = r["events"]
    r["checks"] = {
        "all back after the broker restart": ev.get("broker_down", {}).get("all_back", False),
        "no session lost on reload": ev.get("nginx_reload", {}).get("min_live", 0) >= n,
        "all back after drop-all": ev.get("drop_all", {}).get("all_back", False),
        "restarted broker's devices moved": moved == len(on_b0) and len(on_b0) > 0,
        "every device back on its home broker": back_home == n,
    }
    return r

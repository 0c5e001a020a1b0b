"""Starting and stopping the processes of a run, by PID only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

STARTED: list[subprocess.Popen] = []


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (read from /proc, no probe connection)."""
    want = f"0100007F:{port:04X}"
    for table in ("/proc/net/tcp",):
        with open(table) as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    return False


def start(cmd: list[str], log: Path, cpu: int | None = None, ports: tuple = (), timeout: float = 60.0,
          env: dict | None = None) -> subprocess.Popen:
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = open(log, "wb")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
    STARTED.append(p)
    deadline = time.time() + timeout
    while not all(listening(port) for port in ports):
        if p.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {p.returncode}; see {log}:\n{tail(log)}")
        if time.time() > deadline:
            stop(p)
            raise RuntimeError(f"{' '.join(cmd)} did not listen on {ports} in {timeout}s; see {log}")
        time.sleep(0.05)
    return p


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 20.0) -> int | None:
    """Stops one process we started, by its PID (taskset execs, so the PID is the program's)."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)
    if p in STARTED:
        STARTED.remove(p)
    return p.returncode


def stop_all() -> None:
    for p in list(reversed(STARTED)):
        stop(p, grace=5.0)


def cpu_times(pid: int) -> tuple[int, int]:
    """(ns on CPU from schedstat, utime+stime clock ticks from stat) of a process."""
    with open(f"/proc/{pid}/schedstat") as f:
        ns = int(f.read().split()[0])
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    return ns, ticks


def busy_jiffies() -> int:
    """Non-idle jiffies of all CPUs (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def ticks_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += cpu_times(pid)[1]
        except OSError:
            pass
    return total

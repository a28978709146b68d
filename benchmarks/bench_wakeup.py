"""What one sleep and wake-up costs on this machine: the CPU a process pays each time it blocks on a read and is
woken by a process on another CPU.

Why: a load tester against a server slower than itself sleeps between responses, and each wake-up's kernel
work (and the caches it finds cold) is charged to the client's CPU. ``bench_request_cpu.py``'s figures against
the simulator include that cost; this measures it alone, so the two can be told apart. Two processes pinned to
different CPUs (the first two allowed) pass one byte back and forth over pipes; the measuring process reports its
own CPU (user + sys) and the wall time per round trip. Each round trip is one sleep and one wake-up per side,
plus one write and one read. A same-CPU run and a run of the two syscalls without sleeping give the parts.

Run: ``python benchmarks/bench_wakeup.py [--trips 20000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def ping_pong(trips: int, mine: int, theirs: int) -> dict[str, float]:
    """Round trips over two pipes between this process (on CPU ``mine``) and a child (on CPU ``theirs``)."""
    to_child_r, to_child_w = os.pipe()
    to_me_r, to_me_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echoing side
        try:
            os.sched_setaffinity(0, {theirs})
            for _ in range(trips):
                os.read(to_child_r, 1)
                os.write(to_me_w, b"x")
        finally:
            os._exit(0)
    try:
        os.sched_setaffinity(0, {mine})
        time.sleep(0.05)  # let the child settle on its CPU
        cpu0, wall0 = _cpu(), time.perf_counter()
        for _ in range(trips):
            os.write(to_child_w, b"x")
            os.read(to_me_r, 1)
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    finally:
        os.waitpid(pid, 0)  # the child exits after its last echo
        for fd in (to_child_r, to_child_w, to_me_r, to_me_w):
            os.close(fd)
    return {"cpu_us": round(cpu / trips * 1e6, 2), "wall_us": round(wall / trips * 1e6, 2)}


def no_sleep(trips: int, cpu: int) -> dict[str, float]:
    """One write and one read per trip on a pipe that always has a byte waiting: the syscalls without a sleep."""
    os.sched_setaffinity(0, {cpu})
    r, w = os.pipe()
    try:
        cpu0 = _cpu()
        for _ in range(trips):
            os.write(w, b"x")
            os.read(r, 1)
        return {"cpu_us": round((_cpu() - cpu0) / trips * 1e6, 2)}
    finally:
        os.close(r)
        os.close(w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trips", type=int, default=20000)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    allowed = sorted(os.sched_getaffinity(0))
    me = allowed[-1]
    out: dict[str, Any] = {"bench": "wakeup", "trips": a.trips, "no_sleep": no_sleep(a.trips, me)}
    out["same_cpu"] = ping_pong(a.trips, me, me)
    if len(allowed) >= 2:
        out["across_cpus"] = ping_pong(a.trips, me, allowed[0])
    os.sched_setaffinity(0, set(allowed))
    print(f"write + read, no sleep:         {out['no_sleep']['cpu_us']:>7} µs CPU per trip")
    for key, label in (("same_cpu", "same CPU"), ("across_cpus", "across CPUs")):
        if key in out:
            r = out[key]
            print(
                f"sleep + wake-up, {label + ':':<13} {r['cpu_us']:>7} µs CPU, {r['wall_us']:>7} µs wall per round trip"
            )
    print(json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

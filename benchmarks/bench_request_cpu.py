"""Client CPU per request for short (8-token) streamed requests, per transport: where per-request work shows.

Levels (each against the servers of ``--server``: the server pinned to CPU 0, the client to CPU 1 when there
are two CPUs):

* ``engine``: ``Client.send`` in a closed loop in this process; CPU (user+sys, ``getrusage``) / requests.
* ``perf``: the whole ``evalscope perf`` (dataset, scheduler, record building, aggregation, the batched record
  writer, the report) as a subprocess. Marginal CPU per request: two runs, ``--requests`` and a tenth of it,
  and (CPU_big - CPU_small) / (N_big - N_small), which removes interpreter start and imports (the report's
  pass over the records grows with them, so it stays in; ``in run`` below leaves it out).

``--profile`` runs the engine level under cProfile with a CPU-time clock (a wall clock would charge the time
this process was preempted by the server it just woke to whatever function was running) and prints the top
functions. Run: ``python benchmarks/bench_request_cpu.py [--quick] [--levels engine,perf] [--rounds 3] [--profile]``;
``--rounds`` measures each level that many times and reports the minimum (every round is in the JSON);
``--baseline-src <worktree>/src`` measures another tree's perf level too, alternating with ours; ``--levels floor``
measures the floor reader of ``benchmarks/peers`` (raw ``asyncio.Protocol``, no parsing) the same marginal way.

``--server canned`` measures against ``canned_server.py`` instead of the simulator: a server that answers at
memory speed, so the client never waits for it. Against the simulator the client is idle part of the time,
and every idle spell ends with a wake-up whose kernel cost is charged per request: that part measures the
server's speed, not the client's (the floor reader sleeps 3-3.6 times per request there, 0.1-0.9 here). Against
the canned server the figure is the client's own work, the one that bounds the requests per second one core
can drive. The default ``--server sim,canned`` measures both, in that order.

``--server canned+spin`` is the canned server with a busy loop beside it on the server's CPU, at the idle
scheduling class (it takes only time the server leaves): nothing the client talks to changes, only what else
the machine runs. It shows how much of the simulator's figure is the client's own work slowed by another busy
process (on this VM the two vCPUs share the host's caches), rather than work the client does.

The perf level also reports ``perf_in_run``: the marginal of the stage's own CPU seconds (``client.cpu_seconds``
of ``summary.json``, from the stage's start to its drain), which leaves out the report written after the run.
That is the figure that bounds the requests per second a client core sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evalscope.engine import Client, Request, run
from evalscope.sim import SimConfig, SimProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
from canned_server import CannedServer

TRANSPORTS = ("builtin", "aiohttp")
SERVER_NAMES = {"canned": "canned server", "canned+spin": "canned server, busy neighbour"}


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


async def engine_loop(url: str, n: int, parallel: int, tokens: int, transport: str) -> tuple[float, int]:
    async with Client(url, "sim-model", transport=transport, send_request_id=False) as c:
        await c.prewarm(parallel)
        it = iter(range(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in it:
                rec = await c.send(Request(request_id=i, prompt="hello there", max_tokens=tokens))
                ok += rec.ok

        t0 = cpu_self()
        await asyncio.gather(*(worker() for _ in range(parallel)))
        return cpu_self() - t0, ok


def child_cpu(what: str, cmd: list[str], cpus: set[int] | None, env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + sys) of one pinned subprocess, which must succeed (``what`` names it if not)."""
    t0 = cpu_children()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        env=env,
    )
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}): {err[-2000:]}")
    return cpu_children() - t0


def perf_run(
    url: str,
    n: int,
    parallel: int,
    tokens: int,
    transport: str,
    cpus: set[int] | None,
    src: str | None = None,
    in_run: list[float] | None = None,
) -> float:
    """CPU seconds of one ``evalscope perf`` subprocess (``src``: run that tree's package instead of ours);
    ``in_run`` gets the stages' own CPU seconds as the run reported them (``client.cpu_seconds``)."""
    env = dict(os.environ, PYTHONPATH=src) if src else None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            *("-m", "evalscope", "perf", "--no-live", "--url", url),
            *("--parallel", str(parallel), "--number", str(n), "--max-tokens", str(tokens)),
            *("--transport", transport, "--outputs-dir", tmp),
        ]
        cpu = child_cpu("evalscope perf", cmd, cpus, env)
        if in_run is not None:
            (summary,) = Path(tmp).glob("*/summary.json")
            stages = json.loads(summary.read_text())["stages"]
            in_run.append(sum(float(st["client"]["cpu_seconds"]) for st in stages))
        return cpu


class Spinner:
    """A busy loop pinned to ``cpus`` at the idle scheduling class (it runs only when nothing else wants that
    CPU), stopped by its PID on exit: another busy process on the machine, which the client never talks to."""

    def __init__(self, cpus: set[int] | None) -> None:
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None

    def _setup(self) -> None:
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    def __enter__(self) -> Spinner:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], preexec_fn=self._setup, start_new_session=True
        )
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def floor_run(url: str, n: int, parallel: int, tokens: int, cpus: set[int] | None) -> float:
    """CPU seconds of one run of the floor reader (``peers/protocol_reader.py``: raw ``asyncio.Protocol``, no
    HTTP or JSON parsing) for ``n`` requests, as a subprocess pinned like ``evalscope perf``."""
    reader = Path(__file__).resolve().parent / "peers" / "protocol_reader.py"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            str(reader),
            *("--url", url.split("/v1")[0], "--parallel", str(parallel), "--number", str(n)),
            *("--max-tokens", str(tokens), "--out", str(Path(tmp) / "floor.json")),
        ]
        return child_cpu("floor reader", cmd, cpus)


def profile_engine(url: str, n: int, parallel: int, tokens: int, transport: str, top: int) -> None:
    import cProfile
    import pstats

    prof = cProfile.Profile(time.process_time)
    prof.enable()
    run(engine_loop(url, n, parallel, tokens, transport))
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)


def marginal(run_n: Callable[[int], float], n: int, fixed: dict[str, float] | None = None) -> float:
    """µs of CPU per request between a run of ``n`` requests and one a tenth its size (start-up cancels);
    ``fixed["s"]`` gets the CPU seconds left at zero requests (start-up, imports, report)."""
    small = max(100, n // 10)
    c_small = run_n(small)
    per = (run_n(n) - c_small) / (n - small)
    if fixed is not None:
        fixed["s"] = round(c_small - per * small, 2)
    return round(per * 1e6, 1)


def measure(
    a: argparse.Namespace, url: str, n: int, transport: str, cli_cpus: set[int] | None
) -> dict[str, Any]:
    """Every level of ``a.levels`` for one transport against ``url``, ``a.rounds`` times (minimum and all)."""

    def engine() -> float:
        cpu, ok = run(engine_loop(url, n, a.parallel, a.tokens, transport))
        if ok != n:
            raise SystemExit(f"{transport}: only {ok} of {n} requests succeeded")
        return round(cpu / n * 1e6, 1)

    fixed: dict[str, float] = {}
    levels: dict[str, Callable[[], float]] = {}
    rounds: dict[str, list[float]] = {}
    if "engine" in a.levels:
        levels["engine"] = engine
    if "perf" in a.levels:

        def perf_level(name: str, src: str | None) -> Callable[[], float]:
            """The perf level of one tree; its in-run figure goes to ``rounds[name + "_in_run"]``."""

            def once() -> float:
                in_run: list[float] = []  # the stage CPU of each run, in the order marginal() makes them
                total = marginal(
                    lambda k: perf_run(url, k, a.parallel, a.tokens, transport, cli_cpus, src, in_run),
                    n,
                    fixed if src is None else None,
                )
                small, big = in_run  # the same two sizes as marginal()'s
                per = (big - small) / (n - max(100, n // 10))
                rounds.setdefault(f"{name}_in_run", []).append(round(per * 1e6, 1))
                return total

            return once

        levels["perf"] = perf_level("perf", None)
        if a.baseline_src:  # alternating with ours, round by round
            levels["baseline_perf"] = perf_level("baseline_perf", a.baseline_src)
    if "floor" in a.levels:
        levels["floor"] = lambda: marginal(lambda k: floor_run(url, k, a.parallel, a.tokens, cli_cpus), n)
    for name in levels:
        rounds[name] = []
    for _ in range(max(1, a.rounds)):  # this VM's run-to-run spread is ~10 %: the minimum is steadier
        for name, measure_once in levels.items():
            rounds[name].append(measure_once())
    row: dict[str, Any] = {"perf_fixed_cpu_s": fixed["s"]} if fixed else {}
    for name, got in rounds.items():
        row[f"{name}_us_per_request"] = min(got)
        row[f"{name}_rounds"] = got
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--parallel", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument(
        "--levels",
        default="engine,perf",
        help="comma list of engine, perf, floor (the floor reader of benchmarks/peers, marginal like perf)",
    )
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--quick", action="store_true", help="2,000 requests")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure each level this many times; report the minimum (and all)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the engine level (builtin) and exit")
    ap.add_argument(
        "--server",
        default="sim,canned",
        help="comma list of sim (the simulator), canned (canned_server.py: the client never waits) and "
        "canned+spin (the canned server with a busy loop beside it on its CPU)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument(
        "--baseline-src",
        help="a src/ folder of another tree (a git worktree): its perf level is measured too, alternating with "
        "ours round by round, so both see the same machine",
    )
    a = ap.parse_args()
    n = 2000 if a.quick else a.requests
    allowed = sorted(os.sched_getaffinity(0))
    pinned = len(allowed) >= 2
    sim_cpus, cli_cpus = ({allowed[0]}, {allowed[1]}) if pinned else (None, None)
    cfg = SimConfig(ttft_ms=0, itl_ms=0, output_tokens=a.tokens, truth=False)
    rows: dict[str, dict[str, Any]] = {}
    if cli_cpus:
        os.sched_setaffinity(0, cli_cpus)
    for server in a.server.split(","):
        if server not in ("sim", "canned", "canned+spin"):
            raise SystemExit(f"--server {server!r}: use a comma list of sim, canned and canned+spin")
        srv = SimProcess(cfg, cpus=sim_cpus) if server == "sim" else CannedServer(a.tokens, sim_cpus)
        with srv, Spinner(sim_cpus) if server == "canned+spin" else contextlib.nullcontext():
            url = srv.url
            if a.profile:
                profile_engine(url, n, a.parallel, a.tokens, "builtin", 30)
                return
            for transport in a.transports.split(","):
                key = transport if server == "sim" else f"{transport} ({SERVER_NAMES[server]})"
                rows[key] = measure(a, url, n, transport, cli_cpus)
    print(
        f"{'transport':<40}{'engine µs/req':>14}{'perf µs/req':>13}{'in run':>8}{'floor µs/req':>14}"
        f"   ({n} requests x {a.tokens} tokens, {a.parallel} parallel)"
    )
    for t, r in rows.items():
        print(
            f"{t:<40}{r.get('engine_us_per_request', '-'):>14}{r.get('perf_us_per_request', '-'):>13}"
            f"{r.get('perf_in_run_us_per_request', '-'):>8}{r.get('floor_us_per_request', '-'):>14}"
        )
    out = {
        "bench": "request_cpu",
        "pinned": pinned,
        "requests": n,
        "tokens": a.tokens,
        "parallel": a.parallel,
        **rows,
    }
    print(json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

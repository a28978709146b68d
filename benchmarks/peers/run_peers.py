"""Peer benchmark: evalscope perf against the load testers users would otherwise pick, on the same simulator.

For every (tool, workload) pair the script starts a fresh simulator (``evalscope.sim``) pinned to one CPU, runs
the tool pinned to another CPU against it, and measures:

* client CPU per streamed event: user+sys CPU of the tool's whole process tree (``RUSAGE_CHILDREN`` around the
  run; leftovers are reaped as a child subreaper) divided by the token chunks the simulator sent;
* requests/s, from the simulator's truth (completed requests / (last end - first arrival));
* each tool's *reported* TTFT, inter-token latency and E2E (mean, median, p99 where reported) minus the same
  statistic over the simulator's truth records (send times, CLOCK_MONOTONIC).

Each peer lives in its own virtual environment under ``--cache-dir`` (created and pip-installed from PyPI on
first use, reused afterwards). The original EvalScope is also called ``evalscope`` on PyPI: it is only ever
installed into its own venv, never into the environment running this script.

    nox -s bench_peers                                  # everything, full request counts
    nox -s bench_peers -- --quick                       # scaled-down request counts
    python benchmarks/peers/run_peers.py --tools evalscope,uvloop-reader --workloads a --quick

Not part of CI: it installs tools from PyPI and takes several minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "sim-model"
PROMPT_TOKENS = 100  # synthetic prompt length (simulator words) every tool is asked for

# ----------------------------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    ttft_ms: float
    itl_ms: float
    tokens: int
    parallel: int
    number: int


def workloads(quick: bool, scale: float, rounds: int) -> dict[str, Workload]:
    """(a) zero latency, 256 tokens, 64 parallel, 2,000 requests; (b) 200 ms TTFT, 20 ms/token, 100 tokens."""
    n_a = 2000
    if quick:
        n_a, rounds = 500, 2
    n_a = max(64, int(n_a * scale))
    out = {"a": Workload("a", 0.0, 0.0, 256, 64, n_a)}
    for p in (16, 128, 512):
        out[f"b{p}"] = Workload(f"b{p}", 200.0, 20.0, 100, p, max(p, int(p * rounds * scale)))
    return out


# ----------------------------------------------------------------------------------------------- results


@dataclass
class RunResult:
    tool: str
    workload: str
    status: str = "ok"  # ok | install-failed | failed | timeout | skipped
    reason: str = ""
    cmd: list[str] = field(default_factory=list)
    wall_s: float | None = None
    cpu_s: float | None = None
    events: int | None = None
    cpu_us_per_event: float | None = None
    startup_cpu_s: float | None = None
    cpu_us_per_event_net: float | None = None  # startup CPU (tiny run) subtracted
    rps_truth: float | None = None
    rps_reported: float | None = None
    requests_truth: int | None = None
    requests_reported: int | None = None
    reported: dict[str, dict[str, float | None]] = field(default_factory=dict)
    truth: dict[str, dict[str, float | None]] = field(default_factory=dict)
    error: dict[str, dict[str, float | None]] = field(default_factory=dict)
    sim_lag_p99_us: float | None = None
    loadavg_before: float | None = None  # 1-minute load average: other work on the machine skews CPU figures
    loadavg_after: float | None = None
    trustworthy: Any = None  # our evalscope's own verdict on the run, when it gives one
    runs: list[dict[str, Any]] = field(default_factory=list)  # every repeat, when --repeat > 1


# ----------------------------------------------------------------------------------------------- venvs


def _tail(path: Path, n: int = 6) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    err = [ln for ln in lines if "error" in ln.lower()]
    return " | ".join((err or lines)[-n:])[-600:]


def ensure_venv(
    cache: Path, name: str, packages: list[str], python: str, log: Path
) -> tuple[Path | None, str]:
    """Create ``cache/name`` and pip-install ``packages`` once; return (bin dir, failure reason)."""
    venv = cache / name
    marker = venv / ".peer-installed"
    bindir = venv / "bin"
    if marker.exists():
        return bindir, ""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as lf:
        if not (bindir / "python").exists():
            r = subprocess.run([python, "-m", "venv", str(venv)], stdout=lf, stderr=lf)
            if r.returncode:
                return None, f"venv creation failed: {_tail(log)}"
        r = subprocess.run(
            [str(bindir / "python"), "-m", "pip", "install", "--disable-pip-version-check", *packages],
            stdout=lf,
            stderr=lf,
        )
    if r.returncode:
        return None, f"pip install {' '.join(packages)} failed: {_tail(log)}"
    marker.write_text(" ".join(packages) + "\n")
    return bindir, ""


# ----------------------------------------------------------------------------------------------- truth


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


def _stat(xs: list[float]) -> dict[str, float | None]:
    return {
        "mean": statistics.fmean(xs) if xs else None,
        "p50": statistics.median(xs) if xs else None,
        "p99": _pct(xs, 0.99),
    }


def truth_metrics(
    records: list[dict[str, Any]], tokens: int | None = None
) -> tuple[dict[str, dict[str, float | None]], int, float | None]:
    """TTFT = first chunk send - arrival; ITL = per-request mean gap between chunk sends; E2E = end - arrival.

    Only completed streaming requests of the workload's length count (``tokens``): a tool's connection check
    or warm-up probe asks for a few tokens and is left out, as the tools leave it out of their reports.
    """
    ok = [
        r
        for r in records
        if r.get("stream")
        and r.get("outcome") == "ok"
        and r.get("first_token_ns")
        and (tokens is None or r.get("completion_tokens") == tokens)
    ]
    ttft = [(r["first_token_ns"] - r["arrival_ns"]) / 1e6 for r in ok]
    e2e = [(r["end_ns"] - r["arrival_ns"]) / 1e6 for r in ok if r.get("end_ns")]
    itl = []
    for r in ok:
        c = r.get("chunk_ns") or []
        if len(c) > 1:
            itl.append((c[-1] - c[0]) / 1e6 / (len(c) - 1))
    rps = None
    if ok:
        span = max(r["end_ns"] for r in ok) - min(r["arrival_ns"] for r in ok)
        rps = len(ok) / (span / 1e9) if span > 0 else None
    return {"ttft": _stat(ttft), "itl": _stat(itl), "e2e": _stat(e2e)}, len(ok), rps


# ----------------------------------------------------------------------------------------------- tools


def _num(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


class Tool:
    """One load tester: how to install it, run it on a workload, and read its report."""

    name = ""
    packages: list[str] = []  # empty: runs in this environment
    hf_offline = True  # force Hugging Face libraries offline (a local tokenizer path needs no hub)
    note = ""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.bindir: Path | None = None

    def install(self) -> str:
        """Return '' when ready, else the reason it cannot run."""
        if not self.packages:
            return ""
        self.bindir, why = ensure_venv(
            self.ctx.cache,
            self.name,
            self.packages,
            self.ctx.venv_python,
            self.ctx.cache / "logs" / f"{self.name}.log",
        )
        return why

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # no tool may reach a model hub (there is no network but the package index anyway)
        if self.hf_offline:
            env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        env.update(
            {
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for k in ("VIRTUAL_ENV", "PYTHONPATH"):
            env.pop(k, None)
        if self.bindir is not None:
            env["PATH"] = f"{self.bindir}:{env.get('PATH', '')}"
        return env

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        raise NotImplementedError

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        """{'ttft': {mean,p50,p99}, 'itl': {...}, 'e2e': {...}, 'rps': float, 'requests': int} in ms."""
        raise NotImplementedError


class OurEvalscope(Tool):
    name = "evalscope"

    def install(self) -> str:
        """Byte-compile the package, as ``pip install`` does for the peers in their venvs: an editable install
        under ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module from source on every run."""
        import compileall

        import evalscope

        src = self.ctx.evalscope_src
        compileall.compile_dir(
            str(Path(src) / "evalscope" if src else Path(evalscope.__file__).parent), quiet=1
        )
        return ""

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.ctx.evalscope_src:  # another tree of ours (--evalscope-src), for an A/B in one run
            env["PYTHONPATH"] = self.ctx.evalscope_src
        return env

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "evalscope",
            "perf",
            "--url",
            url,
            "--model",
            MODEL,
            "--parallel",
            str(wl.parallel),
            "--number",
            str(wl.number),
            "--max-tokens",
            str(wl.tokens),
            "--min-tokens",
            str(wl.tokens),
            "--dataset",
            "random",
            "--min-prompt-length",
            str(PROMPT_TOKENS),
            "--max-prompt-length",
            str(PROMPT_TOKENS),
            "--outputs-dir",
            str(out),
            *self.ctx.evalscope_args,
        ]

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        summaries = sorted(out.rglob("summary.json"), key=lambda p: p.stat().st_mtime)
        if not summaries:
            raise RuntimeError(f"no summary.json under {out}")
        data = json.loads(summaries[-1].read_text())
        stages = data.get("stages") if isinstance(data, dict) else None
        stage: dict[str, Any] = data
        if isinstance(stages, list) and stages:
            stage = stages[-1]
        elif isinstance(stages, dict) and stages:
            stage = list(stages.values())[-1]

        def pick(*keys: str) -> dict[str, float | None]:
            for k in keys:
                obj = _find_key(stage, k) or _find_key(data, k)
                if isinstance(obj, dict):
                    return {
                        "mean": _num(obj.get("mean")),
                        "p50": _num(obj.get("p50", obj.get("median"))),
                        "p99": _num(obj.get("p99")),
                    }
            return {}

        res: dict[str, Any] = {
            "ttft": pick("ttft"),
            "itl": pick("itl", "inter_token_latency"),
            "e2e": pick("e2e_latency", "e2e", "latency"),
        }
        for k in ("requests_per_s", "rps", "request_throughput", "requests_per_second"):
            v = _find_key(stage, k)
            if isinstance(v, int | float):
                res["rps"] = float(v)
                break
        for k in ("succeeded", "completed", "requests_ok", "success"):
            v = _find_key(stage, k)
            if isinstance(v, int):
                res["requests"] = v
                break
        res["summary_path"] = str(summaries[-1])
        client = _find_key(stage, "client")
        if isinstance(client, dict):
            res["trustworthy"] = {"ok": client.get("trustworthy"), "reason": client.get("reason")}
        return res


def _find_key(obj: Any, key: str, depth: int = 0) -> Any:
    """First value under ``key`` in a nested dict/list (breadth first, bounded depth)."""
    if depth > 5:
        return None
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            if isinstance(v, dict | list):
                r = _find_key(v, key, depth + 1)
                if r is not None:
                    return r
    elif isinstance(obj, list):
        for v in obj:
            r = _find_key(v, key, depth + 1)
            if r is not None:
                return r
    return None


class UvloopReader(Tool):
    name = "uvloop-reader"
    note = "minimal uvloop+aiohttp reader (benchmarks/peers/uvloop_reader.py), a floor for Python clients"

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        return [
            sys.executable,
            str(HERE / "uvloop_reader.py"),
            "--url",
            url,
            "--model",
            MODEL,
            "--parallel",
            str(wl.parallel),
            "--number",
            str(wl.number),
            "--max-tokens",
            str(wl.tokens),
            "--prompt-words",
            str(PROMPT_TOKENS),
            "--out",
            str(out / "result.json"),
        ]

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        d = json.loads((out / "result.json").read_text())
        return {
            "ttft": {**d["ttft"], "p99": None},
            "itl": {**d["itl"], "p99": None},
            "e2e": {**d["e2e_latency"], "p99": None},
            "rps": d["rps"],
            "requests": d["requests"],
        }


class ProtocolReader(UvloopReader):
    name = "protocol-reader"
    note = "raw asyncio.Protocol reader (benchmarks/peers/protocol_reader.py), the floor below aiohttp"

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        return [
            sys.executable,
            str(HERE / "protocol_reader.py"),
            "--url",
            url,
            "--model",
            MODEL,
            "--parallel",
            str(wl.parallel),
            "--number",
            str(wl.number),
            "--max-tokens",
            str(wl.tokens),
            "--prompt-words",
            str(PROMPT_TOKENS),
            "--out",
            str(out / "result.json"),
        ]


class OrigEvalscope(Tool):
    name = "evalscope-orig"
    packages = ["evalscope[perf]"]
    note = "original EvalScope perf from PyPI, own venv"

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        assert self.bindir is not None
        return [
            str(self.bindir / "evalscope"),
            "perf",
            "--url",
            f"{url}/v1/chat/completions",
            "--api",
            "openai",
            "--model",
            MODEL,
            "--parallel",
            str(wl.parallel),
            "--number",
            str(wl.number),
            "--max-tokens",
            str(wl.tokens),
            "--min-tokens",
            str(wl.tokens),
            "--dataset",
            "random",
            "--tokenizer-path",
            str(self.ctx.tokenizer),
            "--min-prompt-length",
            str(PROMPT_TOKENS),
            "--max-prompt-length",
            str(PROMPT_TOKENS),
            "--prefix-length",
            "0",
            "--stream",
            "--extra-args",
            json.dumps({"ignore_eos": True}),
            "--outputs-dir",
            str(out),
            "--no-timestamp",
        ]

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        summ = sorted(out.rglob("benchmark_summary.json"), key=lambda p: p.stat().st_mtime)
        if not summ:
            raise RuntimeError(f"no benchmark_summary.json under {out}")
        s = json.loads(summ[-1].read_text())
        pct_path = summ[-1].parent / "benchmark_percentile.json"
        rows: list[dict[str, Any]] = []
        if pct_path.exists():
            raw = json.loads(pct_path.read_text())
            if isinstance(raw, dict):  # column-oriented variant
                keys = list(raw)
                raw = [{k: raw[k][i] for k in keys} for i in range(len(raw[keys[0]]) if keys else 0)]
            rows = list(raw)

        def pct(q: str, *names: str) -> float | None:
            for row in rows:
                if str(row.get("Percentiles", "")).strip("%") == q:
                    return _ms_value(row, *names)
            return None

        def metric(avg_names: tuple[str, ...], pct_names: tuple[str, ...]) -> dict[str, float | None]:
            return {
                "mean": _ms_value(s, *avg_names),
                "p50": pct("50", *pct_names),
                "p99": pct("99", *pct_names),
            }

        return {
            "ttft": metric(("Avg TTFT", "Average time to first token"), ("TTFT",)),
            "itl": metric(("Avg ITL", "Average inter-token latency"), ("ITL",)),
            "e2e": metric(("Avg Latency", "Average latency"), ("Latency",)),
            "rps": _first_prefixed(s, "Req Throughput", "Request throughput"),
            "requests": int(_first_prefixed(s, "Success Requests", "Succeed requests") or 0) or None,
            "summary_path": str(summ[-1]),
        }


def _mul(x: float | None, k: float) -> float | None:
    return None if x is None else x * k


def _first_prefixed(d: dict[str, Any], *prefixes: str) -> float | None:
    for k, v in d.items():
        if any(k.startswith(p) for p in prefixes):
            return _num(v)
    return None


def _ms_value(d: dict[str, Any], *prefixes: str) -> float | None:
    """Value of the first key starting with a prefix, in ms (keys carry their unit: '(s)' or '(ms)')."""
    for k, v in d.items():
        if any(k.startswith(p + " (") for p in prefixes):
            x = _num(v)
            if x is None:
                return None
            return x * 1000.0 if k.endswith("(s)") else x
    return None


class GuideLLM(Tool):
    name = "guidellm"
    packages = ["guidellm"]

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        assert self.bindir is not None
        return [
            str(self.bindir / "guidellm"),
            "run",
            "--backend",
            f"kind=openai_http,target={url},model={MODEL},request_format=/v1/chat/completions",
            "--profile",
            f"kind=concurrent,streams={wl.parallel}",
            "--constraint",
            f"kind=max_requests,count={wl.number}",
            "--data",
            f"kind=synthetic_text,prompt_tokens={PROMPT_TOKENS},output_tokens={wl.tokens}",
            "--tokenizer",
            f"kind=huggingface_auto,model={self.ctx.tokenizer}",
            "--disable-console-interactive",
        ]  # writes benchmarks.json and benchmarks.csv into its working directory (the run directory)

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        files = sorted(out.rglob("benchmarks.json"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"no JSON report under {out}")
        d = json.loads(files[-1].read_text())
        bench = d["benchmarks"][-1]
        m = bench["metrics"]

        def dist(key: str, scale: float = 1.0) -> dict[str, float | None]:
            obj = m.get(key) or {}
            s = obj.get("successful", obj) if isinstance(obj, dict) else {}
            pcts = s.get("percentiles") or {}
            return {
                "mean": _mul(_num(s.get("mean")), scale),
                "p50": _mul(_num(s.get("median", pcts.get("p50"))), scale),
                "p99": _mul(_num(pcts.get("p99")), scale),
            }

        # guidellm: time_to_first_token_ms, inter_token_latency_ms, request_latency (seconds)
        rps = dist("requests_per_second")["mean"]
        counts = (m.get("request_totals") or bench.get("request_totals") or {}).get("successful")
        return {
            "ttft": dist("time_to_first_token_ms"),
            "itl": dist("inter_token_latency_ms"),
            "e2e": dist("request_latency", 1000.0),
            "rps": rps,
            "requests": counts,
            "summary_path": str(files[-1]),
        }


class AIPerf(Tool):
    name = "aiperf"
    packages = ["aiperf"]
    # aiperf's offline mode looks a tokenizer up in the hub cache only and rejects a local path; online, a
    # local path is loaded directly (no hub request is made for a path)
    hf_offline = False

    def command(self, url: str, wl: Workload, out: Path) -> list[str]:
        assert self.bindir is not None
        return [
            str(self.bindir / "aiperf"),
            "profile",
            "--model",
            MODEL,
            "--url",
            url,
            "--endpoint-type",
            "chat",
            "--streaming",
            "--concurrency",
            str(wl.parallel),
            "--request-count",
            str(wl.number),
            "--synthetic-input-tokens-mean",
            str(PROMPT_TOKENS),
            "--synthetic-input-tokens-stddev",
            "0",
            "--output-tokens-mean",
            str(wl.tokens),
            "--output-tokens-stddev",
            "0",
            "--extra-inputs",
            "ignore_eos:true",
            "--extra-inputs",
            f"min_tokens:{wl.tokens}",
            "--tokenizer",
            str(self.ctx.tokenizer),
            "--artifact-dir",
            str(out),
            "--prompt-corpus",
            "random",
            "--ui-type",
            "none",
            "--no-server-metrics",
            "--no-gpu-telemetry",
            "--no-auto-plot",
        ]

    def parse(self, out: Path, wl: Workload) -> dict[str, Any]:
        files = sorted(out.rglob("profile_export_aiperf.json"), key=lambda p: p.stat().st_mtime)
        if not files:
            raise RuntimeError(f"no profile_export_aiperf.json under {out}")
        d = json.loads(files[-1].read_text())
        recs = d.get("records", d)

        def dist(key: str) -> dict[str, float | None]:
            obj = recs.get(key) or {}
            scale = 1.0
            unit = str(obj.get("unit", "ms"))
            if unit == "s":
                scale = 1000.0
            elif unit == "ns":
                scale = 1e-6
            elif unit == "us":
                scale = 1e-3
            return {
                "mean": _mul(_num(obj.get("avg")), scale),
                "p50": _mul(_num(obj.get("p50")), scale),
                "p99": _mul(_num(obj.get("p99")), scale),
            }

        rps_obj = recs.get("request_throughput") or {}
        cnt = recs.get("request_count") or {}
        return {
            "ttft": dist("time_to_first_token"),
            "itl": dist("inter_token_latency"),
            "e2e": dist("request_latency"),
            "rps": _num(rps_obj.get("avg")),
            "requests": int(_num(cnt.get("avg")) or 0) or None,
            "summary_path": str(files[-1]),
        }


class VllmBench(Tool):
    name = "vllm-bench-serve"
    note = "vLLM's serving benchmark"

    def install(self) -> str:
        return (
            "not run: vLLM's serving benchmark exists only inside the `vllm` package (`vllm bench serve`, which "
            "imports vllm); no standalone distribution of it is on PyPI, and this benchmark does not install vllm "
            "itself (torch plus CUDA wheels, several GB, for a client that only streams HTTP)"
        )


TOOL_CLASSES: dict[str, type[Tool]] = {
    c.name: c
    for c in (OurEvalscope, UvloopReader, ProtocolReader, OrigEvalscope, GuideLLM, AIPerf, VllmBench)
}

# ----------------------------------------------------------------------------------------------- running


@dataclass
class Ctx:
    cache: Path
    out: Path
    venv_python: str
    tokenizer: Path
    timeout: float
    sim_cpu: int
    client_cpu: int
    evalscope_args: list[str]
    evalscope_src: str | None = None


def _set_subreaper() -> None:
    """Orphaned grandchildren of a tool re-parent to us, so their CPU is still counted when reaped."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _reap_leftovers(keep: set[int]) -> None:
    """Stop and reap processes the tool left behind (re-parented to us), never the simulator."""
    try:
        import psutil
    except ImportError:
        return
    me = psutil.Process()
    left = [p for p in me.children(recursive=False) if p.pid not in keep]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=5)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


def run_tool_once(tool: Tool, wl: Workload, ctx: Ctx, tag: str) -> tuple[RunResult, list[dict[str, Any]]]:
    """One run: fresh simulator, the tool pinned to the client CPU, CPU and truth collected."""
    from evalscope.sim import SimConfig, SimProcess

    res = RunResult(tool.name, wl.name + tag)
    out = ctx.out / f"{tool.name}__{wl.name}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cfg = SimConfig(
        ttft_ms=wl.ttft_ms,
        itl_ms=wl.itl_ms,
        output_tokens=wl.tokens,
        truth_max=max(100_000, wl.number * 2),
        seed=0,
    )
    truth: list[dict[str, Any]] = []
    with SimProcess(cfg, cpus={ctx.sim_cpu}) as sim:
        cmd = tool.command(sim.url, wl, out)
        res.cmd = cmd
        log = out / "tool.log"
        res.loadavg_before = os.getloadavg()[0]
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        with log.open("wb") as lf:
            proc = subprocess.Popen(
                cmd,
                stdout=lf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=tool.env(),
                cwd=str(out),
                start_new_session=True,
                preexec_fn=lambda: os.sched_setaffinity(0, {ctx.client_cpu}),
            )
            try:
                rc = proc.wait(timeout=ctx.timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # the tool's own process group (its session)
                proc.wait()
                rc = None
        res.wall_s = time.perf_counter() - t0
        res.loadavg_after = os.getloadavg()[0]
        _reap_leftovers({sim.pid})
        res.cpu_s = _children_cpu() - cpu0
        stats = sim.fetch_stats()
        res.events = int(stats.get("chunks") or 0)
        res.sim_lag_p99_us = (stats.get("lag") or {}).get("p99_us")
        truth = sim.fetch_truth()
    if res.events:
        res.cpu_us_per_event = res.cpu_s / res.events * 1e6
    if rc is None:
        res.status, res.reason = "timeout", f"killed after {ctx.timeout:.0f}s; log: {_tail(log, 3)}"
    elif rc != 0:
        res.status, res.reason = "failed", f"exit {rc}: {_tail(log, 4)}"
    return res, truth


def bench_one(
    tool: Tool, wl: Workload, ctx: Ctx, startup: dict[str, tuple[float, int]], tag: str = ""
) -> RunResult:
    try:
        res, truth = run_tool_once(tool, wl, ctx, tag)
    except Exception as exc:  # a broken tool must show up in the table, not end the benchmark
        return RunResult(tool.name, wl.name, status="failed", reason=f"{type(exc).__name__}: {exc}"[:600])
    if res.status != "ok":
        return res
    res.truth, res.requests_truth, res.rps_truth = truth_metrics(truth, wl.tokens)
    try:
        rep = tool.parse(ctx.out / f"{tool.name}__{wl.name}{tag}", wl)
    except Exception as exc:
        res.status = "failed"
        res.reason = f"could not read its report: {type(exc).__name__}: {exc}"[:600]
        traceback.print_exc()
        return res
    res.trustworthy = rep.get("trustworthy")
    res.rps_reported = _num(rep.get("rps"))
    res.requests_reported = rep.get("requests")
    res.reported = {k: rep.get(k) or {} for k in ("ttft", "itl", "e2e")}
    for k in ("ttft", "itl", "e2e"):
        res.error[k] = {
            s: (
                None
                if res.reported[k].get(s) is None or res.truth[k].get(s) is None
                else res.reported[k][s] - res.truth[k][s]
            )  # type: ignore[operator]
            for s in ("mean", "p50", "p99")
        }
    if tool.name in startup and res.cpu_s is not None and res.events:
        s_cpu, s_ev = startup[tool.name]
        res.startup_cpu_s = s_cpu
        if res.events > s_ev:
            res.cpu_us_per_event_net = (res.cpu_s - s_cpu) / (res.events - s_ev) * 1e6
    return res


def _median(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def combine(wname: str, runs: list[RunResult]) -> RunResult:
    """One row from repeats: the median of every figure over the successful runs (all runs kept in JSON)."""
    ok = [r for r in runs if r.status == "ok"]
    if len(runs) == 1:
        return runs[0]
    if not ok:
        out = runs[0]
        out.workload = wname
        out.runs = [r.__dict__.copy() for r in runs]
        return out
    out = RunResult(ok[0].tool, wname, cmd=ok[0].cmd)
    if len(ok) < len(runs):
        out.reason = f"{len(runs) - len(ok)} of {len(runs)} repeats failed: " + "; ".join(
            r.reason for r in runs if r.status != "ok"
        )
    for attr in (
        "wall_s",
        "cpu_s",
        "cpu_us_per_event",
        "startup_cpu_s",
        "cpu_us_per_event_net",
        "rps_truth",
        "rps_reported",
        "sim_lag_p99_us",
        "loadavg_before",
        "loadavg_after",
    ):
        setattr(out, attr, _median([getattr(r, attr) for r in ok]))
    ev = _median([r.events for r in ok])
    out.events = None if ev is None else int(ev)
    out.requests_truth = ok[0].requests_truth
    out.requests_reported = ok[0].requests_reported
    out.trustworthy = [r.trustworthy for r in ok] if any(r.trustworthy for r in ok) else None
    for name in ("reported", "truth", "error"):
        agg: dict[str, dict[str, float | None]] = {}
        for k in ("ttft", "itl", "e2e"):
            agg[k] = {
                s: _median([getattr(r, name).get(k, {}).get(s) for r in ok]) for s in ("mean", "p50", "p99")
            }
        setattr(out, name, agg)
    out.runs = [r.__dict__.copy() for r in runs]
    return out


def measure_startup(tool: Tool, ctx: Ctx) -> tuple[float, int] | None:
    """CPU of a tiny run (4 requests of 4 tokens): start-up cost, subtracted for the 'net' column."""
    wl = Workload("startup", 0.0, 0.0, 4, 2, 4)
    try:
        res, _ = run_tool_once(tool, wl, ctx, "")
    except Exception:
        return None
    if res.status != "ok" or res.cpu_s is None:
        return None
    return res.cpu_s, res.events or 0


# ----------------------------------------------------------------------------------------------- output


def _f(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _pair(d: dict[str, float | None]) -> str:
    return f"{_f(d.get('mean'), 2)}/{_f(d.get('p50'), 2)}"


def _verdict(t: Any) -> str:
    """The tool's own trustworthiness verdict (ours reports one): 'ok', 'NOT' or '-' (none given)."""
    items = t if isinstance(t, list) else [t]
    oks = [i.get("ok") for i in items if isinstance(i, dict) and i.get("ok") is not None]
    if not oks:
        return "-"
    bad = sum(1 for o in oks if not o)
    return "ok" if not bad else ("NOT" if bad == len(oks) else f"NOT {bad}/{len(oks)}")


def _over_floor(r: RunResult, floor: RunResult | None) -> str:
    a = r.error.get("ttft", {}).get("p50")
    b = None if floor is None or floor is r else floor.error.get("ttft", {}).get("p50")
    return "-" if a is None or b is None else f"{a - b:+.2f}"


def table(results: list[RunResult]) -> str:
    head = (
        "tool",
        "workload",
        "CPU µs/event",
        "net µs/event",
        "req/s",
        "TTFT err mean/p50",
        "ITL err mean/p50",
        "E2E err mean/p50",
        "TTFT err p99",
        "TTFT p50 over reader",
        "load",
        "self-check",
    )
    rows = [head]
    notes = []
    # the minimal reader's error on the same workload is the floor a Python client on this machine reaches
    # (request path, simulator queueing, wake-ups); a tool's error above it is its own
    floor = {r.workload: r for r in results if r.tool == UvloopReader.name and r.status == "ok"}
    for r in results:
        if r.status != "ok":
            rows.append((r.tool, r.workload, r.status.upper(), "", "", "", "", "", "", "", "", ""))
            notes.append(f"{r.tool} / {r.workload}: {r.status}: {r.reason}")
            continue
        rows.append(
            (
                r.tool,
                r.workload,
                _f(r.cpu_us_per_event),
                _f(r.cpu_us_per_event_net),
                _f(r.rps_truth),
                _pair(r.error.get("ttft", {})),
                _pair(r.error.get("itl", {})),
                _pair(r.error.get("e2e", {})),
                _f(r.error.get("ttft", {}).get("p99"), 2),
                _over_floor(r, floor.get(r.workload)),
                _f(r.loadavg_before),
                _verdict(r.trustworthy),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    text += (
        "\nerrors: the tool's reported value minus the simulator's truth, in ms ('-': not reported); "
        "net: start-up CPU subtracted; load: 1-min load average before the run; "
        "self-check: the tool's own trustworthiness verdict, where it gives one; "
        "TTFT p50 over reader: the tool's median TTFT error minus the minimal reader's on the same workload"
    )
    if notes:
        text += "\n\nnot run / failed:\n" + "\n".join(f"- {n}" for n in notes)
    return text


# ----------------------------------------------------------------------------------------------- main


def _find_corpora(tool: Tool) -> list[str]:
    """Text corpora shipped inside a peer venv, added to the tokenizer vocabulary (decoded prompts stay words)."""
    if tool.bindir is None:
        return []
    site = tool.bindir.parent / "lib"
    return [str(p) for p in site.rglob("aiperf/**/*.txt") if p.stat().st_size > 10_000][:3]


def main() -> int:
    ap = argparse.ArgumentParser(description="Peer benchmark: client CPU and reported-minus-truth latency.")
    ap.add_argument(
        "--tools", default=",".join(TOOL_CLASSES), help="comma list, from: " + ",".join(TOOL_CLASSES)
    )
    ap.add_argument("--workloads", default="a,b16,b128,b512", help="comma list of a,b16,b128,b512")
    ap.add_argument("--quick", action="store_true", help="scaled-down request counts (a: 500, b: 2 rounds)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    ap.add_argument("--rounds", type=int, default=6, help="workload b: requests = rounds x parallel")
    ap.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "evalscope-peers"))
    ap.add_argument("--out-dir", default=None, help="run directory (default: CACHE/runs/<time>)")
    ap.add_argument("--json", default=None, help="results JSON (default: OUT_DIR/results.json)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run")
    ap.add_argument("--venv-python", default=sys.executable, help="Python used to create peer venvs")
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per tool and workload; the table shows medians"
    )
    ap.add_argument("--no-startup", action="store_true", help="skip the tiny start-up CPU run per tool")
    ap.add_argument("--sim-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument(
        "--evalscope-arg", action="append", default=[], help="extra argument for our evalscope perf"
    )
    ap.add_argument(
        "--evalscope-src",
        help="run our evalscope from this src/ directory (another checkout's, e.g. a git worktree) instead of the "
        "installed one: an A/B of two trees, alternating runs, on the same machine",
    )
    args = ap.parse_args()

    cache = Path(args.cache_dir)
    out = Path(args.out_dir) if args.out_dir else cache / "runs" / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    cpus = os.sched_getaffinity(0)
    if args.sim_cpu not in cpus or args.client_cpu not in cpus or args.sim_cpu == args.client_cpu:
        print(f"warning: CPUs {args.sim_cpu}/{args.client_cpu} not both available (have {sorted(cpus)})")
    _set_subreaper()
    ctx = Ctx(
        cache=cache,
        out=out,
        venv_python=args.venv_python,
        tokenizer=cache / "tokenizer",
        timeout=args.timeout,
        sim_cpu=args.sim_cpu,
        client_cpu=args.client_cpu,
        evalscope_args=args.evalscope_arg,
        evalscope_src=str(Path(args.evalscope_src).resolve()) if args.evalscope_src else None,
    )
    wls = workloads(args.quick, args.scale, args.rounds)
    wanted_wl = [w.strip() for w in args.workloads.split(",") if w.strip()]
    names = [t.strip() for t in args.tools.split(",") if t.strip()]
    tools: list[Tool] = []
    results: list[RunResult] = []
    unusable: dict[str, str] = {}
    for n in names:
        if n not in TOOL_CLASSES:
            ap.error(f"unknown tool {n!r}")
        tools.append(TOOL_CLASSES[n](ctx))

    # installs first (reused when present); a failure is recorded, never dropped
    for t in tools:
        print(f"[peers] preparing {t.name} ...", flush=True)
        why = t.install()
        if why:
            unusable[t.name] = why
            print(f"[peers]   {t.name}: {why}", flush=True)

    # one offline tokenizer, word-level like the simulator, for the tools that need one
    if (
        any(t.packages and t.name not in unusable for t in tools)
        and not (ctx.tokenizer / "tokenizer.json").exists()
    ):
        builder = next((t for t in tools if t.bindir is not None and t.name not in unusable), None)
        if builder is not None:
            # The simulator's reply vocabulary first (from our own package: the builder venv cannot import it),
            # then the tools' own corpora.
            from evalscope.sim.policies import VOCAB

            vocab_file = ctx.tokenizer.parent / "sim-vocab.txt"
            vocab_file.parent.mkdir(parents=True, exist_ok=True)
            vocab_file.write_text("".join(VOCAB), encoding="utf-8")
            corpora = [str(vocab_file), *(c for t in tools for c in _find_corpora(t))]
            subprocess.run(
                [
                    str(builder.bindir / "python"),
                    str(HERE / "make_tokenizer.py"),
                    str(ctx.tokenizer),
                    *corpora,
                ],
                check=True,
                env=builder.env(),
            )

    startup: dict[str, tuple[float, int]] = {}
    if not args.no_startup:
        for t in tools:
            if t.name in unusable:
                continue
            s = measure_startup(t, ctx)
            if s is not None:
                startup[t.name] = s
                print(f"[peers] {t.name}: start-up CPU {s[0]:.2f}s ({s[1]} events)", flush=True)

    for wname in wanted_wl:
        wl = wls[wname]
        for t in tools:
            if t.name in unusable:
                results.append(RunResult(t.name, wname, status="not-run", reason=unusable[t.name]))
                continue
            print(f"[peers] {t.name} on {wname}: {wl}", flush=True)
            reps = [
                bench_one(t, wl, ctx, startup, "" if i == 0 else f"_r{i + 1}") for i in range(args.repeat)
            ]
            r = combine(wname, reps)
            results.append(r)
            print(
                f"[peers]   -> {r.status} cpu={_f(r.cpu_s, 2)}s events={r.events} "
                f"µs/event={_f(r.cpu_us_per_event)} wall={_f(r.wall_s)}s {r.reason[:300]}",
                flush=True,
            )
            # write as we go: a long run that is interrupted still leaves its results
            _write_json(args, out, wls, wanted_wl, results)

    text = table(results)
    print()
    print(text)
    path = _write_json(args, out, wls, wanted_wl, results)
    (out / "table.txt").write_text(text + "\n")
    print(f"\nresults: {path} (table: {out / 'table.txt'})")
    return 0


def _write_json(
    args: argparse.Namespace, out: Path, wls: dict[str, Workload], wanted: list[str], results: list[RunResult]
) -> Path:
    path = Path(args.json) if args.json else out / "results.json"
    doc = {
        "machine": {
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "python": sys.version,
        },
        "sim_cpu": args.sim_cpu,
        "client_cpu": args.client_cpu,
        "workloads": {w: wls[w].__dict__ for w in wanted},
        "results": [r.__dict__ for r in results],
    }
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


if __name__ == "__main__":
    raise SystemExit(main())

"""Terminal rendering: the live view during a run and the final tables (readable in 80 columns).

A leaf: it reads data only (a :class:`LiveStage` snapshot, summary dicts), never the run object, and nothing
reads it back. The live view is refreshed from the
runner's periodic tick (about twice a second), not from a background thread, so rendering never competes with
the event loop at a random moment.

May import: ``perf.progress`` only (never the runner, the coordinator or the pools).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from evalscope.perf.progress import LiveStage, Reporter


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 10000:
        return f"{v / 1000:.1f}s"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def _stat(stage: dict[str, Any], metric: str, key: str) -> float | None:
    m = stage.get(metric)
    return None if not m else m.get(key)


class ConsoleReporter(Reporter):
    """Prints the header, a live progress view (when ``live``) and the final tables to ``console``."""

    def __init__(self, console: Console | None = None, live: bool = True) -> None:
        self.console = console or Console()
        self.live_enabled = live and self.console.is_terminal
        self._live: Live | None = None
        self._stage_t0 = 0.0
        self._n_stages = 0

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def header(self, info: dict[str, Any]) -> None:
        c = self.console
        c.print(Text("evalscope perf", style="bold"))
        sim = info.get("simulator")
        if sim:
            c.print(
                f"[yellow]No --url: started the built-in simulator at {sim['url']} (pid {sim['pid']}); "
                "pass --url to test a real server.[/yellow]"
            )
        c.print(f"target   {info['url']}  model={info['model']}  api={info['api']}")
        stages = info["stages"]
        self._n_stages = len(stages)
        load = ", ".join(f"{p}x{n if n is not None else 'inf'}" for p, n in stages)
        extra = ""
        if info.get("rate") is not None:
            extra += f"  rate={info['rate']:g}/s"
        if info.get("duration") is not None:
            extra += f"  duration={info['duration']:g}s"
        c.print(f"load     parallel x number: {load}{extra}")
        c.print(f"requests dataset={info['dataset']}  tokens counted by {info['tokenizer']}")
        c.print(f"output   {info['run_dir']}")

    def stage_start(self, live: LiveStage) -> None:
        self._stage_t0 = time.monotonic()
        if self.live_enabled:
            self._live = Live(self._render(live), console=self.console, auto_refresh=False, transient=True)
            self._live.start()

    def tick(self, live: LiveStage | None) -> None:
        if self._live is not None:
            self._live.update(self._render(live), refresh=True)

    def stage_end(self, summary: dict[str, Any]) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        r = summary["requests"]
        rate = "" if summary["rate"] is None else f" rate {summary['rate']:g}/s"
        late = r.get("incomplete_at_deadline") or 0
        self.console.print(
            f"stage {summary['stage'] + 1}/{self._n_stages}: parallel {summary['parallel']}{rate}: "
            f"{r['succeeded']} ok, {r['failed']} failed, {r['cancelled']} cancelled "
            + (f"({late} incomplete at the deadline) " if late else "")
            + f"in {summary['duration_s']:.1f} s"
        )

    def message(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(f"[yellow]{text}[/yellow]")
        else:
            self.console.print(f"[yellow]{text}[/yellow]")

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ---- live view ---------------------------------------------------------------------------------------

    def _render(self, st: LiveStage | None) -> Any:
        if st is None:
            return Text("")
        done = st.done
        elapsed = time.monotonic() - self._stage_t0
        total = st.number
        eta = "-"
        if total and done:
            eta = f"{max(0.0, elapsed * (total - done) / done):.0f}s"
        elif st.duration_s is not None:
            eta = f"{max(0.0, st.duration_s - elapsed):.0f}s"
        last = st.last_second
        pct = f"{100 * done / total:.0f}%" if total else ""
        line1 = (
            f"stage {st.index + 1}/{self._n_stages}  {done}/{total if total else '∞'} {pct}  "
            f"elapsed {elapsed:.0f}s  ETA {eta}  in flight {st.in_flight}"
        )
        line2 = (
            f"ok {st.succeeded} failed {st.failed} cancel {st.cancelled} | "
            f"{last[0]} req/s {last[2]} tok/s | p50 ms: "
            f"TTFT {_ms(st.ttft_p50_ms)} "
            f"E2E {_ms(st.e2e_p50_ms)}"
        )
        return Group(Text(line1, style="bold"), Text(line2))

    # ---- final tables ------------------------------------------------------------------------------------

    def final(self, summary: dict[str, Any]) -> None:
        c = self.console
        stages = summary["stages"]
        if not stages:
            c.print("No stage completed.")
            return
        t = Table(title="Throughput", title_justify="left", box=None, pad_edge=False)
        late = any(s["requests"].get("incomplete_at_deadline") for s in stages)
        cols = ("stage", "par", "rate", "ok", "failed", "cancel", "req/s", "out tok/s", "tot tok/s")
        for col in cols[:6] + (("incompl",) if late else ()) + cols[6:]:
            t.add_column(col, justify="right")
        for s in stages:
            r = s["requests"]
            th = s["throughput"]
            t.add_row(
                str(s["stage"] + 1),
                str(s["parallel"]),
                "-" if s["rate"] is None else f"{s['rate']:g}",
                str(r["succeeded"]),
                str(r["failed"]),
                str(r["cancelled"]),
                *((str(r.get("incomplete_at_deadline") or 0),) if late else ()),
                _num(th["requests_per_s"], 2),
                _num(th["output_tokens_per_s"], 1),
                _num(th["total_tokens_per_s"], 1),
            )
        c.print(t)
        if late:
            _print_incomplete(c, stages)
        if len(stages) == 1:
            s = stages[0]
            lt = Table(title="Latency (ms)", title_justify="left", box=None, pad_edge=False)
            for col in ("metric", "mean", "p50", "p90", "p99", "p99.9", "max"):
                lt.add_column(col, justify="right" if col != "metric" else "left")
            for name in (
                "ttft",
                "ttfo",
                "tpot",
                "itl",
                "icl",
                "e2e_latency",
                "queue_time",
                "latency_from_schedule",
            ):
                m = s.get(name)
                if not m:
                    continue
                lt.add_row(
                    name.replace("latency_from_schedule", "from_schedule"),
                    *(_ms(m.get(k)) for k in ("mean", "p50", "p90", "p99", "p999", "max")),
                )
            c.print(lt)
            from evalscope.perf.legend import latency_legend

            legend = latency_legend(s)
            if legend:
                c.print(legend, style="dim")
        else:
            lt = Table(title="Latency (ms) across stages", title_justify="left", box=None, pad_edge=False)
            for col in (
                "stage",
                "TTFT p50",
                "TTFT p99",
                "TPOT p50",
                "ITL p50",
                "E2E p50",
                "E2E p99",
                "queue p99",
            ):
                lt.add_column(col, justify="right")
            for s in stages:
                lt.add_row(
                    str(s["stage"] + 1),
                    _ms(_stat(s, "ttft", "p50")),
                    _ms(_stat(s, "ttft", "p99")),
                    _ms(_stat(s, "tpot", "p50")),
                    _ms(_stat(s, "itl", "p50")),
                    _ms(_stat(s, "e2e_latency", "p50")),
                    _ms(_stat(s, "e2e_latency", "p99")),
                    _ms(_stat(s, "queue_time", "p99")),
                )
            c.print(lt)
        _server_table(c, stages)
        _print_shapes(c, stages)
        for s in stages:
            g = s.get("goodput")
            if g:
                slos = " ".join(f"{k}:{v:g}" for k, v in g["slos_ms"].items())
                ratio = g["ratio"]
                c.print(
                    f"goodput (stage {s['stage'] + 1}, {slos} ms): {g['good']} good, "
                    f"{_num(g['requests_per_s'], 2)} req/s, "
                    f"{'-' if ratio is None else f'{100 * ratio:.1f}%'} of {_goodput_of(g)}"
                )
        errs = [(s["stage"], e) for s in stages for e in s["errors"]]
        if errs:
            et = Table(title="Errors", title_justify="left", box=None, pad_edge=False)
            et.add_column("stage", justify="right")
            et.add_column("kind")
            et.add_column("http", justify="right")
            et.add_column("count", justify="right")
            et.add_column("example", overflow="ellipsis", no_wrap=True, max_width=40)
            for st_i, e in errs[:20]:
                et.add_row(
                    str(st_i + 1),
                    e["kind"],
                    "-" if e["http_status"] is None else str(e["http_status"]),
                    str(e["count"]),
                    e["example"].replace("\n", " ")[:200],
                )
            c.print(et)
        for s in stages:
            cl = s["client"]
            lag = cl["loop_lag_ms"]
            rate = ""
            if cl.get("achieved_rate") is not None:
                rate = f", achieved {cl['achieved_rate']:.2f}/s of {cl['target_rate']:g}/s"
            verdict = (
                "trustworthy"
                if cl["trustworthy"]
                else cl["reason"]
                if cl["trustworthy"] is None
                else f"NOT trustworthy: {cl['reason']}"
            )
            c.print(
                f"client (stage {s['stage'] + 1}): loop lag p99 {_ms(lag['p99'])} ms, "
                f"CPU {cl['cpu_percent']:.0f}%{rate}; {verdict}"
            )
            if cl.get("reconnects"):
                # requests resent on a fresh connection: the server had closed the kept-alive one unanswered
                c.print(f"client (stage {s['stage'] + 1}): {cl['reconnects']} reconnects (not failures)")
        c.print(
            f"token counts from {stages[0]['token_source']}; prompts counted by {summary['token_counting']}"
        )
        c.print(f"status {summary['status']}; results in {summary['run_dir']}")


def _server_table(c: Console, stages: list[dict[str, Any]]) -> None:
    """Numbers the server reported (prefix cache, reasoning, llama.cpp timings, speculative decoding) and the
    server's own /metrics gauges: one row per stage, a column only when some stage has it."""
    cols: list[tuple[str, Any]] = []

    def has(path: tuple[str, ...]) -> bool:
        for s in stages:
            v: Any = s.get("server")
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                return True
        return False

    def get(s: dict[str, Any], *path: str) -> Any:
        v: Any = s.get("server")
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    if has(("prefix_cache", "hit_rate")):
        cols.append(("cache hit", lambda s: pct(get(s, "prefix_cache", "hit_rate"))))
    if has(("reasoning", "mean")):
        cols.append(("reason tok", lambda s: _num(get(s, "reasoning", "mean"), 1)))
    if has(("timings", "prompt_tokens_per_s")):
        cols.append(("prefill tok/s", lambda s: _num(get(s, "timings", "prompt_tokens_per_s"), 1)))
    if has(("timings", "predicted_tokens_per_s")):
        cols.append(("decode tok/s", lambda s: _num(get(s, "timings", "predicted_tokens_per_s"), 1)))
    if has(("speculative", "acceptance_rate")):
        cols.append(("draft accept", lambda s: pct(get(s, "speculative", "acceptance_rate"))))
    # tokens per event is 1.0 on most servers: a column only when some stage saw several per event
    if any((get(s, "decoded_tokens_per_iter", "mean") or 0) > 1.01 for s in stages):
        cols.append(("tok/iter", lambda s: _num(get(s, "decoded_tokens_per_iter", "mean"), 2)))
    if cols:
        t = Table(title="Server-reported", title_justify="left", box=None, pad_edge=False)
        t.add_column("stage", justify="right")
        for name, _f in cols:
            t.add_column(name, justify="right")
        for s in stages:
            t.add_row(str(s["stage"] + 1), *(f(s) for _n, f in cols))
        c.print(t)
    for s in stages:
        sm = s.get("server_metrics")
        if not sm:
            continue
        parts = [
            f"{name} {_num(v['min'], 2)}/{_num(v['mean'], 2)}/{_num(v['max'], 2)}"
            for name, v in sorted((sm.get("series") or {}).items())
        ]
        fails = f", {sm['failures']} failed scrapes" if sm.get("failures") else ""
        c.print(
            f"server metrics (stage {s['stage'] + 1}, min/mean/max over {sm.get('scrapes', 0)} scrapes{fails}): "
            + ("; ".join(parts) if parts else "none of the tracked gauges")
        )


def _goodput_of(g: dict[str, Any]) -> str:
    """What goodput's ratio is over: finished requests plus those incomplete at the deadline."""
    n = g.get("denominator")
    text = "completed" if n is None else f"{n} requests"
    late = g.get("incomplete_at_deadline") or 0
    if late:
        text += f" (incl. {late} incomplete at the deadline, counted as not good)"
    undef = g.get("slo_undefined") or {}
    if undef:
        text += "; undefined, so not met: " + ", ".join(f"{k} x{v}" for k, v in sorted(undef.items()))
    return text


def _print_shapes(c: Console, stages: list[dict[str, Any]]) -> None:
    """Schedule error of ramps and traces; per-turn and per-session numbers of --multi-turn stages."""
    for s in stages:
        n = s["stage"] + 1
        se = s.get("schedule_error")
        if se:
            c.print(
                f"schedule error (stage {n}, send time - {se['vs']} time over {se['requests']} requests): "
                f"p50 {_ms(se['p50_ms'])} / p99 {_ms(se['p99_ms'])} / max {_ms(se['max_ms'])} ms"
            )
        ss = s.get("sessions")
        if not ss:
            continue
        dur = ss.get("duration") or {}
        c.print(
            f"sessions (stage {n}): {ss['started']} started, {ss['completed']} completed, {ss['failed']} failed, "
            f"{ss['cut']} cut; turns per session {_num(ss['turns_completed']['mean'], 2)}; duration p50 "
            f"{_ms(dur.get('p50'))} / p99 {_ms(dur.get('p99'))} ms"
        )
        t = Table(title=f"By turn (stage {n}, ms)", title_justify="left", box=None, pad_edge=False)
        for col in ("turn", "ok", "TTFT p50", "TTFT p99", "E2E p50", "E2E p99"):
            t.add_column(col, justify="right")
        for row in ss["by_turn"]:
            ttft, e2e = row.get("ttft") or {}, row.get("e2e_latency") or {}
            t.add_row(
                row["turn"],
                str(row["succeeded"]),
                _ms(ttft.get("p50")),
                _ms(ttft.get("p99")),
                _ms(e2e.get("p50")),
                _ms(e2e.get("p99")),
            )
        c.print(t)


def _print_incomplete(c: Console, stages: list[dict[str, Any]]) -> None:
    """Requests cut off by the end of a --duration stage: not in the latency table, lower bounds here."""
    for s in stages:
        inc = s.get("incomplete_at_deadline") or {}
        n = inc.get("requests") or 0
        if not n:
            continue
        lb = inc.get("latency_from_schedule_lower_bound") or {}
        queued = f", {inc['queued']} never sent (no free slot)" if inc.get("queued") else ""
        c.print(
            f"incomplete at the deadline (stage {s['stage'] + 1}): {n} requests ({inc.get('in_flight', 0)} "
            f"still running{queued}), not in the latency table; their latency from schedule is at least "
            f"p50 {_ms(lb.get('p50'))} / max {_ms(lb.get('max'))} ms"
        )

"""The perf package's shape (issue 12): one dispatch engine, no import cycles, reporting reads data only,
and a metric is one class."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import evalscope

SRC = Path(evalscope.__file__).parent
PERF = SRC / "perf"


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    name = ".".join(rel.parts)
    return name.removesuffix(".__init__")


def _graph() -> dict[str, set[str]]:
    """Module -> evalscope modules it imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    mods = {_module(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m:
                    graph[m].add(t)
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return [*path, start]
            if nxt not in seen and nxt.startswith("evalscope.perf"):
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_import_cycle_in_perf() -> None:
    graph = _graph()
    for m in sorted(graph):
        if m.startswith("evalscope.perf"):
            cycle = _cycle_through(graph, m)
            assert cycle is None, " -> ".join(cycle)


def test_terminal_report_reads_data_not_the_run() -> None:
    perf_imports = {m for m in _graph()["evalscope.perf.report"] if m.startswith("evalscope.perf")}
    # progress: the LiveStage data snapshot; legend: a table of abbreviations (a leaf with no imports)
    assert perf_imports <= {"evalscope.perf.progress", "evalscope.perf.legend"}
    assert "evalscope.perf.progress" in perf_imports


def test_datasets_do_not_import_the_config() -> None:
    graph = _graph()
    for m, deps in graph.items():
        if m.startswith("evalscope.perf.datasets"):
            assert "evalscope.perf.config" not in deps, m


def test_one_dispatch_engine() -> None:
    """``_dispatch`` / ``_one`` / ``_on_record`` / ``_drain`` are defined once, in the core."""
    where: dict[str, list[str]] = {}
    for p in PERF.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in (
                "_dispatch",
                "_one",
                "_on_record",
                "_drain",
            ):
                where.setdefault(node.name, []).append(p.name)
    assert where == {n: ["_core.py"] for n in ("_dispatch", "_one", "_on_record", "_drain")}


def test_a_metric_is_one_class() -> None:
    """A new latency metric registered with ``@metric`` is measured and summarised, nothing else to edit."""
    from evalscope.engine.records import RequestRecord
    from evalscope.perf import metrics
    from evalscope.perf.aggregate import Aggregator
    from evalscope.perf.summary import stage_summary

    @metrics.metric
    class HeaderTime(metrics.LatencyMetric):
        name = "test_first_byte"

        def value(self, rec: RequestRecord, vals: dict[str, float | None]) -> float | None:
            return None if rec.first_byte_ns is None else rec.first_byte_ns - rec.sent_ns

    try:
        agg = Aggregator(0)
        rec = RequestRecord(
            request_id=1,
            status="ok",
            scheduled_ns=0,
            sent_ns=1_000,
            first_byte_ns=5_001_000,
            first_token_ns=6_000_000,
            first_content_ns=6_000_000,
            last_token_ns=6_000_000,
            end_ns=7_000_000,
            completion_tokens=1,
        )
        agg.add(rec)
        assert agg.metrics["test_first_byte"].mean_ms() == pytest.approx(5.0)
        out = stage_summary(
            agg, stage=0, parallel=1, concurrency_cap=1, rate=None, number=1, client={}, dispatch_start_ns=0
        )
        assert out["test_first_byte"]["count"] == 1
    finally:
        metrics._REGISTRY.remove(HeaderTime)
    assert "test_first_byte" not in Aggregator(0).metrics


def _ok_record(**kw: object) -> object:
    from evalscope.engine.records import RequestRecord

    base: dict[str, object] = {
        "request_id": 1,
        "status": "ok",
        "scheduled_ns": 0,
        "sent_ns": 1_000,
        "first_token_ns": 6_000_000,
        "first_content_ns": 6_000_000,
        "last_token_ns": 6_000_000,
        "end_ns": 7_000_000,
        "completion_tokens": 3,
    }
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_a_counter_is_one_class() -> None:
    """A new counter registered with ``@counter`` is fed, merged, saved/restored and summarised, unedited."""
    from evalscope.engine.records import RequestRecord
    from evalscope.perf import metrics
    from evalscope.perf.aggregate import Aggregator
    from evalscope.perf.summary import stage_summary

    @metrics.counter
    class LongAnswers(metrics.FieldCounter):
        name = "test_long_answers"
        fields = ("long", "short")
        long: int
        short: int

        def add(self, rec: RequestRecord) -> None:
            if (rec.completion_tokens or 0) >= 3:
                self.long += 1
            else:
                self.short += 1

        def summary(self) -> dict[str, int]:
            return self.to_state()

    try:
        a, b = Aggregator(0), Aggregator(0)
        a.add(_ok_record())  # type: ignore[arg-type]
        b.add(_ok_record(completion_tokens=1))  # type: ignore[arg-type]
        b.add(_ok_record(status="error", end_ns=None))  # type: ignore[arg-type]  # failures aren't counted
        a.merge(Aggregator.from_state(b.to_state()))
        out = stage_summary(
            a, stage=0, parallel=1, concurrency_cap=1, rate=None, number=1, client={}, dispatch_start_ns=0
        )
        assert out["test_long_answers"] == {"long": 1, "short": 1}
        assert out["token_sources"] == {"unknown": 2}
    finally:
        metrics._COUNTERS.remove(LongAnswers)
    assert "test_long_answers" not in Aggregator(0).counters


def test_counter_state_from_before_the_classes_loads() -> None:
    """A stage state saved with the old flat counters (quirks, token_sources, server) restores exactly."""
    from evalscope.perf.aggregate import Aggregator

    agg = Aggregator(0)
    agg.add(_ok_record(token_source="usage", cached_tokens=4, prompt_tokens=10))  # type: ignore[arg-type]
    state = agg.to_state()
    saved = state.pop("counter_metrics")
    state["counters"].update(saved["server_quirks"] | {"usage_rejected": 2})
    state["token_sources"] = saved["token_sources"]
    state["server"] = saved["server"]
    back = Aggregator.from_state(state)
    assert back.usage_rejected == 2
    assert back.token_source() == "usage"
    assert back.server.cached_tokens == 4

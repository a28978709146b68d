"""The report model and its text forms, computed from run-directory files only (no browser)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from evalscope.cli import cli
from evalscope.engine.redact import register_secret
from evalscope.report import write_html
from evalscope.report.model import build_model, list_runs
from evalscope.report.synthetic import make_perf_run


@pytest.fixture(scope="module")
def perf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_perf_run(tmp_path_factory.mktemp("runs") / "p3", 3000, stages=(1, 4, 16))


def test_perf_model_uses_the_summary_and_draws_from_records(perf_run: Path) -> None:
    m = build_model(perf_run)
    summary = json.loads((perf_run / "summary.json").read_text())
    assert m["kind"] == "perf" and m["stages_source"] == "summary.json"
    assert m["stages"] == summary["stages"]
    assert m["records"] == 3000
    for name in ("ttft", "tpot", "itl", "e2e_latency"):
        for st, pts in m["cdf"][name].items():
            xs = [p[0] for p in pts]
            fs = [p[1] for p in pts]
            assert xs == sorted(xs) and fs == sorted(fs) and fs[-1] == 1.0
            s = summary["stages"][int(st)][name]
            assert xs[0] == pytest.approx(s["min"]) and xs[-1] == pytest.approx(s["max"])
    tl = m["timeline"]
    assert len(tl["t"]) == len(tl["in_flight"]) > 3
    assert tl["in_flight"][-1] == 0  # every request ended
    assert sum(tl["sent_per_s"]) * tl["bin_s"] == pytest.approx(3000)
    assert [s[0] for s in tl["stage_starts"]] == [0, 1, 2]
    assert set(tl["errors_per_s"]) == {"http 503", "timeout"}
    assert m["knee"] is not None and m["knee"]["stage"] in (0, 1, 2)
    assert 0 < len(m["samples"]) <= 2000


def test_a_crashed_perf_run_is_recomputed_from_records(perf_run: Path, tmp_path: Path) -> None:
    crashed = tmp_path / "crashed"
    shutil.copytree(perf_run, crashed)
    (crashed / "summary.json").unlink()
    with open(crashed / "records.jsonl", "ab") as f:
        f.write(b'{"id": 99999, "status": "ok", "sent')  # torn last line, as after kill -9
    m = build_model(crashed)
    ref = json.loads((perf_run / "summary.json").read_text())["stages"]
    assert m["stages_source"].startswith("records.jsonl")
    assert [s["requests"] for s in m["stages"]] == [s["requests"] for s in ref]
    for a, b in zip(m["stages"], ref, strict=True):
        assert a["ttft"]["p99"] == pytest.approx(b["ttft"]["p99"])
        assert a["e2e_latency"]["p50"] == pytest.approx(b["e2e_latency"]["p50"])
    assert m["records"] == 3000  # the torn line is left alone, not counted
    assert (write_html(crashed)).stat().st_size > 10_000


def _journal(run: Path, bench: str, entries: list[dict]) -> None:
    (run / "journal").mkdir(parents=True, exist_ok=True)
    with open(run / "journal" / f"{bench}.jsonl", "wb") as f:
        for e in entries:
            f.write(orjson.dumps(e) + b"\n")


def _entry(i: int, **kw: object) -> dict:
    e = {
        "benchmark": "b",
        "sample_id": f"s{i}",
        "repeat": 0,
        "subset": "x" if i % 2 else "y",
        "prompt": [{"role": "user", "content": f"question {i}"}],
        "output": f"answer {i}",
        "gold": "1",
        "extracted": "1",
        "status": "scored",
        "score": 1.0,
        "parsed": True,
        "finish_reason": "stop",
        "latency_s": 0.1,
        "ttft_s": 0.02,
        "time": 1000.0 + i,
    }
    e.update(kw)
    return e


def test_eval_model_from_journals_of_an_unfinished_run(tmp_path: Path) -> None:
    run = tmp_path / "ev"
    entries = [_entry(i) for i in range(6)]
    entries += [_entry(6, score=0.0, extracted="2"), _entry(7, score=0.0, parsed=False, extracted=None)]
    entries += [
        _entry(8, score=0.0, finish_reason="length"),
        _entry(9, status="errored", error={"kind": "http"}),
    ]
    entries.append(
        _entry(9, status="errored", error={"kind": "timeout"})
    )  # a retry supersedes the first line
    _journal(run, "b", entries)
    (run / "manifest.json").write_text(json.dumps({"status": "running", "fingerprints": {}, "model": "m"}))
    m = build_model(run)
    (b,) = m["benchmarks"]
    assert b["source"].startswith("journal")
    assert b["counts"] == {"correct": 6, "wrong": 3, "unparsed": 1, "errored": 1, "truncated": 1}
    assert b["num_samples"] == 9 and b["score"] == pytest.approx(6 / 9)
    assert {s["name"]: s["num_samples"] for s in b["subsets"]} == {"x": 4, "y": 5}
    assert len(m["samples"]) == 10 and m["samples_total"] == 10
    assert "timeout" in next(s for s in m["samples"] if s["id"] == "s9")["error"]
    assert m["perf_detail"]["cdf"]["latency"][-1][1] == 1.0


def test_no_secret_reaches_any_report(tmp_path: Path) -> None:
    canary = "sk-canary-7d1f0c2a9b"
    register_secret(canary)
    run = make_perf_run(tmp_path / "p", 200, stages=(2,))
    man = json.loads((run / "manifest.json").read_text())
    man["config"]["headers"] = {"Authorization": f"Bearer {canary}", "X-Note": f"key {canary}"}
    (run / "manifest.json").write_text(json.dumps(man))
    rec = json.loads((run / "records.jsonl").read_text().splitlines()[0])
    rec.update(status="error", error={"kind": "http", "message": f"bad key {canary}; Bearer abcdef123456"})
    with open(run / "records.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
    ev = tmp_path / "e"
    _journal(ev, "b", [_entry(0, output=f"echo {canary}", prompt=f"use api key {canary}")])
    (ev / "manifest.json").write_text(
        json.dumps({"status": "completed", "fingerprints": {}, "config": {"api_key": "abc12345"}})
    )
    for d in (run, ev):
        html = write_html(d).read_text()
        assert canary not in html and "abcdef123456" not in html and "abc12345" not in html
        for fmt in ("md", "csv", "json"):
            out = CliRunner().invoke(cli, ["report", str(d), "--format", fmt])
            assert out.exit_code == 0, out.output
            assert canary not in out.output


def test_report_cli_formats_and_bad_input(perf_run: Path, tmp_path: Path) -> None:
    r = CliRunner()
    md = r.invoke(cli, ["report", str(perf_run), "--format", "md"])
    assert md.exit_code == 0 and "## Latency (ms)" in md.output
    csv_out = r.invoke(cli, ["report", str(perf_run), "--format", "csv"])
    lines = csv_out.output.strip().splitlines()
    assert len(lines) == 4 and "ttft.p99" in lines[0]
    js = json.loads(r.invoke(cli, ["report", str(perf_run), "--format", "json"]).output)
    assert js["kind"] == "perf"
    target = tmp_path / "x.html"
    out = r.invoke(cli, ["report", str(perf_run), "-o", str(target)])
    assert out.exit_code == 0 and target.read_text().startswith("<!DOCTYPE html>")
    bad = r.invoke(cli, ["report", str(tmp_path / "nothing-here")])
    assert bad.exit_code == 2 and "not a directory" in bad.output
    (tmp_path / "empty").mkdir()
    bad = r.invoke(cli, ["report", str(tmp_path / "empty")])
    assert bad.exit_code == 2 and "not an evalscope run directory" in bad.output


def test_self_contained_html_makes_no_external_reference(perf_run: Path) -> None:
    html = write_html(perf_run).read_text()
    for needle in ("http://", "https://", "//cdn", "src=", "<link", "@import", "url("):
        hits = [ln for ln in html.splitlines() if needle in ln and "synthetic.invalid" not in ln]
        # the only URLs allowed are data values (the target URL) inside the embedded JSON and the SVG namespace
        hits = [h for h in hits if 'id="report-data"' not in h and "www.w3.org/2000/svg" not in h]
        assert not hits, (needle, hits[:2])
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_list_runs_finds_nested_runs(perf_run: Path) -> None:
    runs = list_runs(perf_run.parent)
    assert [r["id"] for r in runs] == ["p3"] and runs[0]["kind"] == "perf"


def test_light_cdfs_equal_the_aggregators(perf_run: Path, tmp_path: Path) -> None:
    """The fast path used when summary.json exists gives exactly the aggregator's CDFs (all ITL cases)."""
    from evalscope.report.model import PerfAccumulator

    lines = (perf_run / "records.jsonl").read_text().splitlines()
    out = []
    for i, ln in enumerate(lines):
        d = json.loads(ln)
        offs = d["event_offsets_ns"]
        if d["status"] == "ok" and i % 3 == 1:  # continuous usage: tokens per event
            d["event_tokens"] = [1 + (j % 3) for j in range(len(offs))]
            d["completion_tokens"] = sum(d["event_tokens"])
        elif d["status"] == "ok" and i % 3 == 2:  # usage says more tokens than events
            d["completion_tokens"] = len(offs) * 4 + 1
        out.append(json.dumps(d))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(out) + "\n")
    full, light = PerfAccumulator(), PerfAccumulator(light=True)
    full.feed_file(path)
    light.feed_file(path)
    assert light.light and not light.aggs
    assert full.cdfs() == light.cdfs()
    assert full.timeline() == light.timeline()
    assert full.samples() == light.samples()

"""Reports and ``evalscope app`` in a real headless Chromium (Debian's chromium, driven by Playwright).

Each page must load with no console error and no request other than the page (and, in the app, its own
API); every chart must have data points; the numbers shown must be summary.json's / the eval reports'.
Screenshots go to $EVALSCOPE_TEST_ARTIFACTS (default: a tmp dir) for a human to look at.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.browser.chromium import PageLog, browser, open_page, skip_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
if skip_reason():
    pytestmark.append(pytest.mark.skip(reason=str(skip_reason())))

SRC = Path(__file__).resolve().parents[2] / "src"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalscope", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = Path(os.environ.get("EVALSCOPE_TEST_ARTIFACTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def ctx() -> Iterator[Any]:
    with browser() as c:
        yield c


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real runs against the built-in simulator: a 2-stage perf run and an eval run of two benchmarks."""
    out = tmp_path_factory.mktemp("outputs")
    r = _cli(
        "perf",
        "--parallel",
        "2",
        "4",
        "--number",
        "16",
        "24",
        "--sleep-interval",
        "0",
        "--max-tokens",
        "16",
        "--outputs-dir",
        str(out),
        "--name",
        "two",
        "--no-live",
    )
    assert r.returncode == 0, r.stderr
    datasets = Path(__file__).resolve().parents[3] / "shared" / "datasets"
    if datasets.is_dir():
        r = _cli(
            "eval",
            "--datasets",
            "arc",
            "gsm8k",
            "--dataset-dir",
            str(datasets),
            "--limit",
            "20",
            "--work-dir",
            str(out),
            "--run-name",
            "ev",
            "--quiet",
        )
        assert r.returncode == 0, r.stderr
    return out


def _run(outputs: Path, suffix: str) -> Path:
    (d,) = [p for p in outputs.iterdir() if p.name.endswith(suffix)]
    return d


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def _wait_text(page: Any, selector: str, text: str, timeout_s: float = 30) -> None:
    """Wait until ``selector``'s text is ``text`` (polled from Python: the pages' CSP forbids eval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        el = page.query_selector(selector)
        got = el.inner_text() if el is not None else None
        if got == text:
            return
        assert time.monotonic() < deadline, f"{selector}: {got!r} != {text!r}"
        time.sleep(0.1)


def _check_page(page: Any, log: PageLog, allowed: set[str]) -> None:
    assert not log.console_errors, log.console_errors
    assert not log.page_errors, log.page_errors
    extra = [
        u
        for u in log.requests
        if u not in allowed and not any(u.startswith(a) for a in allowed if a.endswith("/"))
    ]
    assert not extra, f"unexpected requests: {extra}"
    charts = page.query_selector_all(".chart")
    assert charts
    empty = [c.query_selector(".ct").inner_text() for c in charts if int(c.get_attribute("data-n") or 0) == 0]
    assert not empty, f"charts without data points: {empty}"


def _check_numbers(page: Any, model: dict[str, Any], min_cells: int) -> None:
    cells = page.eval_on_selector_all(
        "td[data-k][data-v]",
        "els => els.map(e => [e.dataset.k, e.dataset.v, e.textContent, !!e.dataset.pct])",
    )
    checked = 0
    for key, raw, text, is_pct in cells:
        if key.startswith("manifest"):
            continue
        try:
            expected = _get(model, key)
        except (KeyError, IndexError):
            assert ".subsets." in key, (
                key
            )  # a subset's stderr is computed from the journal, not in the report
            continue
        assert float(raw) == pytest.approx(expected, rel=1e-12, abs=1e-12), key
        shown = float(text.replace(",", "")) / (100 if is_pct else 1)
        assert shown == pytest.approx(expected, rel=6e-3, abs=6e-5 if is_pct else 6e-3), (key, text, expected)
        checked += 1
    assert checked >= min_cells


def test_perf_report_in_chromium(ctx: Any, outputs: Path, artifacts: Path) -> None:
    run = _run(outputs, "_two")
    report = run / "report.html"
    assert report.is_file(), "perf did not write report.html"
    summary = json.loads((run / "summary.json").read_text())
    log = PageLog()
    url = report.resolve().as_uri()
    page = open_page(ctx, url, log)
    page.screenshot(path=str(artifacts / "perf_report.png"), full_page=True)
    _check_page(page, log, {url})
    _check_numbers(page, {"stages": summary["stages"]}, min_cells=100)
    # the request filters count what records.jsonl holds
    recs = [json.loads(x) for x in (run / "records.jsonl").read_text().splitlines()]
    for status in ("ok", "error"):
        page.click(f"button[data-filter='{status}']")
        assert int(page.inner_text("#req-table .count")) == sum(r["status"] == status for r in recs)
    page.close()


def test_eval_report_filters_in_chromium(ctx: Any, outputs: Path, artifacts: Path) -> None:
    runs = [p for p in outputs.iterdir() if p.name.endswith("_ev") or p.name == "ev"]
    if not runs:
        pytest.skip("real benchmark data (../shared/datasets) not available for the eval run")
    run = runs[0]
    report = run / "report.html"
    assert report.is_file(), "eval did not write report.html"
    log = PageLog()
    url = report.resolve().as_uri()
    page = open_page(ctx, url, log)
    page.screenshot(path=str(artifacts / "eval_report.png"), full_page=True)
    _check_page(page, log, {url})
    reports = {p.stem: json.loads(p.read_text()) for p in (run / "reports").glob("*/*.json")}
    benches = sorted(reports)
    model = {
        "benchmarks": [
            {**reports[b], "subsets": reports[b]["subsets"] if len(reports[b]["subsets"]) > 1 else []}
            for b in benches
        ],
        "performance": reports[benches[0]]["performance"],
    }
    _check_numbers(page, model, min_cells=len(benches) * 5)
    entries = []
    for jp in sorted((run / "journal").glob("*.jsonl")):
        entries += [json.loads(x) for x in jp.read_text().splitlines() if x.strip()]
    expect = {
        "all": len(entries),
        "correct": sum(e["status"] == "scored" and e["score"] >= 1 for e in entries),
        "wrong": sum(e["status"] == "scored" and e["score"] < 1 for e in entries),
        "unparsed": sum(e["status"] == "scored" and e.get("parsed") is False for e in entries),
        "errored": sum(e["status"] != "scored" for e in entries),
        "truncated": sum(e.get("finish_reason") == "length" for e in entries),
    }
    for flag, n in expect.items():
        page.click(f"#samples button[data-filter='{flag}']")
        assert int(page.inner_text("#sample-count")) == n, flag
    page.click("#samples button[data-filter='all']")
    page.select_option("#f-bench", "arc")
    page.select_option("#f-subset", "ARC-Easy")
    assert int(page.inner_text("#sample-count")) == sum(e.get("subset") == "ARC-Easy" for e in entries)
    page.select_option("#f-subset", "")
    page.select_option("#f-bench", "")
    word = entries[0]["sample_id"]
    page.fill("#f-q", word)
    _wait_text(page, "#sample-count", "1")
    page.click("#sample-list tr.pick")
    assert page.inner_text("#sample-detail pre.f-prompt")
    page.screenshot(path=str(artifacts / "eval_report_sample.png"), full_page=False)
    page.close()


class AppProcess:
    def __init__(self, outputs: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "evalscope", "app", "--outputs", str(outputs), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert m, line + (
            self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        )
        self.url = m.group(1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def test_app_lists_follows_and_compares(ctx: Any, outputs: Path, artifacts: Path, tmp_path: Path) -> None:
    from evalscope.report.synthetic import make_perf_run

    root = tmp_path / "apps"
    root.mkdir()
    make_perf_run(root / "syn_a", 2000, stages=(1, 4, 16), seed=1)
    make_perf_run(root / "syn_b", 2000, stages=(2, 8), seed=2)
    for p in outputs.iterdir():
        os.symlink(p, root / p.name)
    # a live run: manifest says running, records arrive while the page is open
    src = make_perf_run(tmp_path / "src_live", 600, stages=(4,), summary=False)
    live = root / "live"
    live.mkdir()
    man = json.loads((src / "manifest.json").read_text())
    man["status"] = "running"
    (live / "manifest.json").write_text(json.dumps(man))
    lines = (src / "records.jsonl").read_bytes().splitlines(keepends=True)
    (live / "records.jsonl").write_bytes(b"".join(lines[:100]))
    app = AppProcess(root)
    try:
        log = PageLog()
        page = open_page(ctx, app.url, log)
        page.wait_for_selector("#runs tr[data-run]")
        ids = page.eval_on_selector_all("#runs tr[data-run]", "els => els.map(e => e.dataset.run)")
        assert set(ids) == {p.name for p in root.iterdir()}
        page.screenshot(path=str(artifacts / "app_runs.png"), full_page=True)
        assert not log.console_errors and not log.page_errors
        page.close()

        log = PageLog()
        page = open_page(ctx, app.url + "run?id=live", log)
        page.wait_for_selector("#app[data-records='100']")
        stop = threading.Event()

        def writer() -> None:
            with open(live / "records.jsonl", "ab") as f:
                for i in range(100, 600, 50):
                    if stop.is_set():
                        return
                    f.write(b"".join(lines[i : i + 50]))
                    f.flush()
                    time.sleep(0.3)
            man["status"] = "completed"
            (live / "manifest.json").write_text(json.dumps(man))

        t = threading.Thread(target=writer)
        t.start()
        try:
            page.wait_for_selector("#app[data-records='600']", timeout=60_000)
        finally:
            stop.set()
            t.join()
        page.wait_for_selector(".badge.completed", timeout=30_000)
        page.screenshot(path=str(artifacts / "app_live_run.png"), full_page=True)
        _check_page(page, log, {app.url})
        # paging through every record on the server
        page.click("button[data-filter='error']")
        recs = [json.loads(x) for x in lines]
        _wait_text(page, "#req-table .count", str(sum(r["status"] == "error" for r in recs)))
        page.close()

        log = PageLog()
        page = open_page(ctx, app.url + "compare?runs=syn_a,syn_b", log)
        page.wait_for_selector("#cmp-cdf .chart")
        page.screenshot(path=str(artifacts / "app_compare_perf.png"), full_page=True)
        _check_page(page, log, {app.url})
        sa = json.loads((root / "syn_a" / "summary.json").read_text())
        sb = json.loads((root / "syn_b" / "summary.json").read_text())
        _check_numbers(page, {"runs": [sa, sb]}, min_cells=40)
        page.close()

        evs = [p.name for p in root.iterdir() if p.name == "ev" or p.name.endswith("_ev")]
        assert evs or not any((p / "journal").is_dir() for p in outputs.iterdir())
        if evs:
            other = root / "ev_copy"
            import shutil

            shutil.copytree(root / evs[0], other)
            # flip one score so the diff has exactly one sample
            jp = other / "journal" / "arc.jsonl"
            rows = [orjson.loads(x) for x in jp.read_bytes().splitlines() if x.strip()]
            rows[0]["score"] = 1.0 - float(rows[0]["score"])
            jp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
            log = PageLog()
            page = open_page(ctx, app.url + f"compare?runs={evs[0]},ev_copy", log)
            page.wait_for_selector("#diff-count")
            assert page.inner_text("#diff-count") == "1"
            page.screenshot(path=str(artifacts / "app_compare_eval.png"), full_page=True)
            _check_page(page, log, {app.url})
            page.close()
            # the eval run in the app: samples are paged by the server, filters count the whole journal
            log = PageLog()
            page = open_page(ctx, app.url + f"run?id={evs[0]}", log)
            page.wait_for_selector("#sample-count")
            entries = []
            for jp in sorted((root / evs[0] / "journal").glob("*.jsonl")):
                entries += [json.loads(x) for x in jp.read_text().splitlines() if x.strip()]
            _wait_text(page, "#sample-count", str(len(entries)))
            page.click("#samples button[data-filter='correct']")
            n_correct = sum(e["status"] == "scored" and e["score"] >= 1 for e in entries)
            _wait_text(page, "#sample-count", str(n_correct))
            page.fill("#f-q", entries[-1]["sample_id"])
            page.click("#samples button[data-filter='all']")
            _wait_text(page, "#sample-count", "1")
            page.click("#sample-list tr.pick")
            page.wait_for_selector("#sample-detail pre.f-prompt")
            page.screenshot(path=str(artifacts / "app_eval_run.png"), full_page=True)
            _check_page(page, log, {app.url})
            page.close()
    finally:
        app.stop()

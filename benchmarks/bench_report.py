"""Report figures: size and open time of report.html for 1,000- and 100,000-request runs, app memory at 1e6.

Runs are synthetic (:mod:`evalscope.report.synthetic`: real record schema, the run's own encoder, aggregator
and summary), since a loaded machine cannot push 1e5-1e6 requests through the simulator quickly. For each
size: time to build the report (``write_html``), its size, and the time Chromium takes to load and render it
(navigation start to the renderer's ``data-ready`` mark). Then ``evalscope app`` is started on a 1,000,000-
record run, the run page is opened until it has indexed every record, and the app's RSS is read.

Run: ``python benchmarks/bench_report.py`` (``--sizes 1000 100000 --app-records 1000000``; needs chromium and
playwright for the open times and ~400 MB of temporary disk for the 1e6 run). Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from evalscope.report import write_html
from evalscope.report.synthetic import make_perf_run

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def open_time_s(path: Path) -> float | None:
    from tests.browser.chromium import PageLog, browser, open_page, skip_reason

    if skip_reason():
        return None
    with browser() as ctx:
        best = None
        for _ in range(3):
            t = time.perf_counter()
            page = open_page(ctx, path.resolve().as_uri(), PageLog(), timeout_ms=300_000)
            dt = time.perf_counter() - t
            page.close()
            best = dt if best is None else min(best, dt)
        return best


def app_memory(run_root: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalscope", "app", "--outputs", str(run_root), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = re.search(r"(http://\S+/)", proc.stdout.readline()).group(1)  # type: ignore[union-attr]
        p = psutil.Process(proc.pid)
        rss0 = p.memory_info().rss
        t = time.perf_counter()
        peak = rss0
        while True:
            with urllib.request.urlopen(url + "api/model?run=big", timeout=600) as r:
                m = json.loads(r.read())
            peak = max(peak, p.memory_info().rss)
            if m["progress"]["done"] and m["progress"]["bytes"] >= m["progress"]["total"]:
                break
            time.sleep(1)
        index_s = time.perf_counter() - t
        with urllib.request.urlopen(
            url + "api/records?run=big&status=error&offset=5000&limit=100", timeout=60
        ) as r:
            page = json.loads(r.read())
        peak = max(peak, p.memory_info().rss)
        return {
            "records": m["records"],
            "index_s": index_s,
            "rss_start_mb": rss0 / 1e6,
            "rss_end_mb": p.memory_info().rss / 1e6,
            "rss_peak_mb": peak / 1e6,
            "records_file_mb": m["progress"]["total"] / 1e6,
            "error_page_rows": len(page["rows"]),
        }
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 100_000])
    ap.add_argument("--app-records", type=int, default=1_000_000, help="0: skip the app measurement")
    ap.add_argument(
        "--app-summary",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="give the 1e6 run a summary.json (finished run) instead of recomputing stage tables",
    )
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        for n in args.sizes:
            run = make_perf_run(Path(tmp) / f"r{n}", n, stages=(1, 4, 16, 64))
            t = time.perf_counter()
            path = write_html(run)
            build = time.perf_counter() - t
            row = {
                "build_s": round(build, 2),
                "size_mb": round(path.stat().st_size / 1e6, 3),
                "records_mb": round((run / "records.jsonl").stat().st_size / 1e6, 1),
            }
            ot = open_time_s(path)
            row["open_s"] = None if ot is None else round(ot, 2)
            print(
                f"{n:>9} requests: report {row['size_mb']} MB, built in {row['build_s']} s, "
                f"opens in {row['open_s']} s (records.jsonl {row['records_mb']} MB)",
                flush=True,
            )
            out[str(n)] = row
        if args.app_records:
            root = Path(tmp) / "app"
            # with summary.json (a finished run): the app reads the records only for the CDFs and the index
            make_perf_run(root / "big", args.app_records, stages=(1, 4, 16, 64), summary=args.app_summary)
            mem = app_memory(root)
            print(
                f"app on {mem['records']} records: peak RSS {mem['rss_peak_mb']:.0f} MB "
                f"(start {mem['rss_start_mb']:.0f} MB), indexed in {mem['index_s']:.0f} s",
                flush=True,
            )
            out["app"] = mem
    print(json.dumps(out))


if __name__ == "__main__":
    main()

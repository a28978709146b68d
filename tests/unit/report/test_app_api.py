"""The app's JSON API without a browser: listing, paging with filters, refusing paths outside --outputs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
from aiohttp.test_utils import TestClient, TestServer

from evalscope.report.app import App
from evalscope.report.synthetic import make_perf_run


def _eval_run(d: Path, scores: list[float]) -> None:
    (d / "journal").mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"status": "completed", "fingerprints": {}, "model": "m"}))
    with open(d / "journal" / "b.jsonl", "wb") as f:
        for i, s in enumerate(scores):
            e = {"benchmark": "b", "sample_id": f"s{i}", "repeat": 0, "subset": "x", "prompt": f"q{i}",
                 "output": f"needle{i}", "gold": "1", "extracted": "1" if s else "2", "status": "scored",
                 "score": s, "parsed": True, "finish_reason": "stop"}  # fmt: skip
            f.write(orjson.dumps(e) + b"\n")


async def test_app_api(tmp_path: Path) -> None:
    make_perf_run(tmp_path / "p", 500, stages=(2, 8), summary=False, status="running")
    _eval_run(tmp_path / "e1", [1.0, 0.0, 1.0, 0.0])
    _eval_run(tmp_path / "e2", [1.0, 1.0, 1.0, 0.0])
    (tmp_path / "outside").mkdir()
    async with TestClient(TestServer(App(tmp_path / ".").make())) as c:
        runs = await (await c.get("/api/runs")).json()
        assert {r["id"] for r in runs} == {"p", "e1", "e2"}
        for _ in range(100):  # the background reader indexes the records
            m = await (await c.get("/api/model?run=p")).json()
            if m["records"] == 500:
                break
            await asyncio.sleep(0.05)
        assert m["records"] == 500 and m["stages_source"].startswith("records.jsonl")
        recs = [json.loads(x) for x in (tmp_path / "p" / "records.jsonl").read_text().splitlines()]
        page = await (await c.get("/api/records?run=p&status=error&stage=1&offset=1&limit=3")).json()
        want = [r["id"] for r in recs if r["status"] == "error" and r["stage"] == 1]
        assert page["total"] == len(want) and [r["id"] for r in page["rows"]] == want[1:4]
        s = await (await c.get("/api/samples?run=e1&flag=wrong")).json()
        assert s["total"] == 2 and {r["id"] for r in s["rows"]} == {"s1", "s3"}
        s = await (await c.get("/api/samples?run=e1&q=NEEDLE2")).json()
        assert s["total"] == 1 and s["rows"][0]["output"] == "needle2"
        diff = await (await c.get("/api/sample_diff?runs=e1,e2&benchmark=b")).json()
        assert diff["total"] == 1 and diff["common"] == 4 and diff["rows"][0]["id"] == "s1"
        for bad in ("../p", "/etc", "p/../../x", "nope"):
            r = await c.get(f"/api/model?run={bad}")
            assert r.status == 404, bad
        assert (await c.get("/api/records?run=p&status=weird")).status == 400
        assert (await c.get("/compare?runs=p")).status == 400
        html = await (await c.get("/run?id=p")).text()
        assert "default-src 'none'" in html and "connect-src 'self'" in html

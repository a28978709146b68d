"""benchmarks/canned_server.py, the fastest-server fixture of the client CPU benchmark, serves what perf reads.

A benchmark helper that rots measures nothing: this runs ``evalscope perf`` against it and checks that every
request succeeded with the tokens it streams, and that each response carries its own request id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture()
def canned() -> Iterator[Any]:
    sys.path.insert(0, str(BENCH))
    try:
        from canned_server import CannedServer
    finally:
        sys.path.remove(str(BENCH))
    with CannedServer(tokens=5) as srv:
        yield srv


def test_perf_reads_every_canned_response(canned: Any, tmp_path: Path) -> None:
    url = canned.url
    out = subprocess.run(
        [
            *(sys.executable, "-m", "evalscope", "perf", "--no-live", "--no-html", "--url", url),
            *("--parallel", "4", "--number", "40", "--max-tokens", "5", "--outputs-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (run_dir,) = tmp_path.glob("*_perf")
    stage = json.loads((run_dir / "summary.json").read_text())["stages"][0]
    assert stage["requests"]["succeeded"] == 40
    assert stage["tokens"]["completion_total"] == 200
    recs = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert [r["completion_tokens"] for r in recs] == [5] * 40
    assert all(r["n_events"] == 5 and r["finish_reason"] == "length" for r in recs)


def test_each_response_has_its_own_id(canned: Any) -> None:
    url = canned.url
    bodies = []
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    for _ in range(2):
        req = urllib.request.Request(url, data=b'{"model":"sim-model","messages":[]}', method="POST")
        with opener.open(req, timeout=10) as resp:
            bodies.append(resp.read())
    assert bodies[0] != bodies[1] and len(bodies[0]) == len(bodies[1])
    assert bodies[0].count(b"data: ") == 5 + 2  # tokens, usage, [DONE]

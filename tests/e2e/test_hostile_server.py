"""Issue 10 (items 2, 3, 5, 6, 8) as a user meets them: the CLI against a simulator that misbehaves.

Each test runs ``evalscope perf`` / ``evalscope eval`` in a subprocess against a simulator started with one of
its fault knobs (``usage_fault``, ``reply_quirk``), or plants a key in the URL / a header and searches every
output file and the captured output for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import evalscope
from evalscope.sim import SimConfig, SimProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SRC = Path(evalscope.__file__).resolve().parents[1]  # the tree under test (PYTHONPATH), also for the CLI


def _cli(cmd: str, args: list[str], timeout: float = 150) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = str(SRC)
    env["COLUMNS"] = "200"
    extra = ["--no-live"] if cmd == "perf" else []
    return subprocess.run(
        [sys.executable, "-m", "evalscope", cmd, *extra, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _perf_outputs(out: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    summary = json.loads((d / "summary.json").read_text())
    manifest = json.loads((d / "manifest.json").read_text())
    records = [json.loads(line) for line in (d / "records.jsonl").read_text().splitlines() if line]
    return summary, manifest, records


def _gsm8k(root: Path, n: int = 6) -> Path:
    d = root / "gsm8k"
    d.mkdir(parents=True, exist_ok=True)
    rows = [
        json.dumps({"question": f"What is {i} plus 2?", "answer": f"{i}+2\n#### {i + 2}"}) for i in range(n)
    ]
    (d / "test.jsonl").write_text("\n".join(rows) + "\n")
    (d / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
    return root


def _no_secret(secrets: list[str], root: Path, *texts: str) -> None:
    files = [p for p in root.rglob("*") if p.is_file() and "data" not in p.parts]
    assert files
    for s in secrets:
        for t in texts:
            assert s not in t, s
        for p in files:
            assert s.encode() not in p.read_bytes(), (s, p)


# ---- item 2: server usage ------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["string", "huge"])
def test_perf_bad_usage_is_counted_consistently(tmp_path: Path, fault: str) -> None:
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=8, usage_fault=fault)) as sim:  # type: ignore[arg-type]
        r = _cli(
            "perf",
            [
                "--url",
                sim.url,
                "--parallel",
                "4",
                "--number",
                "20",
                "--max-tokens",
                "8",
                "--outputs-dir",
                str(tmp_path),
            ],
        )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Traceback" not in out and "Task exception" not in out
    summary, manifest, records = _perf_outputs(tmp_path)
    assert summary["status"] == manifest["status"] == "completed"
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == 20 == st["e2e_latency"]["count"]
    assert st["tokens"]["completion_total"] == 160  # counted events: 8 per request
    assert st["token_disagreement"]["usage_rejected"] == 20
    assert st["token_source"] == "events"
    assert 0 < st["throughput"]["output_tokens_per_s"] < 1e7
    assert all(rec["usage_rejected"] for rec in records)
    assert out.count("token usage was not plausible") == 1  # one warning line per run


def test_eval_string_usage_completes_with_reports(tmp_path: Path) -> None:
    data = _gsm8k(tmp_path / "data")
    with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, usage_fault="text", models=["m"])) as sim:
        r = _cli(
            "eval",
            [
                "--model",
                "m",
                "--api-url",
                sim.url,
                "--datasets",
                "gsm8k",
                "--dataset-dir",
                str(data),
                "--limit",
                "6",
                "--work-dir",
                str(tmp_path / "o"),
            ],
        )
    assert r.returncode == 0, r.stderr
    manifest = json.loads(next((tmp_path / "o").glob("*/manifest.json")).read_text())
    assert manifest["status"] == "completed"
    assert list((tmp_path / "o").glob("*/reports/m/gsm8k.json"))
    assert r.stderr.count("token usage was not plausible") == 1


# ---- item 3: successes that are not -------------------------------------------------------------------


def test_perf_quirks_redirect_and_whole_body(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, reply_quirk="redirect_302")) as sim:
        pre = _cli("perf", ["--url", sim.url, "--number", "4", "--outputs-dir", str(tmp_path / "p")])
        r = _cli(
            "perf",
            ["--url", sim.url, "--number", "4", "--no-test-connection", "--outputs-dir", str(tmp_path / "a")],
        )
    # the preflight request fails fast (exit 3) and names where the redirect pointed
    assert pre.returncode == 3, pre.stdout + pre.stderr
    assert "302 redirect to http://127.0.0.1" in pre.stderr and "/sim/redirected/" in pre.stderr
    summary, _, _ = _perf_outputs(tmp_path / "a")
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == 0 and st["requests"]["failed"] == 4, r.stdout + r.stderr
    assert [e["kind"] for e in st["errors"]] == ["redirect"]
    assert "/sim/redirected/" in st["errors"][0]["example"]
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=2, reply_quirk="json_for_stream")) as sim:
        r = _cli(
            "perf",
            ["--url", sim.url, "--number", "4", "--max-tokens", "8", "--outputs-dir", str(tmp_path / "b")],
        )
    assert r.returncode == 0, r.stdout + r.stderr
    summary, _, _ = _perf_outputs(tmp_path / "b")
    st = summary["stages"][0]
    assert st["requests"]["succeeded"] == 4
    assert st["ttft"] is None and st["e2e_latency"]["count"] == 4
    assert st["server_quirks"]["not_streamed"] == 4
    assert (r.stdout + r.stderr).count("did not stream") == 1


# ---- items 5 and 6: keys in the URL and in --headers ---------------------------------------------------


def test_perf_url_and_header_keys_never_leak(tmp_path: Path) -> None:
    user_key, query_key, sig, header_key = (
        "sk-USERINFO-5b1e9d",
        "sk-QUERY-c0ffee42",
        "SIG-7a7a7a7a",
        "sk-HDR-91be4c2a",
    )
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=4)) as sim:
        host = sim.url.removeprefix("http://")
        url = f"http://bob:{user_key}@{host}/v1/chat/completions?api_key={query_key}&sig={sig}&x=1"
        r = _cli(
            "perf",
            [
                "--url",
                url,
                "--number",
                "6",
                "--headers",
                f"Authorization=Bearer {header_key}",
                "X-Trace: a b c",
                "--outputs-dir",
                str(tmp_path),
                "--save-responses",
            ],
        )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    _no_secret([user_key, query_key, sig, header_key], tmp_path, out)
    summary, manifest, _ = _perf_outputs(tmp_path)
    assert summary["stages"][0]["requests"]["succeeded"] == 6  # the header with spaces was accepted and sent
    assert "api_key=***" in manifest["target"]["url"] and "***@" in manifest["target"]["url"]
    assert "api_key=***" in summary["target"]["url"]
    assert manifest["config"]["headers"]["X-Trace"] == "a b c"


def test_perf_bad_header_error_names_header_not_value(tmp_path: Path) -> None:
    secret = "sk-BADHDR-3f9e1a77"
    for spec in (f"Bad Name=Bearer {secret}", f"Bearer {secret}", f"X-Key=ab\r\n{secret}"):
        r = _cli("perf", ["--url", "http://127.0.0.1:9", "--headers", spec, "--outputs-dir", str(tmp_path)])
        assert r.returncode == 2, r.stderr
        assert secret not in r.stdout + r.stderr
        assert r.stderr.startswith("Error: --headers")


def test_eval_url_keys_never_leak(tmp_path: Path) -> None:
    user_key, query_key = "sk-EVUSER-0d1e2f3a", "sk-EVQUERY-4b5c6d7e"
    data = _gsm8k(tmp_path / "data")
    with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["m"])) as sim:
        host = sim.url.removeprefix("http://")
        for i, url in enumerate(
            [f"http://user:{user_key}@{host}/v1", f"http://{host}/v1/chat/completions?key={query_key}"]
        ):
            r = _cli(
                "eval",
                [
                    "--model",
                    "m",
                    "--api-url",
                    url,
                    "--datasets",
                    "gsm8k",
                    "--dataset-dir",
                    str(data),
                    "--limit",
                    "3",
                    "--work-dir",
                    str(tmp_path / f"o{i}"),
                ],
            )
            assert r.returncode == 0, r.stderr
            _no_secret([user_key, query_key], tmp_path / f"o{i}", r.stdout, r.stderr)
            assert list((tmp_path / f"o{i}").glob("*/reports/m/gsm8k.json"))


# ---- item 8: --strict on short runs --------------------------------------------------------------------


def test_strict_short_run_is_too_short_to_judge(tmp_path: Path) -> None:
    with SimProcess(SimConfig(ttft_ms=0, itl_ms=0, output_tokens=2)) as sim:
        r = _cli(
            "perf",
            [
                "--url",
                sim.url,
                "--parallel",
                "20",
                "--number",
                "20",
                "--max-tokens",
                "2",
                "--strict",
                "--outputs-dir",
                str(tmp_path),
            ],
        )
    assert r.returncode == 0, r.stdout + r.stderr
    summary, manifest, _ = _perf_outputs(tmp_path)
    client = summary["stages"][0]["client"]
    assert client["trustworthy"] is None and client["judged"] is False
    assert client["reason"].startswith("too short to judge")
    assert summary["trustworthy"] is None and manifest["trustworthy"] is None
    assert "too short to judge" in r.stdout + r.stderr

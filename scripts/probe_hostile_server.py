"""Before/after probe for issue 10 items 2, 3, 5, 6, 8 (hostile servers, keys in URLs, --headers, --strict).

PYTHONPATH=src python scripts/probe_hostile_server.py SRC_DIR  -- runs the CLI of the tree at SRC_DIR (for
"before": ``git archive <old commit> src | tar -x -C /tmp/old``) against this tree's simulator and prints one
line of measured behaviour per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from evalscope.sim import SimConfig, SimProcess  # run with PYTHONPATH=<new tree>/src: the sim's fault knobs

SRC = sys.argv[1]  # the tree whose CLI is probed (e.g. an old checkout's src, or this tree's)


def cli(cmd, args):
    env = {k: v for k, v in os.environ.items() if k not in ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")}
    env["PYTHONPATH"] = SRC
    env["COLUMNS"] = "200"
    extra = ["--no-live"] if cmd == "perf" else []
    return subprocess.run(
        [sys.executable, "-m", "evalscope", cmd, *extra, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=200,
    )


def perf(cfg, args, out):
    with SimProcess(cfg) as sim:
        r = cli("perf", ["--url", sim.url, "--outputs-dir", str(out), *args])
    d = [p for p in out.iterdir() if p.is_dir()] if out.exists() else []
    s = json.loads((d[0] / "summary.json").read_text()) if d and (d[0] / "summary.json").exists() else None
    return r, s


tmp = Path(tempfile.mkdtemp())
res = {}
for fault in ("string", "negative", "huge"):
    r, s = perf(
        SimConfig(ttft_ms=1, itl_ms=1, output_tokens=8, usage_fault=fault),
        ["--parallel", "4", "--number", "20", "--max-tokens", "8"],
        tmp / f"u{fault}",
    )
    st = s["stages"][0] if s else {}
    res[f"perf usage {fault}"] = dict(
        exit=r.returncode,
        status=s and s["status"],
        succeeded=st.get("requests", {}).get("succeeded"),
        e2e_samples=(st.get("e2e_latency") or {}).get("count"),
        out_tok_s=st.get("throughput", {}).get("output_tokens_per_s"),
        task_exception="Task exception" in r.stderr + r.stdout,
        warnings=(r.stdout + r.stderr).count("Warning"),
    )
# eval with text usage
data = tmp / "data" / "gsm8k"
data.mkdir(parents=True)
(data / "test.jsonl").write_text(
    "\n".join(json.dumps({"question": f"What is {i} plus 2?", "answer": f"#### {i + 2}"}) for i in range(6))
    + "\n"
)
(data / "train.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, usage_fault="text", models=["m"])) as sim:
    r = cli(
        "eval",
        [
            "--model",
            "m",
            "--api-url",
            sim.url,
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(tmp / "data"),
            "--limit",
            "6",
            "--work-dir",
            str(tmp / "ev"),
        ],
    )
man = next((tmp / "ev").glob("*/manifest.json"), None)
res["eval usage text"] = dict(
    exit=r.returncode,
    manifest=man and json.loads(man.read_text())["status"],
    reports=len(list((tmp / "ev").glob("*/reports/m/*.json"))),
)
for quirk in ("empty_stream", "redirect_302", "json_for_stream", "text_plain"):
    r, s = perf(
        SimConfig(ttft_ms=20, itl_ms=2, output_tokens=8, reply_quirk=quirk),
        ["--number", "5", "--max-tokens", "8", "--no-test-connection"],
        tmp / f"q{quirk}",
    )
    st = s["stages"][0]
    res[f"perf {quirk}"] = dict(
        exit=r.returncode,
        ok=st["requests"]["succeeded"],
        failed=st["requests"]["failed"],
        kinds=[e["kind"] for e in st["errors"]],
        ttft_mean=(st["ttft"] or {}).get("mean"),
        e2e_mean=(st["e2e_latency"] or {}).get("mean"),
        warned=[ln for ln in (r.stdout + r.stderr).splitlines() if "Warning" in ln][:1],
    )
# URL keys
with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=4)) as sim:
    host = sim.url.removeprefix("http://")
    for name, url in (
        ("userinfo", f"http://bob:sk-UIKEY-1234@{host}/v1"),
        ("query", f"http://{host}/v1/chat/completions?api_key=sk-QKEY-5678"),
    ):
        out = tmp / f"k{name}"
        r = cli("perf", ["--url", url, "--number", "3", "--outputs-dir", str(out)])
        key = "sk-UIKEY-1234" if name == "userinfo" else "sk-QKEY-5678"
        files = [p.name for p in out.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
        res[f"perf url key {name}"] = dict(
            exit=r.returncode, files_with_key=files, printed=key in r.stdout + r.stderr
        )
with SimProcess(SimConfig(policy="choice", ttft_ms=1, itl_ms=0, models=["m"])) as sim:
    host = sim.url.removeprefix("http://")
    r = cli(
        "eval",
        [
            "--model",
            "m",
            "--api-url",
            f"http://u:sk-EVKEY-4242@{host}/v1?key=sk-EVQ-4343",
            "--datasets",
            "gsm8k",
            "--dataset-dir",
            str(tmp / "data"),
            "--limit",
            "3",
            "--work-dir",
            str(tmp / "evk"),
        ],
    )
    files = sorted(
        {
            p.name
            for p in (tmp / "evk").rglob("*")
            if p.is_file() and (b"sk-EVKEY-4242" in p.read_bytes() or b"sk-EVQ-4343" in p.read_bytes())
        }
    )
    res["eval url key"] = dict(
        exit=r.returncode, files_with_key=files, printed="sk-EV" in r.stdout + r.stderr
    )
# headers
with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=4)) as sim:
    r = cli(
        "perf",
        [
            "--url",
            sim.url,
            "--number",
            "2",
            "--headers",
            "Authorization=Bearer sk-HDR-777",
            "--outputs-dir",
            str(tmp / "h"),
        ],
    )
    res["perf --headers 'Authorization=Bearer sk-...'"] = dict(
        exit=r.returncode, secret_printed="sk-HDR-777" in r.stdout + r.stderr, err=r.stderr.strip()[-120:]
    )
# strict short runs
codes = []
with SimProcess(SimConfig(ttft_ms=0, itl_ms=0, output_tokens=2)) as sim:
    for i in range(6):
        r = cli(
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
                str(tmp / f"s{i}"),
            ],
        )
        codes.append(r.returncode)
res["--strict 6 x 20 requests"] = dict(exit_codes=codes)
for k, v in res.items():
    print(f"{k}: {json.dumps(v)}")

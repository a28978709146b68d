"""Wall time and samples/s of ``eval --backend transformers`` on arc at batch size 1 and 8.

    python benchmarks/bench_local_model.py [--model DIR] [--limit 50] [--max-new-tokens 32] [--batch-sizes 1 8]

Without ``--model`` it builds the tests' tiny random-weight Llama (tests/tinymodel.py: 2 layers, hidden 64, a
locally trained tokenizer; needs the ``local`` extra). Each batch size is one ``python -m evalscope.run``
subprocess (so the wall time includes interpreter start, torch import and model load, as a user sees it); the
generation time is the sum of the distinct batch latencies in the journal. Random weights never emit
end-of-sequence, so every sample generates exactly ``--max-new-tokens`` tokens: the figures measure batching,
not a model. Data: ``--dataset-dir`` (default ../shared/datasets or $EVALSCOPE_SHARED_DATASETS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _data_dir(given: Path | None) -> Path:
    for cand in (
        given,
        REPO.parent / "shared" / "datasets",
        Path(os.environ.get("EVALSCOPE_SHARED_DATASETS", "/-")),
    ):
        if cand is not None and (cand / "arc").is_dir():
            return cand
    raise SystemExit("arc data not found: pass --dataset-dir (a folder laid out like ../shared/datasets)")


def run_once(model: Path, data: Path, limit: int, batch: int, max_new: int, work: Path) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["EVALSCOPE_OFFLINE"] = "1"
    argv = [
        sys.executable, "-m", "evalscope.run", "--model", str(model), "--backend", "transformers",
        "--datasets", "arc", "--limit", str(limit), "--dataset-dir", str(data), "--eval-batch-size", str(batch),
        "--generation-config", f"do_sample=false,max_new_tokens={max_new}", "--work-dir", str(work),
        "--quiet", "--no-html",
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    (run,) = [p for p in work.iterdir() if p.is_dir()]
    entries = [json.loads(x) for x in (run / "journal" / "arc.jsonl").read_text().splitlines() if x.strip()]
    generate_s = sum({round(e["latency_s"], 9) for e in entries})  # one latency per batch
    tokens = sum(e["usage"]["completion_tokens"] for e in entries)
    return {
        "batch_size": batch,
        "samples": len(entries),
        "wall_s": round(wall, 2),
        "samples_per_s": round(len(entries) / wall, 3),
        "generate_s": round(generate_s, 2),
        "gen_samples_per_s": round(len(entries) / generate_s, 3),
        "output_tok_per_s": round(tokens / generate_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the tiny test model)")
    ap.add_argument("--dataset-dir", type=Path)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    data = _data_dir(args.dataset_dir)
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        model = args.model
        if model is None:
            sys.path.insert(0, str(REPO / "tests"))
            from tinymodel import build_tiny_llama

            model = build_tiny_llama(Path(tmp) / "tiny-llama")
        rows = []
        for b in args.batch_sizes:
            work = Path(tmp) / f"out-{b}"
            work.mkdir()
            rows.append(run_once(model, data, args.limit, b, args.max_new_tokens, work))
    for r in rows:
        print(
            f"batch {r['batch_size']:>3}: {r['samples']} samples, wall {r['wall_s']:7.2f} s "
            f"({r['samples_per_s']:.2f} samples/s); generate {r['generate_s']:.2f} s "
            f"({r['gen_samples_per_s']:.2f} samples/s, {r['output_tok_per_s']:.0f} output tok/s)"
        )
    print(json.dumps({"bench": "local_model", "max_new_tokens": args.max_new_tokens, "rows": rows}))


if __name__ == "__main__":
    main()

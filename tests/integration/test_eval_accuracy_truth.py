"""Reported accuracy equals the truth exactly, for every benchmark with data in ../shared/datasets.

For a seeded subset of each benchmark's real samples, a scripted simulator answers correctly or wrongly in the
styles real models use (the benchmarks' ``reference_output`` / ``wrong_output``: markdown, ``(B)``, ``**B**``,
reasoning that mentions other letters, ``<think>`` blocks, ``\\boxed{}`` with commas or ``.0``); each rule
matches exactly one prompt. The report's accuracy must equal (#correct chosen) / n, sample by sample.
"""

from __future__ import annotations

import io
import json
import random
import re
import zlib
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import EvalscopeError
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample
from evalscope.eval.config import build_config
from evalscope.eval.runner import _ensure_registered, arun_eval, limit_samples

pytestmark = pytest.mark.integration

LIMIT = 60
_ensure_registered(["__all__"])
# judge-scored benchmarks need a judge; tests/unit/eval_runner/test_eval_judge.py checks them against one
NAMES = [
    n for n in BENCHMARKS.names() if not n.startswith("general_") and not getattr(BENCHMARKS.get(n), "uses_judge", False)
]


def _last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""


def build_script(
    bench: Benchmark, samples: list[Sample], seed: int
) -> tuple[list[dict[str, str]], dict[str, bool]]:
    """Scripted rules (one exact-prompt rule per sample) and the designed correctness per sample id."""
    rng = random.Random(seed)
    rules: list[dict[str, str]] = []
    truth: dict[str, bool] = {}
    seen: dict[str, Sample] = {}
    for i, s in enumerate(samples):
        prompt = _last_user(s.messages)
        if prompt in seen:
            prev = seen[prompt]
            assert prev.gold == s.gold, f"two samples share a prompt but not the gold: {prev.id} {s.id}"
            truth[s.id] = truth[prev.id]
            continue
        correct = rng.random() < 0.6
        reply = bench.reference_output(s, i) if correct else bench.wrong_output(s, i)
        rules.append({"pattern": "\\A" + re.escape(prompt) + "\\Z", "reply": reply})
        truth[s.id] = correct
        seen[prompt] = s
    return rules, truth


@pytest.mark.parametrize("name", NAMES)
async def test_reported_accuracy_equals_truth(name: str, shared_datasets: Path, tmp_path: Path) -> None:
    from evalscope.sim import SimConfig, SimServer

    cls = BENCHMARKS.get(name)
    if not cls.data_subdir or not (shared_datasets / cls.data_subdir).exists():
        pytest.skip(f"no data for {name} in {shared_datasets}")
    args: dict[str, Any] = {"allow_code_execution": True} if cls.needs_code_execution else {}
    bench = cls(shared_datasets, args)
    try:
        samples = limit_samples(bench.load(), LIMIT)
    except EvalscopeError as exc:
        pytest.skip(f"{name}: {exc.one_line()}")
    try:
        rules, truth = build_script(bench, samples, seed=zlib.crc32(name.encode()))
    except NotImplementedError:
        pytest.skip(f"{name} has no reference_output/wrong_output")
    script = tmp_path / "script.jsonl"
    script.write_text("\n".join(json.dumps(r) for r in rules) + "\n", encoding="utf-8")
    sim_cfg = SimConfig(
        policy="scripted",
        script=str(script),
        script_default="I do not know.",
        ttft_ms=1.0,
        itl_ms=0.0,
        tokens_per_chunk=8,
        models=["truth-model"],
    )
    async with SimServer(sim_cfg) as sim:
        cfg = build_config(
            {
                "model": "truth-model",
                "api_url": sim.url,
                "datasets": [name],
                "dataset_dir": str(shared_datasets),
                "limit": LIMIT,
                "eval_batch_size": 16,
                "work_dir": str(tmp_path / "out"),
                "allow_code_execution": cls.needs_code_execution,
                "generation_config": {"max_tokens": 100_000},
            }
        )
        try:
            result = await arun_eval(cfg, out=io.StringIO())
        except EvalscopeError as exc:
            if cls.needs_code_execution:
                pytest.skip(f"sandbox not usable here: {exc.one_line()}")
            raise
    rep = result.report(name)
    assert rep["errored"] == 0
    assert rep["num_samples"] == len(samples)
    expected = sum(truth.values()) / len(truth)
    # Sample by sample first (a precise failure message), then the headline.
    journal = result.run_dir / "journal" / f"{name}.jsonl"
    got = {e["sample_id"]: e for e in map(json.loads, journal.read_text(encoding="utf-8").splitlines())}
    wrong = [
        (sid, truth[sid], got[sid].get("score"), got[sid].get("extracted"), got[sid]["output"][-80:])
        for sid in truth
        if (got[sid].get("score", 0) >= 0.5) != truth[sid]
    ]
    assert not wrong, f"{name}: {len(wrong)} samples scored against the truth, e.g. {wrong[:3]}"
    assert rep["score"] == pytest.approx(expected, abs=1e-12)  # accuracy, or pass@1 with one repeat
    by_subset: dict[str, list[bool]] = {}
    for s in samples:
        by_subset.setdefault(s.subset, []).append(truth[s.id])
    if rep["subsets"]:
        reported = {x["name"]: (x["score"], x["num_samples"]) for x in rep["subsets"]}
        assert set(reported) == set(by_subset)
        for sub, vals in by_subset.items():
            assert reported[sub][1] == len(vals)
            assert reported[sub][0] == pytest.approx(sum(vals) / len(vals), abs=1e-12), sub
    assert rep["unparsed_rate"] == 0.0
    assert rep["truncated_rate"] == 0.0

"""The simulator as an LLM judge with a hidden truth (policy ``judge``): tests and benchmarks set the truth.

A pairwise verdict follows a Bradley-Terry model on the Elo scale: the logit that the answer shown first
wins is ``(r_A - r_B) * ln(10) / 400 + position_bias + length_bias * tanh((len_A - len_B) / length_scale)``.
The outcome is drawn so that its expected score (win 1, tie 0.5, loss 0) is exactly that probability: ties
take ``tie_rate * 2 * min(p, 1 - p)``, and a decisive verdict is said strongly (``>>``) with ``strong_rate``.
Single grading draws ``5.5 + (r - 1000) / 100 + noise`` rounded into 1..10.

Which model wrote which answer is not in a blind judge prompt, so the client names them in the request body
(``metadata.evalscope_arena = {"a": ..., "b": ..., "model": ..., "attempt": n}``); a model the truth does
not list gets a stable rating from its name. Answer lengths are read from the prompt (the arena templates'
``[The Start of ...]`` markers), as a real judge sees them. Every draw is seeded from (seed, prompt,
attempt), so the same question gets the same verdict in any order, and a retry can differ.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from evalscope.tokens import count_tokens

_ANSWER_RE = re.compile(
    r"\[The Start of Assistant ?([AB]?)'s Answer\]\n?(.*?)\n?\[The End of Assistant ?\1's Answer\]", re.S
)
_LN10_400 = math.log(10.0) / 400.0


class JudgeTruth(BaseModel):
    """The hidden truth behind the simulated judge's verdicts."""

    model_config = ConfigDict(extra="forbid")

    ratings: dict[str, float] = Field(
        default_factory=dict, description="True rating per model name (Elo scale, 1000 = average)."
    )
    position_bias: float = Field(default=0.0, description="Logit added in favour of the answer shown first.")
    length_bias: float = Field(default=0.0, description="Logit per tanh(length difference / length_scale).")
    length_scale: float = Field(default=100.0, gt=0, description="Tokens of length difference that count.")
    tie_rate: float = Field(default=0.3, ge=0, le=1, description="Tie share (of the most a BT model allows).")
    strong_rate: float = Field(default=0.3, ge=0, le=1, description="Share of decisive verdicts said >>.")
    null_rate: float = Field(default=0.0, ge=0, le=1, description="Share of replies with no verdict.")
    score_noise: float = Field(default=1.0, ge=0, description="Std of the single-grading score noise.")


def rating_of(truth: JudgeTruth, model: str) -> float:
    """The true rating of ``model``: configured, else stable from its name (within 1000 +- 150)."""
    r = truth.ratings.get(model)
    if r is not None:
        return r
    return 1000.0 + (zlib.crc32(model.encode()) % 301) - 150.0


def _lengths(prompt: str) -> dict[str, int]:
    return {m.group(1) or "single": count_tokens(m.group(2)) for m in _ANSWER_RE.finditer(prompt)}


def judge_text(truth: JudgeTruth, seed: int, prompt: str, body: dict[str, Any]) -> str:
    """The judge's reply to one prompt: reasoning words and a final ``[[verdict]]`` (or none, at null_rate)."""
    meta = body.get("metadata")
    info = meta.get("evalscope_arena") if isinstance(meta, dict) else None
    info = info if isinstance(info, dict) else {}
    attempt = int(info.get("attempt", 1) or 1)
    rng = random.Random((seed * 1_000_003) ^ zlib.crc32(f"{attempt}\x00{prompt}".encode("utf-8", "replace")))
    if truth.null_rate and rng.random() < truth.null_rate:
        return "Both answers have merits and flaws; I cannot decide."
    lengths = _lengths(prompt)
    if "a" in info and "b" in info:
        d = (rating_of(truth, str(info["a"])) - rating_of(truth, str(info["b"]))) * _LN10_400
        d += truth.position_bias
        if truth.length_bias and "A" in lengths and "B" in lengths:
            d += truth.length_bias * math.tanh((lengths["A"] - lengths["B"]) / truth.length_scale)
        p = 1.0 / (1.0 + math.exp(-d))
        tie = truth.tie_rate * 2.0 * min(p, 1.0 - p)
        u = rng.random()
        strong = rng.random() < truth.strong_rate
        if u < p - tie / 2:
            verdict = "A>>B" if strong else "A>B"
        elif u < p + tie / 2:
            verdict = "A=B"
        else:
            verdict = "B>>A" if strong else "B>A"
        return f"Comparing both answers for helpfulness and accuracy.\nFinal verdict: [[{verdict}]]"
    model = str(info.get("model", ""))
    score = 5.5 + (rating_of(truth, model) - 1000.0) / 100.0 + rng.gauss(0.0, truth.score_noise)
    if truth.length_bias and "single" in lengths:
        score += truth.length_bias * math.tanh(lengths["single"] / truth.length_scale)
    grade = min(10, max(1, round(score)))
    return f"The answer is relevant and mostly correct.\nRating: [[{grade}]]"

"""Reply policies: what text the simulator answers with, as a list of tokens.

Each policy is a pure function of (config, prompt, target length, seeded RNG) so that replies are
reproducible: the RNG is seeded from the configured seed and a stable hash of the prompt, not from arrival
order, which would change under concurrency.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalscope.sim.config import ScriptRule, SimConfig
from evalscope.sim.judge import JudgeTruth, judge_text
from evalscope.tokens import tokenize

#: Small vocabulary for random replies; each entry is one token (word plus trailing space).
VOCAB: tuple[str, ...] = tuple(
    f"{w} "
    for w in [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "as",
        "with",
        "was",
        "on",
        "be",
        "by",
        "this",
        "are",
        "from",
        "at",
        "or",
        "an",
        "which",
        "have",
        "not",
        "model",
        "token",
        "stream",
        "answer",
        "data",
        "time",
        "value",
        "result",
        "system",
        "request",
        "server",
        "latency",
        "test",
        "simple",
        "first",
        "second",
        "next",
        "final",
        "because",
        "when",
        "where",
        "while",
        "each",
        "more",
        "most",
        "other",
        "some",
        "such",
        "only",
        "also",
        "then",
        "than",
        "very",
        "well",
        "just",
        "into",
        "over",
        "after",
        "before",
        "under",
        "between",
        "through",
        "during",
        "without",
        "again",
    ]
)

_THINK = tuple(
    f"{w} "
    for w in [
        "Let",
        "me",
        "think",
        "about",
        "this",
        "step",
        "by",
        "step",
        "and",
        "check",
        "each",
        "option",
        "carefully",
        ".",
    ]
)

#: Option lines in a multiple-choice prompt: "A. text", "A) text", "(A) text".
_OPTION_RE = re.compile(r"^\s*\(?([A-Z])[.)]\s+\S", re.MULTILINE)


def prompt_seed(seed: int, prompt: str) -> int:
    """A per-prompt seed that is stable across runs and processes (crc32, not the salted ``hash``)."""
    return (seed * 1_000_003) ^ zlib.crc32(prompt.encode("utf-8", "surrogatepass"))


def random_tokens(rng: random.Random, n: int) -> list[str]:
    """``n`` random vocabulary tokens."""
    return rng.choices(VOCAB, k=n)


def reasoning_tokens(n: int) -> list[str]:
    """``n`` tokens of filler reasoning text, cycled."""
    return [_THINK[i % len(_THINK)] for i in range(n)]


def echo_tokens(prompt: str, n: int) -> list[str]:
    """The prompt's tokens cycled to length ``n`` (vocabulary words when the prompt is empty)."""
    words = [t.strip() + " " for t in tokenize(prompt)] or list(VOCAB)
    return [words[i % len(words)] for i in range(n)]


def find_options(prompt: str) -> list[str]:
    """Option letters found in a multiple-choice prompt, in order, deduplicated; A-D when none are found."""
    seen: list[str] = []
    for letter in _OPTION_RE.findall(prompt):
        if letter not in seen:
            seen.append(letter)
    return seen or ["A", "B", "C", "D"]


def choice_text(rng: random.Random, prompt: str) -> str:
    """Some reasoning words, then a final line ``ANSWER: X`` with X among the prompt's options."""
    letter = rng.choice(find_options(prompt))
    words = "".join(random_tokens(rng, rng.randint(5, 20))).strip()
    return f"Let me think. {words}.\nANSWER: {letter}"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A scripted rule with its regex compiled once."""

    pattern: re.Pattern[str]
    reply: str
    tool_call: dict[str, Any] | None = None


def load_script(cfg: SimConfig) -> list[CompiledRule]:
    """Inline rules then the rules of ``cfg.script`` (a JSON list or JSONL file), compiled in order."""
    rules: list[ScriptRule] = list(cfg.script_rules)
    if cfg.script:
        text = Path(cfg.script).read_text(encoding="utf-8")
        stripped = text.lstrip()
        if stripped.startswith("["):
            items = json.loads(text)
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        rules.extend(ScriptRule.model_validate(item) for item in items)
    return [CompiledRule(re.compile(r.pattern), r.reply, r.tool_call) for r in rules]


def scripted_text(rules: list[CompiledRule], default: str, prompt: str) -> str:
    """The reply of the first rule whose pattern matches ``prompt``, else ``default``."""
    for rule in rules:
        if rule.pattern.search(prompt):
            return rule.reply
    return default


class ReplyMaker:
    """Builds the reply tokens for one request according to the configured policy."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rules = load_script(cfg) if cfg.policy == "scripted" else []

    def natural_length(self) -> bool:
        """True when the policy decides the reply length itself (choice, scripted)."""
        return self.cfg.policy in ("choice", "scripted", "judge")

    def make(self, prompt: str, n: int, body: dict[str, Any] | None = None) -> list[str]:
        """Reply tokens: ``n`` of them for random/echo; the natural reply for choice/scripted/judge."""
        policy = self.cfg.policy
        if policy == "judge":
            truth = self.cfg.judge if self.cfg.judge is not None else JudgeTruth()
            return tokenize(judge_text(truth, self.cfg.seed, prompt, body or {}))
        if policy == "echo":
            return echo_tokens(prompt, n)
        rng = random.Random(prompt_seed(self.cfg.seed, prompt))
        if policy == "random":
            return random_tokens(rng, n)
        if policy == "choice":
            return tokenize(choice_text(rng, prompt))
        return tokenize(scripted_text(self.rules, self.cfg.script_default, prompt))

"""ArenaConfig: every option of ``evalscope arena``, declared once.

The click command (``cli/arena.py``) is generated from the fields' ``json_schema_extra`` (``cli``: the flag,
``kind``: str / int / float / flag / choice / list / map), like ``evalscope perf`` from PerfConfig, so the
command line, YAML / JSON configs and ``run_task({"eval_type": "arena", ...})`` cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from evalscope.options import read_config_file, validate_config

Mode = Literal["single", "pairwise-baseline", "pairwise-all"]
PositionBias = Literal["swap", "random", "none"]


def _x(cli: str, kind: str, metavar: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"cli": cli, "kind": kind}
    if metavar:
        out["metavar"] = metavar
    return out


class ArenaConfig(BaseModel):
    """Settings of one arena run."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Mode = Field(
        "pairwise-all",
        description="single: grade each answer 1-10; pairwise-baseline: every model against --baseline; "
        "pairwise-all: every pair.",
        json_schema_extra=_x("--mode", "choice"),
    )
    models: list[str] = Field(
        default_factory=list,
        description="Candidates that answer the questions: NAME=URL[,key=KEY][,model=SERVED] (URL 'sim': the "
        "built-in simulator). Answers are journaled per model and never regenerated on resume.",
        json_schema_extra=_x("--models", "list", "NAME=URL"),
    )
    answers: list[str] = Field(
        default_factory=list,
        description="Answer files, one JSONL per model (question_id, model, answer); the model name comes "
        "from the field or the file name.",
        json_schema_extra=_x("--answers", "list", "FILE"),
    )
    questions: str | None = Field(
        None,
        description="Question set (JSONL: question_id, question, optional category, reference); default: "
        "the built-in MT-Bench-style set of 16.",
        json_schema_extra=_x("--questions", "str", "FILE"),
    )
    limit: int | None = Field(
        None, ge=1, description="Use only the first N questions.", json_schema_extra=_x("--limit", "int")
    )
    baseline: str | None = Field(
        None,
        description="Baseline model of pairwise-baseline (default: the first candidate); also the rating "
        "anchor (1000). In pairwise-all the anchor is the first candidate unless this is given.",
        json_schema_extra=_x("--baseline", "str", "NAME"),
    )
    judge_model: str | None = Field(
        None, description="Judge model name.", json_schema_extra=_x("--judge-model", "str", "NAME")
    )
    judge_api_url: str | None = Field(
        None,
        description="Judge endpoint (OpenAI-compatible). Without it the built-in simulator judges (the "
        "--sim-* options set its hidden truth).",
        json_schema_extra=_x("--judge-api-url", "str", "URL"),
    )
    judge_api_key: SecretStr | None = Field(
        None,
        description="Judge API key (never saved).",
        json_schema_extra=_x("--judge-api-key", "str", "KEY"),
    )
    judge_prompt: str | None = Field(
        None,
        description="File with a judge prompt template overriding the built-in one (see docs/arena.md).",
        json_schema_extra=_x("--judge-prompt", "str", "FILE"),
    )
    position_bias: PositionBias = Field(
        "swap",
        description="swap: judge every pair in both orders; random: one random order; none: fixed order "
        "(first model shown first).",
        json_schema_extra=_x("--position-bias", "choice"),
    )
    strong_weight: float = Field(
        1.0,
        ge=1,
        description="Weight of a strong verdict (A>>B) against a plain one; Arena-Hard uses 3.",
        json_schema_extra=_x("--strong-weight", "float"),
    )
    bootstrap: int = Field(
        100,
        ge=0,
        description="Bootstrap rounds for the intervals (0: none).",
        json_schema_extra=_x("--bootstrap", "int"),
    )
    ci_level: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Confidence level of the intervals.",
        json_schema_extra=_x("--ci-level", "float"),
    )
    seed: int = Field(
        42, description="Seed of position draws and bootstrap.", json_schema_extra=_x("--seed", "int")
    )
    eval_batch_size: int = Field(
        32,
        ge=1,
        description="Requests in flight (judge calls, and answer generation).",
        json_schema_extra=_x("--eval-batch-size", "int"),
    )
    max_tokens: int = Field(
        512,
        ge=1,
        description="Answer length cap for --models candidates.",
        json_schema_extra=_x("--max-tokens", "int"),
    )
    judge_max_tokens: int = Field(
        1024, ge=1, description="Judge reply length cap.", json_schema_extra=_x("--judge-max-tokens", "int")
    )
    timeout: float = Field(
        300.0, gt=0, description="Per-request timeout (s).", json_schema_extra=_x("--timeout", "float")
    )
    work_dir: str = Field(
        "outputs",
        description="Where run directories are created.",
        json_schema_extra=_x("--work-dir", "str", "DIR"),
    )
    run_name: str | None = Field(
        None,
        description="Run directory name (default: a timestamp).",
        json_schema_extra=_x("--run-name", "str"),
    )
    resume: str | None = Field(
        None,
        description="Continue the run in DIR (<work-dir>/<run>): journaled answers and judgments are reused, "
        "nothing is sent twice.",
        json_schema_extra=_x("--resume", "str", "DIR"),
    )
    # the simulated judge's hidden truth (used only without --judge-api-url)
    sim_ratings: dict[str, float] = Field(
        default_factory=dict,
        description="Simulated judge: true rating per model (NAME=RATING ...; unlisted models get a stable "
        "rating from their name).",
        json_schema_extra=_x("--sim-ratings", "map", "NAME=RATING"),
    )
    sim_position_bias: float = Field(
        0.0,
        description="Simulated judge: logit favouring the answer shown first.",
        json_schema_extra=_x("--sim-position-bias", "float"),
    )
    sim_length_bias: float = Field(
        0.0,
        description="Simulated judge: logit per tanh(length difference / 100 tokens).",
        json_schema_extra=_x("--sim-length-bias", "float"),
    )
    sim_tie_rate: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Simulated judge: tie propensity.",
        json_schema_extra=_x("--sim-tie-rate", "float"),
    )
    sim_null_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Simulated judge: share of replies without a verdict.",
        json_schema_extra=_x("--sim-null-rate", "float"),
    )
    sim_latency_ms: float = Field(
        20.0,
        ge=0,
        description="Simulated judge: latency per call (ms).",
        json_schema_extra=_x("--sim-latency-ms", "float"),
    )
    quiet: bool = Field(False, description="No console leaderboard.", json_schema_extra=_x("--quiet", "flag"))
    debug: bool = Field(False, description="Show tracebacks.", json_schema_extra=_x("--debug", "flag"))

    @field_validator("models", "answers", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list | tuple):
            out: list[str] = []
            for item in v:
                out += [s for s in str(item).split() if s]
            return out
        return v

    @field_validator("sim_ratings", mode="before")
    @classmethod
    def _map(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split()
        if isinstance(v, list | tuple):
            out: dict[str, Any] = {}
            for item in v:
                for part in str(item).replace(",", " ").split():
                    k, eq, val = part.partition("=")
                    if not eq:
                        raise ValueError(f"expected NAME=RATING, got {part!r}")
                    out[k] = val
            return out
        return v

    @model_validator(mode="after")
    def _check(self) -> ArenaConfig:
        if (self.judge_api_url or self.judge_api_key) and not self.judge_model:
            raise ValueError("--judge-api-url / --judge-api-key need --judge-model")
        return self

    @property
    def simulated_judge(self) -> bool:
        return not self.judge_api_url

    def saved(self) -> dict[str, Any]:
        """The config as written into the run directory: no secrets (model keys, judge key)."""
        from evalscope.arena.questions import redact_spec

        d = self.model_dump(mode="json", exclude={"judge_api_key", "resume"})
        d["models"] = [redact_spec(s) for s in self.models]
        return d


def make_arena_config(values: Mapping[str, Any] | ArenaConfig | None = None, **kwargs: Any) -> ArenaConfig:
    """Validate into an ArenaConfig; ``eval_type`` (run_task's selector) is dropped; errors are one line."""
    if isinstance(values, ArenaConfig) and not kwargs:
        return values
    data: dict[str, Any] = {}
    if isinstance(values, ArenaConfig):
        data.update({k: getattr(values, k) for k in values.model_fields_set})
    elif values:
        data.update({str(k).replace("-", "_"): v for k, v in values.items()})
    data.update(kwargs)
    data.pop("eval_type", None)
    return validate_config(ArenaConfig, data)


def load_arena_file(path: str) -> dict[str, Any]:
    """A YAML or JSON arena config file as a dict (keys are field names; dashes allowed)."""
    data = read_config_file(path)
    return {str(k).replace("-", "_"): v for k, v in data.items()}

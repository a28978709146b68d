"""PerfConfig: every ``evalscope perf`` option declared once (default, bounds, help).

The click command in :mod:`evalscope.cli.perf` is generated from these fields, the Python API takes the same
model, and the saved run config is its redacted dump. Option names follow the original EvalScope ``perf``.
Validation happens here, before any network I/O: a bad value becomes one :class:`ConfigError` line naming
the option, the value and what is allowed (exit code 2).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from evalscope import options as opt

MetricProfile = Literal["default", "vllm"]

#: Goodput SLO names (ms) accepted by ``--goodput``.
SLO_METRICS: tuple[str, ...] = ("ttft", "ttfo", "tpot", "itl", "e2e")


def _cli(name: str | None = None, *, kind: str = "value", group: str = "", metavar: str | None = None) -> Any:
    """Field metadata read by the CLI generator: option name, kind (value | flag | list | map), help group."""
    extra: dict[str, Any] = {"cli": name, "kind": kind, "group": group}
    if metavar:
        extra["metavar"] = metavar
    return extra


def _split_list(v: Any) -> Any:
    if isinstance(v, str):
        return [p for p in v.replace(",", " ").split() if p]
    if isinstance(v, int | float):
        return [v]
    return v


class PerfConfig(BaseModel):
    """Configuration of one ``evalscope perf`` run (the CLI, config files and ``run_perf`` all use it)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)

    # ---- target
    url: str | None = Field(
        None,
        description="Endpoint: full path, a /v1 base or a bare host. Omitted: start the built-in simulator.",
        json_schema_extra=_cli("--url", group="target"),
    )
    model: str | None = Field(
        None,
        description="Model name sent in the body (default: the first model the server lists).",
        json_schema_extra=_cli("--model", group="target"),
    )
    api: str = Field(
        "openai",
        description="API protocol: openai | openai-completions | openai-embeddings | a plugin name.",
        json_schema_extra=_cli("--api", group="target"),
    )
    api_key: opt.ApiKey = None
    api_key_file: opt.ApiKeyFile = None
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra HTTP headers, one per argument: K=V or 'K: V' (the value may contain spaces).",
        json_schema_extra=_cli("--headers", kind="map", group="target", metavar="K=V"),
    )
    connect_timeout: float = Field(
        30.0,
        gt=0,
        description="TCP connect timeout (s).",
        json_schema_extra=_cli("--connect-timeout", group="target"),
    )
    read_timeout: float = Field(
        600.0,
        gt=0,
        description="Idle read timeout (s): longest gap between bytes before a stream counts as stalled.",
        json_schema_extra=_cli("--read-timeout", group="target"),
    )
    total_timeout: float | None = Field(
        None,
        gt=0,
        description="Whole-request timeout (s); none by default.",
        json_schema_extra=_cli("--total-timeout", group="target"),
    )
    transport: opt.Transport = "builtin"
    test_connection: bool = Field(
        True,
        description="Check the endpoint (reachability, key, path, model) before the run.",
        json_schema_extra=_cli("--test-connection/--no-test-connection", kind="flag", group="target"),
    )
    backend: Literal["api", "transformers", "vllm", "llama.cpp", "sglang", "swift"] = Field(
        "api",
        description="api: load --url (or the simulator). vllm | llama.cpp | sglang | swift: start that server "
        "for --model (a path, a GGUF file for llama.cpp) on a free 127.0.0.1 port, load it, stop it.",
        json_schema_extra=_cli("--backend", group="target"),
    )
    server_args: opt.ServerArgs = None
    server_bin: opt.ServerBin = None
    server_timeout: opt.ServerTimeout = 600.0

    # ---- load
    parallel: list[int] = Field(
        default_factory=lambda: [1],
        description="Concurrent requests (closed loop), or the concurrency cap with --rate. A list runs stages.",
        json_schema_extra=_cli("--parallel", kind="list", group="load", metavar="N..."),
    )
    number: list[int] | None = Field(
        None,
        description="Requests per stage, paired with --parallel (default 100, or unlimited with --duration).",
        json_schema_extra=_cli("--number", kind="list", group="load", metavar="N..."),
    )
    rate: float | None = Field(
        None,
        description="Open loop: requests per second (absolute-time arrivals); -1 or omitted: closed loop.",
        json_schema_extra=_cli("--rate", group="load"),
    )
    burstiness: float = Field(
        1.0,
        gt=0,
        description="Gamma shape of inter-arrival times with --rate: 1 Poisson, <1 burstier, >1 smoother.",
        json_schema_extra=_cli("--burstiness", group="load"),
    )
    constant_rate: bool = Field(
        False,
        description="With --rate: evenly spaced arrivals instead of random ones.",
        json_schema_extra=_cli("--constant-rate", kind="flag", group="load"),
    )
    ramp_up_strategy: Literal["linear", "exponential"] | None = Field(
        None,
        description="Open loop whose rate ramps from --ramp-up-start-rate to --ramp-up-end-rate over the stage's "
        "requests (vLLM's semantics; over --duration without --number). Replaces --rate.",
        json_schema_extra=_cli("--ramp-up-strategy", group="load"),
    )
    ramp_up_start_rate: float | None = Field(
        None,
        gt=0,
        description="Requests/s at the start of the ramp.",
        json_schema_extra=_cli("--ramp-up-start-rate", group="load"),
    )
    ramp_up_end_rate: float | None = Field(
        None,
        gt=0,
        description="Requests/s at the end of the ramp.",
        json_schema_extra=_cli("--ramp-up-end-rate", group="load"),
    )
    stage_list: list[dict[str, Any]] | None = Field(
        None,
        alias="stages",
        description='Stages as a list of {rate|parallel, duration[, number]}: JSON (\'[{"rate": 5, "duration": '
        "10}]'), a .json/.yaml file, or a 'stages:' list in --config. Replaces --parallel/--number lists.",
        json_schema_extra=_cli("--stage-list", group="load", metavar="JSON|FILE"),
    )
    time_scale: float = Field(
        1.0,
        gt=0,
        description="--dataset trace: multiply the trace's timestamps by this (0.5 replays twice as fast).",
        json_schema_extra=_cli("--time-scale", group="load"),
    )
    multi_turn: bool = Field(
        False,
        description="Each conversation is a session: its turns are sent in order with the growing history "
        "(the model's replies as assistant turns); --parallel sessions at a time, --number sessions.",
        json_schema_extra=_cli("--multi-turn", kind="flag", group="load"),
    )
    think_time: str | None = Field(
        None,
        description="With --multi-turn: seconds between a reply and the next turn: S, uniform:LO,HI or exp:MEAN.",
        json_schema_extra=_cli("--think-time", group="load", metavar="SPEC"),
    )
    duration: float | None = Field(
        None,
        gt=0,
        description="Seconds per stage (instead of or with --number); in-flight requests are then cancelled.",
        json_schema_extra=_cli("--duration", group="load"),
    )
    warmup: int = Field(
        0,
        ge=0,
        description="Requests sent before the first stage and not measured.",
        json_schema_extra=_cli("--warmup", group="load"),
    )
    sleep_interval: float = Field(
        5.0,
        ge=0,
        description="Seconds to sleep between stages.",
        json_schema_extra=_cli("--sleep-interval", group="load"),
    )
    seed: int = Field(
        0, description="Seed for prompts and arrival times.", json_schema_extra=_cli("--seed", group="load")
    )
    drain_timeout: float = Field(
        30.0,
        ge=0,
        description="On Ctrl-C / SIGTERM: seconds to let in-flight requests finish before cancelling them.",
        json_schema_extra=_cli("--drain-timeout", group="load"),
    )

    workers: int | Literal["auto"] = Field(
        1,
        description="Client worker processes, each with its own event loop (auto: sized from the load and "
        "the CPUs). 1: in-process.",
        json_schema_extra=_cli("--workers", group="load", metavar="N|auto"),
    )
    ray: str | None = Field(
        None,
        description="Run the workers as Ray actors (extra 'ray'); ADDRESS of a cluster, or none for a local "
        "instance. Default 2 workers.",
        json_schema_extra=_cli("--ray", kind="optional", group="load", metavar="[ADDRESS]"),
    )

    # ---- requests
    dataset: str = Field(
        "random",
        description="Prompt source: random | openqa | longalpaca | line_by_line | sharegpt | custom | trace | "
        "plugin.",
        json_schema_extra=_cli("--dataset", group="requests"),
    )
    dataset_path: Path | None = Field(
        None, description="Local dataset file.", json_schema_extra=_cli("--dataset-path", group="requests")
    )
    min_prompt_length: int | None = Field(
        None,
        ge=1,
        description="Minimum prompt tokens (random: lower bound of lengths; files: filter).",
        json_schema_extra=_cli("--min-prompt-length", group="requests"),
    )
    max_prompt_length: int | None = Field(
        None,
        ge=1,
        description="Maximum prompt tokens (random: upper bound of lengths; files: filter).",
        json_schema_extra=_cli("--max-prompt-length", group="requests"),
    )
    prefix_length: int = Field(
        0,
        ge=0,
        description="Tokens of a prefix shared by every random prompt (prefix caching).",
        json_schema_extra=_cli("--prefix-length", group="requests"),
    )
    trace_block_size: int = Field(
        512,
        ge=1,
        description="--dataset trace: tokens per hash_ids block (mooncake uses 512); one block id is one text.",
        json_schema_extra=_cli("--trace-block-size", group="requests"),
    )
    min_tokens: int | None = Field(
        None,
        ge=0,
        description="min_tokens sent in the body (vLLM extension).",
        json_schema_extra=_cli("--min-tokens", group="requests"),
    )
    max_tokens: int | None = Field(
        2048,
        ge=1,
        description="max_tokens sent in the body.",
        json_schema_extra=_cli("--max-tokens", group="requests"),
    )
    tokenizer_path: str | None = Field(
        None,
        description="Hugging Face tokenizer (path or id; needs transformers). Default: word count, as the simulator.",
        json_schema_extra=_cli("--tokenizer-path", group="requests"),
    )
    stream: bool = Field(
        True,
        description="Stream the response (needed for TTFT/ITL).",
        json_schema_extra=_cli("--stream/--no-stream", kind="flag", group="requests"),
    )
    temperature: float | None = Field(
        None,
        ge=0,
        description="Sampling temperature.",
        json_schema_extra=_cli("--temperature", group="requests"),
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Nucleus sampling top_p.",
        json_schema_extra=_cli("--top-p", group="requests"),
    )
    extra_args: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object merged into every request body last.",
        json_schema_extra=_cli("--extra-args", group="requests", metavar="JSON"),
    )
    prewarm: bool = Field(
        True,
        description="Open one keep-alive connection per concurrent slot before each stage, so TTFT excludes "
        "TCP handshakes (a long-running client's view).",
        json_schema_extra=_cli("--prewarm/--no-prewarm", kind="flag", group="requests"),
    )
    continuous_usage: bool = Field(
        False,
        description="Ask for usage in every chunk (vLLM extension): exact tokens per event for ITL.",
        json_schema_extra=_cli("--continuous-usage", kind="flag", group="requests"),
    )

    # ---- upstream EvalScope request options (folded into the body by evalscope.perf.upstream)
    prompt: str | None = Field(
        None,
        description="Send this one prompt in every request (text, or @FILE); instead of --dataset.",
        json_schema_extra=_cli("--prompt", group="requests"),
    )
    query_template: str | None = Field(
        None,
        description="Upstream's JSON body template: its fields (other than model/messages/prompt) are "
        "sent as with --extra-args.",
        json_schema_extra=_cli("--query-template", group="requests", metavar="JSON"),
    )
    stop: list[str] = Field(
        default_factory=list,
        description="Stop sequences sent in the body (several values allowed).",
        json_schema_extra=_cli("--stop", kind="list", group="requests", metavar="TEXT..."),
    )
    stop_token_ids: list[int] = Field(
        default_factory=list,
        description="stop_token_ids sent in the body (vLLM extension).",
        json_schema_extra=_cli("--stop-token-ids", kind="list", group="requests", metavar="ID..."),
    )
    frequency_penalty: float | None = Field(
        None,
        description="frequency_penalty sent in the body.",
        json_schema_extra=_cli("--frequency-penalty", group="requests"),
    )
    presence_penalty: float | None = Field(
        None,
        description="presence_penalty sent in the body.",
        json_schema_extra=_cli("--presence-penalty", group="requests"),
    )
    repetition_penalty: float | None = Field(
        None,
        description="repetition_penalty sent in the body (vLLM / SGLang extension).",
        json_schema_extra=_cli("--repetition-penalty", group="requests"),
    )
    top_k: int | None = Field(
        None,
        description="top_k sent in the body (vLLM / SGLang extension).",
        json_schema_extra=_cli("--top-k", group="requests"),
    )
    n_choices: int | None = Field(
        None,
        ge=1,
        description="Choices per request (body field n).",
        json_schema_extra=_cli("--n-choices", group="requests"),
    )
    logprobs: bool = Field(
        False,
        description="Ask for logprobs.",
        json_schema_extra=_cli("--logprobs", kind="flag", group="requests"),
    )
    log_every_n_query: int | None = Field(
        None,
        ge=1,
        description="Upstream's progress logging; accepted, the live view (or --no-live's end table) reports.",
        json_schema_extra=_cli("--log-every-n-query", group="output"),
    )
    no_timestamp: bool = Field(
        False,
        description="Name the run directory without the timestamp (OUTPUTS/NAME).",
        json_schema_extra=_cli("--no-timestamp", kind="flag", group="output"),
    )
    wandb_api_key: SecretStr | None = Field(
        None,
        description="Log the summary to Weights & Biases (needs `pip install wandb`). Never saved.",
        json_schema_extra=_cli("--wandb-api-key", group="output"),
    )
    swanlab_api_key: SecretStr | None = Field(
        None,
        description="Log the summary to SwanLab (needs `pip install swanlab`). Never saved.",
        json_schema_extra=_cli("--swanlab-api-key", group="output"),
    )

    # ---- metrics and output
    percentiles: list[float] = Field(
        default_factory=lambda: [50.0, 90.0, 95.0, 99.0, 99.9],
        description="Percentiles to print (the summary always has p50 p90 p95 p99 p999).",
        json_schema_extra=_cli("--percentiles", kind="list", group="output", metavar="P..."),
    )
    goodput: dict[str, float] = Field(
        default_factory=dict,
        description="SLOs in ms, e.g. ttft:500 tpot:50 e2e:10000 (metrics: ttft ttfo tpot itl e2e).",
        json_schema_extra=_cli("--goodput", kind="map", group="output", metavar="METRIC:MS"),
    )
    goodput_min_ratio: float = Field(
        0.99,
        ge=0,
        le=1,
        description="With --strict and --goodput: fail (exit 5) when fewer requests than this meet the SLOs.",
        json_schema_extra=_cli("--goodput-min-ratio", group="output"),
    )
    metric_profile: MetricProfile = Field(
        "default",
        description="Metric definitions: default (METRICS.md) or vllm (vLLM serving benchmark).",
        json_schema_extra=_cli("--metric-profile", group="output"),
    )
    server_metrics: str | None = Field(
        None,
        description="Scrape this Prometheus /metrics URL every second (vLLM, llama.cpp, SGLang gauges: running, "
        "waiting, KV-cache usage) into server_metrics.jsonl; min/mean/max per stage in the summary.",
        json_schema_extra=_cli("--server-metrics", group="output", metavar="URL"),
    )
    outputs_dir: Path = Field(
        Path("outputs"),
        description="Where run directories are created.",
        json_schema_extra=_cli("--outputs-dir", group="output"),
    )
    name: str | None = Field(
        None,
        description="Run name (part of the run directory name).",
        json_schema_extra=_cli("--name", group="output"),
    )
    save_responses: bool = Field(
        False,
        description="Keep generated text in records.jsonl.",
        json_schema_extra=_cli("--save-responses", kind="flag", group="output"),
    )
    max_error_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Abort (exit 4) when the error rate exceeds this (after 20 completed requests).",
        json_schema_extra=_cli("--max-error-rate", group="output"),
    )
    max_errors: int | None = Field(
        None,
        ge=1,
        description="Abort (exit 4) after this many failed requests.",
        json_schema_extra=_cli("--max-errors", group="output"),
    )
    strict: bool = Field(
        False,
        description="Exit 5 when the client was not trustworthy or the goodput SLOs were not met.",
        json_schema_extra=_cli("--strict", kind="flag", group="output"),
    )
    html: bool = Field(
        True,
        description="Write report.html (self-contained, offline) into the run directory at the end.",
        json_schema_extra=_cli("--html/--no-html", kind="flag", group="output"),
    )
    live: bool = Field(
        True,
        description="Live terminal view (off when stdout is not a terminal).",
        json_schema_extra=_cli("--live/--no-live", kind="flag", group="output"),
    )
    debug: opt.Debug = False

    # ---- capacity planning: sweeps, SLA search, repeats, resume (perf/sweep.py, perf/sla.py, perf/probe.py)
    sweep: int | None = Field(
        None,
        ge=1,
        description="Sweep: one stream, then max throughput (closed loop, --sweep-parallel), then N open-loop "
        "rates spaced between the two; reports the knee and the max sustainable rate.",
        json_schema_extra=_cli("--sweep", group="capacity", metavar="N"),
    )
    sweep_parallel: int = Field(
        64,
        ge=1,
        description="Concurrency of the sweep's max-throughput stage.",
        json_schema_extra=_cli("--sweep-parallel", group="capacity"),
    )
    sla_auto_tune: bool = Field(
        False,
        description="Search the largest --sla-variable value that meets --sla-params (bracket by doubling, "
        "then interpolate the SLO margin); results in summary.json under sla.",
        json_schema_extra=_cli("--sla-auto-tune", kind="flag", group="capacity"),
    )
    sla_variable: Literal["parallel", "rate"] = Field(
        "parallel",
        description="What the SLA search varies: parallel (closed loop) or rate (open loop, req/s).",
        json_schema_extra=_cli("--sla-variable", group="capacity"),
    )
    sla_params: list[dict[str, str]] | None = Field(
        None,
        description='SLOs as JSON: [{"p99_ttft": "<=500", "p99_tpot": "<=50"}, {"error_rate": "<=0.01"}] '
        "(AND inside a group, OR across groups; latencies in ms unless suffixed s/ms); or one "
        '{"tps": "max"} / {"goodput": "max"} to find the best value.',
        json_schema_extra=_cli("--sla-params", group="capacity", metavar="JSON"),
    )
    sla_repeats: int = Field(
        1,
        ge=1,
        description="Runs per SLA probe: a probe passes only if every run meets the SLA (mean and 95% "
        "interval reported).",
        json_schema_extra=_cli("--sla-repeats", group="capacity"),
    )
    sla_num_runs: int | None = Field(
        None,
        ge=1,
        description="Upstream EvalScope's name for --sla-repeats.",
        json_schema_extra=_cli("--sla-num-runs", group="capacity"),
    )
    sla_resolution: float = Field(
        0.02,
        gt=0,
        lt=1,
        description="Stop the SLA search when the failing value is within this fraction of the passing one "
        "(0.02 or 2%).",
        json_schema_extra=_cli("--sla-resolution", group="capacity"),
    )
    sla_lower_bound: float | None = Field(
        None,
        gt=0,
        description="Smallest value the SLA search tries (default 1).",
        json_schema_extra=_cli("--sla-lower-bound", group="capacity"),
    )
    sla_upper_bound: float | None = Field(
        None,
        gt=0,
        description="Largest value the SLA search tries (default 65536).",
        json_schema_extra=_cli("--sla-upper-bound", group="capacity"),
    )
    sla_fixed_parallel: int | None = Field(
        None,
        ge=1,
        description="Concurrency cap of open-loop SLA probes (--sla-variable rate); default: no cap.",
        json_schema_extra=_cli("--sla-fixed-parallel", group="capacity"),
    )
    sla_number_multiplier: float | None = Field(
        None,
        gt=0,
        description="Requests per SLA probe = value x this (at least --sla-min-requests).",
        json_schema_extra=_cli("--sla-number-multiplier", group="capacity"),
    )
    sla_min_requests: int | None = Field(
        None,
        ge=1,
        description="Least measured requests per probe (default: 2 beyond the highest percentile asked, "
        "e.g. 200 for p99, and at least 20).",
        json_schema_extra=_cli("--sla-min-requests", group="capacity"),
    )
    sla_warmup: int | None = Field(
        None,
        ge=0,
        description="Requests at the start of each probe left out of its metrics (default: one round, "
        "the parallel value, or one second of arrivals).",
        json_schema_extra=_cli("--sla-warmup", group="capacity"),
    )
    repeats: int = Field(
        1,
        ge=1,
        description="Run each stage N times: mean and 95% confidence interval per metric in the summary "
        "(compare runs with `evalscope perf compare A B`).",
        json_schema_extra=_cli("--repeats", group="capacity"),
    )
    resume: Path | None = Field(
        None,
        description="Continue a sweep / SLA / repeats run in this run directory (after Ctrl-C or a crash): "
        "its saved options are used and finished probes are not rerun.",
        json_schema_extra=_cli("--resume", group="capacity", metavar="RUN_DIR"),
    )

    # ---- validators ------------------------------------------------------------------------------------

    @field_validator("parallel", "number", "percentiles", mode="before")
    @classmethod
    def _lists(cls, v: Any) -> Any:
        return _split_list(v)

    @field_validator("parallel")
    @classmethod
    def _positive_parallel(cls, v: list[int]) -> list[int]:
        if not v or any(p < 1 for p in v):
            raise ValueError("each value must be an integer >= 1")
        return v

    @field_validator("number")
    @classmethod
    def _positive_number(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(n < 1 for n in v)):
            raise ValueError("each value must be an integer >= 1")
        return v

    @field_validator("percentiles")
    @classmethod
    def _pct(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < p < 100 for p in v):
            raise ValueError("each percentile must be between 0 and 100 (exclusive)")
        return sorted(set(v))

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, bool):
            try:
                f = float(v)
            except (TypeError, ValueError):
                return v
            if f == -1:
                return None
            if f <= 0:
                raise ValueError("must be > 0 requests/s (or -1 for closed loop)")
        return v

    @field_validator("stage_list", mode="before")
    @classmethod
    def _stage_list(cls, v: Any) -> Any:
        from evalscope.perf.shapes import parse_stage_list

        return parse_stage_list(v)

    @field_validator("think_time")
    @classmethod
    def _think_time(cls, v: str | None) -> str | None:
        if v is not None:
            from evalscope.perf.sessions import parse_think_time

            parse_think_time(v)
        return v

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v.strip().lower() == "auto":
                return "auto"
            try:
                v = int(v.strip())
            except ValueError:
                raise ValueError("must be an integer >= 1 or 'auto'") from None
        if isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise ValueError("must be an integer >= 1 or 'auto'")
        return v

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        return parse_headers(v)

    @field_validator("goodput", mode="before")
    @classmethod
    def _goodput(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace(",", " ").split()
        if isinstance(v, list | tuple):
            # one string may hold several pairs ("ttft:500 tpot:50", as the docs write it)
            v = [p for item in v for p in str(item).replace(",", " ").split()]
            out: dict[str, Any] = {}
            for item in v:
                k, sep, val = str(item).partition(":")
                if not sep:
                    k, sep, val = str(item).partition("=")
                if not sep:
                    raise ValueError(f"{item!r} is not METRIC:MS (e.g. --goodput ttft:500 tpot:50)")
                out[k.strip().lower()] = val
            v = out
        if isinstance(v, dict):
            for k, val in v.items():
                if k not in SLO_METRICS:
                    raise ValueError(f"unknown SLO metric {k!r}; allowed: {', '.join(SLO_METRICS)}")
                try:
                    if float(val) <= 0:
                        raise ValueError
                except (TypeError, ValueError):
                    raise ValueError(
                        f"{k}:{val} needs a positive number of milliseconds (syntax: METRIC:MS ..., "
                        "e.g. --goodput ttft:500 tpot:50)"
                    ) from None
        return v

    @field_validator("extra_args", mode="before")
    @classmethod
    def _extra(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
            if not isinstance(v, dict):
                raise ValueError("must be a JSON object")
        return v

    @field_validator("server_metrics")
    @classmethod
    def _server_metrics(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from evalscope.perf.servermetrics import metrics_url

        return metrics_url(v)

    @field_validator("api")
    @classmethod
    def _api(cls, v: str) -> str:
        from evalscope.engine.protocols.base import PROTOCOLS

        if v not in PROTOCOLS:
            raise ValueError(PROTOCOLS.unknown_message(v))
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str) -> str:
        from evalscope.perf.datasets import DATASETS

        if v not in DATASETS:
            raise ValueError(DATASETS.unknown_message(v))
        return v

    @field_validator("api", mode="before")
    @classmethod
    def _upstream_api(cls, v: Any) -> Any:
        from evalscope.compat_cli import map_perf_api

        return map_perf_api(v) if isinstance(v, str) else v

    @field_validator("stop", "stop_token_ids", mode="before")
    @classmethod
    def _stop_lists(cls, v: Any) -> Any:
        if isinstance(v, str | int):
            return [v]
        return v

    @field_validator("sla_params", mode="before")
    @classmethod
    def _sla_params(cls, v: Any) -> Any:
        from evalscope.perf.sla import normalise_sla_params

        return normalise_sla_params(v)

    @field_validator("sla_resolution", mode="before")
    @classmethod
    def _percent(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().endswith("%"):
            try:
                return float(v.strip()[:-1]) / 100
            except ValueError:
                return v
        return v

    @model_validator(mode="after")
    def _capacity(self) -> PerfConfig:
        from evalscope.perf.sla import check_capacity_options

        check_capacity_options(self)
        return self

    @model_validator(mode="after")
    def _upstream(self) -> PerfConfig:
        from evalscope.perf.upstream import apply_upstream_options

        apply_upstream_options(self)  # folds the options into this config in place
        return self

    @model_validator(mode="after")
    def _consistent(self) -> PerfConfig:
        if (
            self.number is not None
            and len(self.number) > 1
            and len(self.parallel) > 1
            and len(self.number) != len(self.parallel)
        ):
            raise ValueError(
                f"--number has {len(self.number)} values and --parallel {len(self.parallel)}; "
                "give one value or the same count"
            )
        if (
            self.min_prompt_length is not None
            and self.max_prompt_length is not None
            and self.min_prompt_length > self.max_prompt_length
        ):
            raise ValueError("--min-prompt-length must be <= --max-prompt-length")
        if self.min_tokens is not None and self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise ValueError("--min-tokens must be <= --max-tokens")
        if self.dataset != "random" and self.dataset_path is None:
            from evalscope.perf.datasets import DATASETS

            cls = DATASETS.get(self.dataset)
            if getattr(cls, "needs_path", False):
                raise ValueError(
                    f"--dataset {self.dataset} needs --dataset-path FILE (no hub download without a local file)"
                )
        self._check_shapes()
        if self.api_key_file is not None and not self.api_key_file.is_file():
            raise ValueError(f"--api-key-file {str(self.api_key_file)!r} does not exist")
        return self

    @model_validator(mode="after")
    def _managed(self) -> PerfConfig:
        """--backend: a managed server replaces --url; perf measures a server, so transformers is refused."""
        if self.backend == "api":
            return self
        if self.backend == "transformers":
            raise ValueError(
                "--backend transformers runs the model in-process, which perf cannot load-test; "
                "use --backend vllm (or llama.cpp, sglang, swift) to serve it"
            )
        if self.url is not None:
            raise ValueError(
                f"--url and --backend {self.backend} are mutually exclusive: the managed server is the endpoint "
                "(drop --url, or drop --backend to test a running server)"
            )
        if not self.model:
            raise ValueError(
                f"--backend {self.backend} needs --model (a model directory, hub id or GGUF file)"
            )
        from evalscope.servers.managed import split_server_args

        split_server_args(self.server_args)
        return self

    def _check_shapes(self) -> None:
        """Ramps, stage lists, traces and sessions: which combinations make sense (perf/shapes.py)."""
        ramp = (self.ramp_up_strategy, self.ramp_up_start_rate, self.ramp_up_end_rate)
        if any(x is not None for x in ramp) and any(x is None for x in ramp):
            raise ValueError(
                "a ramp needs all of --ramp-up-strategy, --ramp-up-start-rate and --ramp-up-end-rate"
            )
        has_ramp = self.ramp_up_strategy is not None
        if has_ramp and self.rate is not None:
            raise ValueError("--ramp-up-strategy replaces --rate: drop --rate")
        trace = self.dataset == "trace"
        if self.stage_list is not None:
            if has_ramp or trace or self.multi_turn:
                raise ValueError(
                    "--stage-list cannot be combined with a ramp, --dataset trace or --multi-turn; use one"
                )
            if self.rate is not None:
                raise ValueError("--stage-list sets each stage's rate: drop --rate")
            if len(self.parallel) > 1 or (self.number is not None and len(self.number) > 1):
                raise ValueError(
                    "--stage-list replaces --parallel/--number lists: give the stages in one place"
                )
        if trace and (has_ramp or self.rate is not None):
            raise ValueError("--dataset trace sends at the trace's own times: drop --rate / --ramp-up-*")
        if self.multi_turn:
            from evalscope.perf.datasets import DATASETS

            if not getattr(DATASETS.get(self.dataset), "multi_turn", False):
                raise ValueError(
                    f"--multi-turn needs a dataset of conversations (sharegpt), not --dataset {self.dataset}"
                )
            if has_ramp:
                raise ValueError("--multi-turn sessions cannot ramp: use --rate for session starts")
            if self.api == "openai-embeddings":
                raise ValueError("--multi-turn needs replies to send back: use a chat or completions --api")
        elif self.think_time is not None:
            raise ValueError("--think-time applies to --multi-turn sessions only: add --multi-turn")

    # ---- derived -------------------------------------------------------------------------------------

    def stages(self) -> list[tuple[int, int | None]]:
        """(parallel, number) per stage; number None means "until --duration"."""
        n_st = max(len(self.parallel), len(self.number or [1]))
        out: list[tuple[int, int | None]] = []
        for i in range(n_st):
            p = self.parallel[i] if len(self.parallel) > 1 else self.parallel[0]
            num: int | None
            if self.number is None:
                num = None if self.duration is not None else 100
            else:
                num = self.number[i] if len(self.number) > 1 else self.number[0]
            out.append((p, num))
        return out

    def prewarm_count(self, parallel: int, stage_rate: float | None = None) -> int:
        """Connections to open before a stage: one per closed-loop slot; about one second of arrivals in
        open loop (the rest open on demand; ``rate``: the stage's, for ramps and traces). 0 with --no-prewarm."""
        if not self.prewarm:
            return 0
        rate = self.rate if stage_rate is None else stage_rate
        cap = self.concurrency_cap(parallel, rate)
        if rate is not None:
            cap = min(cap, max(1, math.ceil(rate)))
        return min(cap, 1024)

    def concurrency_cap(self, parallel: int, stage_rate: float | None = None) -> int:
        """With --rate (or an open-loop stage's rate, a ramp, a trace) and no explicit --parallel, the cap is
        generous (pure open loop), else --parallel."""
        rate = self.rate if stage_rate is None else stage_rate
        open_loop = rate is not None or self.ramp_up_strategy is not None or self.dataset == "trace"
        if open_loop and "parallel" not in self.model_fields_set:
            return 100_000
        return parallel

    def resolve_api_key(self) -> str | None:
        """--api-key, then --api-key-file, then the environment (engine/credentials.py has the rule)."""
        from evalscope.engine.credentials import resolve_api_key

        return resolve_api_key(
            None if self.api_key is None else self.api_key.get_secret_value(), self.api_key_file
        )

    def public_dict(self) -> dict[str, Any]:
        """JSON-ready config with the key removed (redaction of other secrets happens on save)."""
        from evalscope.engine.redact import is_secret_key, redact_url

        d = self.model_dump(mode="json")
        d["url"] = redact_url(self.url)
        d["api_key"] = "***" if self.api_key is not None else None
        for key in ("wandb_api_key", "swanlab_api_key"):
            d[key] = "***" if getattr(self, key) is not None else None
        # any header whose name looks like a credential (Authorization, X-Api-Key, X-Auth-Token...) is masked
        d["headers"] = {k: ("***" if is_secret_key(k) else v) for k, v in self.headers.items()}
        return d


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)


def parse_headers(v: Any) -> Any:
    """``K=V`` or ``K: V`` items (one header each, the value may hold spaces) -> a dict of headers.

    A value is never echoed in an error (it is often a credential): messages name the header only. Values
    of credential-like headers are registered with the scrubber at once.
    """
    if isinstance(v, str):
        v = [v]
    if isinstance(v, dict):
        v = [f"{k}={val}" for k, val in v.items()]
    if not isinstance(v, list | tuple):
        return v
    from evalscope.engine.redact import is_secret_key, register_secret

    out: dict[str, str] = {}
    for i, item in enumerate(v):
        text = str(item).strip()
        if not text:
            continue
        eq, colon = text.find("="), text.find(":")
        cut = eq if colon < 0 or (0 <= eq < colon) else colon
        name = text[:cut].strip() if cut > 0 else ""
        value = text[cut + 1 :].strip() if cut > 0 else ""
        if not name:
            raise ValueError(f"header #{i + 1} is not K=V or 'K: V' (value not shown)")
        if not _HEADER_NAME.match(name):
            shown = name[:64] if name.isprintable() else name[:64].encode("unicode_escape").decode()
            raise ValueError(f"header name {shown!r} is not a valid HTTP header name (value not shown)")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name!r}: the value contains a line break or NUL (value not shown)")
        if is_secret_key(name) or name.lower() in ("x-api-key", "api-key", "cookie", "proxy-authorization"):
            register_secret(value)
            register_secret(value.split(" ", 1)[-1])
        out[name] = value
    return out


def option_name(field: str) -> str:
    """The CLI spelling of a config field (``max_tokens`` -> ``--max-tokens``)."""
    return opt.option_name(PerfConfig, field)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict (keys are field names; dashes allowed)."""
    return {str(k).replace("-", "_").lstrip("_"): v for k, v in opt.read_config_file(path).items()}


def make_config(values: Mapping[str, Any] | PerfConfig | None = None, **kwargs: Any) -> PerfConfig:
    """Validate ``values`` (+ ``kwargs``) into a PerfConfig; errors become one-line :class:`ConfigError`."""
    if isinstance(values, PerfConfig) and not kwargs:
        return values
    data: dict[str, Any] = {}
    if isinstance(values, PerfConfig):
        data.update({k: getattr(values, k) for k in values.model_fields_set})
    elif values:
        data.update(values)
    data.update(kwargs)
    return opt.validate_config(PerfConfig, data)

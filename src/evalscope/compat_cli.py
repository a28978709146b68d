"""Upstream EvalScope command-line names and values, mapped onto ours (the source of docs/compat.md).

Kept apart from the config modules so that the mapping is one table: ``perf``'s ``--api`` and ``eval``'s
``--eval-type`` consult :data:`PERF_API` / :data:`EVAL_TYPES`, and :func:`cli_rows` renders the option
tables from the same dictionaries. Import cost: nothing beyond the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

from evalscope.errors import ConfigError


@dataclass(frozen=True, slots=True)
class CompatRow:
    """One upstream flag or key, what it becomes here, and whether it works."""

    where: str  # perf | eval | python | dataset-args | generation-config
    upstream: str
    ours: str
    status: str  # same | mapped | ignored | refused
    note: str = ""


#: Upstream ``--api`` names -> (our protocol or "" when refused, note / reason).
PERF_API: dict[str, tuple[str, str]] = {
    "openai": ("openai", "chat completions"),
    "openai_completions": ("openai-completions", "legacy completions"),
    "openai_embedding": ("openai-embeddings", "embeddings"),
    "local": (
        "",
        "in-process model loading is not supported: serve the model (e.g. `vllm serve MODEL`) and pass --url",
    ),
    "local_vllm": (
        "",
        "the managed local vLLM server is not available yet: start `vllm serve MODEL` yourself and pass "
        "--url http://127.0.0.1:8000/v1",
    ),
    "dashscope": (
        "",
        "the native DashScope protocol is not implemented: use --api openai with "
        "--url https://dashscope.aliyuncs.com/compatible-mode/v1",
    ),
    "custom": (
        "",
        "upstream's example plugin; write a protocol plugin (entry point group evalscope.protocols) instead",
    ),
    "openai_rerank": ("", "rerank endpoints are not supported"),
    "openai_responses": ("", "the Responses API is not supported: use --api openai (chat completions)"),
}


def map_perf_api(value: str) -> str:
    """Our protocol name for an upstream ``--api`` value (unchanged when it is already ours)."""
    spec = PERF_API.get(value)
    if spec is None:
        return value
    ours, why = spec
    if not ours:
        raise ConfigError(f"--api {value} is not supported: {why}")
    return ours


#: Upstream ``--eval-type`` values -> (what happens, note).
EVAL_TYPES: dict[str, tuple[str, str]] = {
    "openai_api": ("service", "an OpenAI-compatible endpoint (--api-url)"),
    "service": ("service", "an OpenAI-compatible endpoint (--api-url)"),
    "server": ("service", "an OpenAI-compatible endpoint (--api-url)"),
    "checkpoint": ("local", "local weights: a model directory or hub id run here (see --backend)"),
    "llm_ckpt": ("local", "local weights: a model directory or hub id run here (see --backend)"),
    "mock_llm": ("simulator", "the built-in simulator (same as --simulator)"),
}


def map_eval_type(value: str | None) -> str | None:
    """``service``, ``simulator``, ``local``, or a ConfigError; None when not given."""
    if value is None:
        return None
    spec = EVAL_TYPES.get(value.strip().lower())
    if spec is None:
        import difflib

        close = difflib.get_close_matches(value, list(EVAL_TYPES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "allowed: " + ", ".join(EVAL_TYPES)
        raise ConfigError(f"--eval-type {value!r} is unknown", hint)
    kind, why = spec
    if not kind:
        raise ConfigError(f"--eval-type {value} is not supported: {why}")
    return kind  # "service" without --api-url: check_eval_target decides (a --model needs an endpoint)


#: Judge strategies upstream knows, all honoured: rule (metric), llm (judge), auto (judge when --judge-model is
#: given), llm_recall (rule, then the judge for answers the rule scored 0); see EvalConfig.judge_strategy.
JUDGE_STRATEGIES = ("rule", "auto", "llm", "llm_recall")


def check_judge_strategy(value: str | None) -> str | None:
    """The judge strategy, validated (None when not given)."""
    if value is None:
        return None
    v = str(value).strip().lower()
    if v not in JUDGE_STRATEGIES:
        raise ConfigError(f"judge_strategy {value!r} is unknown", "use one of " + ", ".join(JUDGE_STRATEGIES))
    return v


#: perf options: upstream flag -> (ours, status, note). "same" rows are the options spelled identically.
PERF_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--url": ("--url", "same", "a /v1 base or bare host also works; omitted: the built-in simulator"),
    "--model": ("--model", "same", "without --url refused (the simulator serves sim-model only)"),
    "--api": ("--api", "mapped", "see the --api values below"),
    "--api-key": ("--api-key", "same", "also $EVALSCOPE_API_KEY / $OPENAI_API_KEY / --api-key-file"),
    "--headers": ("--headers", "same", "K=V, space-separated"),
    "--connect-timeout": ("--connect-timeout", "same", ""),
    "--read-timeout": ("--read-timeout", "same", "idle time between bytes"),
    "--parallel": ("--parallel", "same", "several values run stages"),
    "-n / --number": ("-n / --number", "same", "paired with --parallel"),
    "--rate": ("--rate", "same", "-1: closed loop"),
    "--log-every-n-query": (
        "--log-every-n-query",
        "ignored",
        "accepted; the live view (or --no-live's table) reports",
    ),
    "--debug": ("--debug", "same", "tracebacks"),
    "--wandb-api-key": ("--wandb-api-key", "same", "needs `pip install wandb`, else refused with the hint"),
    "--swanlab-api-key": (
        "--swanlab-api-key",
        "same",
        "needs `pip install swanlab`, else refused with the hint",
    ),
    "--name": ("--name", "same", "run directory name"),
    "--outputs-dir": ("--outputs-dir", "same", ""),
    "--no-timestamp": ("--no-timestamp", "same", "run directory without the timestamp"),
    "--max-prompt-length": ("--max-prompt-length", "same", ""),
    "--min-prompt-length": ("--min-prompt-length", "same", ""),
    "--prefix-length": ("--prefix-length", "same", ""),
    "--prompt": ("--prompt", "same", "one fixed prompt (text, or @file)"),
    "--query-template": (
        "--query-template",
        "mapped",
        "JSON body template: its fields other than model/messages/prompt/stream are sent; %p must be whole",
    ),
    "--dataset": ("--dataset", "same", "random, openqa, longalpaca, line_by_line, speed_benchmark, ..."),
    "--dataset-path": (
        "--dataset-path",
        "same",
        "without it, openqa / longalpaca are fetched from ModelScope into the cache",
    ),
    "--tokenizer-path": ("--tokenizer-path", "same", ""),
    "--frequency-penalty": ("--frequency-penalty", "same", "sent in the body"),
    "--presence-penalty": ("--presence-penalty", "same", "sent in the body"),
    "--repetition-penalty": ("--repetition-penalty", "same", "extra body field (vLLM / SGLang)"),
    "--logprobs": ("--logprobs", "same", "sent in the body"),
    "--max-tokens": ("--max-tokens", "same", ""),
    "--min-tokens": ("--min-tokens", "same", "extra body field (vLLM)"),
    "--n-choices": ("--n-choices", "same", "body field n"),
    "--seed": ("--seed", "same", "seeds prompts and arrivals; not sent"),
    "--stop": ("--stop", "same", "several values allowed"),
    "--stop-token-ids": ("--stop-token-ids", "same", "extra body field (vLLM)"),
    "--stream / --no-stream": ("--stream / --no-stream", "same", "streaming is the default"),
    "--temperature": ("--temperature", "same", ""),
    "--top-p": ("--top-p", "same", ""),
    "--top-k": ("--top-k", "same", "extra body field (vLLM / SGLang)"),
    "--extra-args": ("--extra-args", "same", "JSON merged into the body"),
    "--sleep-interval": ("--sleep-interval", "same", ""),
    "--attn-implementation": ("-", "refused", "weights are not loaded here"),
}

#: eval options: upstream flag -> (ours, status, note).
EVAL_OPTIONS: dict[str, tuple[str, str, str]] = {
    "--model": (
        "--model",
        "same",
        "a served model name; a hub id / path needs --api-url (refused otherwise)",
    ),
    "--api-url": ("--api-url", "same", "`sim` (or --simulator): the built-in simulator"),
    "--api-key": ("--api-key", "same", ""),
    "--eval-type": ("--eval-type", "mapped", "see the --eval-type values below"),
    "--datasets": ("--datasets", "same", ""),
    "--dataset-args": ("--dataset-args", "same", "unknown keys are errors with did-you-mean"),
    "--dataset-dir": ("--dataset-dir", "same", ""),
    "--dataset-hub": ("--dataset-hub", "same", ""),
    "--generation-config": ("--generation-config", "mapped", "upstream names translated (table below)"),
    "--limit": ("--limit", "same", ""),
    "--eval-batch-size": ("--eval-batch-size", "same", "requests in flight"),
    "--work-dir": ("--work-dir", "same", ""),
    "--use-cache": ("--use-cache", "same", "a response cache directory"),
    "--seed": ("--seed", "same", ""),
    "--timeout": ("--sample-timeout", "mapped", "seconds per sample, all attempts"),
    "--stream": ("--stream", "same", "streaming is the default; --no-stream for whole responses"),
    "--dry-run": ("--dry-run", "same", "validate options and load data; no requests"),
    "--ignore-errors": ("-", "ignored", "failed samples are retried, counted and retried by --resume"),
    "--template-type": ("-", "ignored", "chat templates are applied by the server"),
    "--chat-template": ("-", "ignored", "chat templates are applied by the server"),
    "--model-args": ("-", "ignored", "no weights are loaded here"),
    "--analysis-report": ("-", "ignored", "no LLM-written analysis is produced"),
    "--judge-strategy": (
        "--judge-strategy",
        "mapped",
        "rule / llm / auto / llm_recall (general_qa; judge-scored benchmarks always use the judge)",
    ),
    "--judge-worker-num": ("-", "ignored", "judge calls share --eval-batch-size"),
    "--mem-cache": ("-", "ignored", "use --use-cache DIR"),
}


def cli_rows() -> list[CompatRow]:
    """The perf / eval rows of docs/compat.md."""
    rows = [CompatRow("perf", k, v[0], v[1], v[2]) for k, v in PERF_OPTIONS.items()]
    for name, (ours, why) in PERF_API.items():
        rows.append(
            CompatRow(
                "perf",
                f"--api {name}",
                f"--api {ours}" if ours else "-",
                "mapped" if ours else "refused",
                why,
            )
        )
    rows.append(
        CompatRow(
            "perf", "--dataset speed_benchmark", "--dataset speed_benchmark", "same", "fixed length ladder"
        )
    )
    rows += [CompatRow("eval", k, v[0], v[1], v[2]) for k, v in EVAL_OPTIONS.items()]
    for name, (kind, why) in EVAL_TYPES.items():
        rows.append(
            CompatRow("eval", f"--eval-type {name}", kind or "-", "mapped" if kind else "refused", why)
        )
    return rows

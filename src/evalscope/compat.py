"""Compatibility with the original EvalScope: one place that translates its names into ours.

Users arrive with upstream commands, YAML files and ``run_task`` dicts. Everything here is a pure function
over plain data so that the CLI, config files and the Python API share exactly one translation:

* :func:`translate_generation_config` - upstream / Hugging Face generation names -> OpenAI body fields;
* :func:`check_dataset_args` - the per-benchmark ``--dataset-args`` keys we honour, with did-you-mean;
* :func:`apply_prompt_template` - upstream's ``prompt_template`` / ``system_prompt`` on loaded samples;
* :data:`COMPAT` - the table (upstream flag or key -> ours -> status) that ``docs/compat.md`` is generated
  from (``python scripts/gen_compat_docs.py``; a test fails when the page is stale).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from evalscope.compat_cli import CompatRow
from evalscope.errors import ConfigError

# ----------------------------------------------------------------------------- generation config


#: Upstream / Hugging Face generation names renamed to the OpenAI field that means the same thing.
GEN_RENAMES: dict[str, str] = {
    "max_new_tokens": "max_tokens",
    "num_return_sequences": "n",
    "n_choices": "n",
    "stop_words": "stop",
    "stop_sequences": "stop",
}

#: Fields sent as they are: OpenAI ones, and extension fields vLLM / SGLang read from the body top level
#: (what the OpenAI SDK's ``extra_body`` produces).
GEN_PASSTHROUGH: tuple[str, ...] = (
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "response_format",
    "reasoning_effort",
    "max_completion_tokens",
    # extension fields (extra body)
    "top_k",
    "min_p",
    "min_tokens",
    "repetition_penalty",
    "stop_token_ids",
    "ignore_eos",
    "skip_special_tokens",
    "chat_template_kwargs",
    "extra_body",
)

#: Upstream keys that have no request field: refused with the reason (a silent drop would change results).
GEN_REFUSED: dict[str, str] = {
    "max_length": "it caps prompt + output tokens, which the OpenAI API cannot express; "
    "use max_tokens (or max_new_tokens) for the output cap",
    "num_beams": "beam search is not part of the OpenAI API",
}


def translate_generation_config(gen: Mapping[str, Any]) -> dict[str, Any]:
    """Return the OpenAI request fields for an upstream-style generation config.

    ``max_new_tokens`` -> ``max_tokens``, ``num_return_sequences`` -> ``n``, ``do_sample: false`` ->
    ``temperature: 0`` (greedy; an explicit temperature is overridden, as greedy decoding ignores it),
    ``do_sample: true`` -> nothing (sampling is the server's default), ``num_beams: 1`` -> nothing;
    an ``extra_body`` mapping is merged into the body top level. Unknown keys pass through (servers have
    extensions), but a key given twice under two names is an error.
    """
    out: dict[str, Any] = {}
    for key, value in gen.items():
        if key == "do_sample":
            if value is False or (isinstance(value, str) and value.lower() == "false"):
                out["temperature"] = 0
            continue
        if key == "num_beams" and value in (1, None):
            continue
        if key in GEN_REFUSED:
            raise ValueError(f"{key}={value!r} is not supported: {GEN_REFUSED[key]}")
        if key == "extra_body":
            if not isinstance(value, Mapping):
                raise ValueError("extra_body must be a mapping of body fields")
            for k, v in value.items():
                out[str(k)] = v
            continue
        target = GEN_RENAMES.get(key, key)
        if target != key and target in gen and gen[target] != value:
            raise ValueError(f"{key}={value!r} and {target}={gen[target]!r} both given; they are one setting")
        if target == "stop" and isinstance(value, str):
            value = [value]
        if target == "temperature" and "do_sample" in gen and gen["do_sample"] in (False, "false"):
            continue  # greedy wins
        out[target] = value
    return out


# ----------------------------------------------------------------------------- dataset args


#: Keys every benchmark honours (and what they do), plus upstream's names we translate.
DATASET_ARGS_COMMON: dict[str, str] = {
    "few_shot_num": "number of in-context examples",
    "few_shot_random": "sample the examples at random (seeded) instead of the first N",
    "few_shot_seed": "seed of few_shot_random",
    "few_shot_format": "inline | turns: examples in the prompt or as chat turns",
    "subset_list": "subsets to evaluate",
    "prompt_template": "template of the user message; {query} (or {question}) is the built prompt",
    "system_prompt": "a system message put before every prompt",
    "seed": "seed for shuffles",
    "allow_code_execution": "same as --allow-code-execution",
}

#: Benchmark-specific keys.
DATASET_ARGS_EXTRA: dict[str, tuple[str, ...]] = {
    "general_mcq": ("local_path", "dataset_path", "dataset_id", "language"),
    "general_qa": ("local_path", "dataset_path", "dataset_id", "language", "metric"),
    "ceval": ("split", "few_shot_explanations"),
    "truthful_qa": ("shuffle_options",),
    "humaneval": (
        "timeout",
        "memory_mb",
        "max_output_bytes",
        "sandbox_parallel",
        "allow_unisolated",
        "isolation",
        "k_list",
    ),
    "mbpp": (
        "timeout",
        "memory_mb",
        "max_output_bytes",
        "sandbox_parallel",
        "allow_unisolated",
        "isolation",
        "k_list",
        "variant",
        "split",
    ),
}

#: Upstream dataset-args keys we do not support, and why (refused rather than silently ignored).
DATASET_ARGS_REFUSED: dict[str, str] = {
    "metric_list": "each benchmark scores with its own fixed metric here (see docs/benchmarks.md)",
    "filters": "answer extraction is built into each benchmark (see docs/benchmarks.md)",
    "eval_split": "the evaluation split is fixed per benchmark (see docs/benchmarks.md)",
    "train_split": "few-shot examples come from the benchmark's dev split",
    "model_adapter": "there are no model adapters: every request is an OpenAI chat or completions call",
    "output_types": "there are no model adapters: every request is an OpenAI chat or completions call",
    "extra_params": "pass the benchmark's own keys directly (see docs/compat.md)",
    "query_template": "use prompt_template with {query}",
}


def known_dataset_args(bench: str, cls: type | None = None) -> tuple[str, ...]:
    """All keys ``--dataset-args`` accepts for ``bench`` (a benchmark class may add ``dataset_arg_keys``)."""
    own = tuple(getattr(cls, "dataset_arg_keys", ()) or ())
    return (*DATASET_ARGS_COMMON, *DATASET_ARGS_EXTRA.get(bench, ()), *own)


def check_dataset_args(bench: str, args: Mapping[str, Any], cls: type | None = None) -> dict[str, Any]:
    """Validate one benchmark's ``--dataset-args``; return them with upstream names translated.

    An unknown key is an error with a did-you-mean (a typo such as ``few_shot_nm`` must not silently run the
    default); ``dataset_id`` of ``general_mcq`` / ``general_qa`` is a local folder, as ``local_path``. A
    plugin benchmark that does not declare ``dataset_arg_keys`` gets its keys unchecked (we cannot know them).
    """
    known = known_dataset_args(bench, cls)
    checked = (
        cls is None
        or cls.__module__.startswith("evalscope.eval.benchmarks")
        or hasattr(cls, "dataset_arg_keys")
    )
    out: dict[str, Any] = {}
    for key, value in args.items():
        if not checked and key not in DATASET_ARGS_COMMON:
            out[key] = value
            continue
        if key in DATASET_ARGS_REFUSED:
            raise ConfigError(
                f"--dataset-args {bench}.{key} is not supported: {DATASET_ARGS_REFUSED[key]}",
                "remove it",
            )
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"--dataset-args {bench}: unknown key {key!r}", hint)
        if key == "dataset_id":
            if "local_path" in args:
                raise ConfigError(f"--dataset-args {bench}: give dataset_id or local_path, not both")
            key = "local_path"
        out[key] = value
    template = out.get("prompt_template")
    if template is not None and (
        not isinstance(template, str) or ("{query}" not in template and "{question}" not in template)
    ):
        raise ConfigError(
            f"--dataset-args {bench}.prompt_template must be a string containing {{query}}",
            'e.g. "Answer briefly.\\n{query}"',
        )
    return out


def apply_prompt_template(messages: list[dict[str, Any]], args: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Upstream's ``prompt_template`` (on the last user message) and ``system_prompt`` (prepended)."""
    template = args.get("prompt_template")
    system = args.get("system_prompt")
    if template is None and system is None:
        return messages
    out = [dict(m) for m in messages]
    if template is not None:
        for m in reversed(out):
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                text = m["content"]
                m["content"] = str(template).replace("{query}", text).replace("{question}", text)
                break
    if system is not None and not (out and out[0].get("role") == "system"):
        out.insert(0, {"role": "system", "content": str(system)})
    return out


# ----------------------------------------------------------------------------- eval target


def is_local_model_ref(model: str) -> bool:
    """A hub id (``org/name``) or a filesystem path, i.e. weights rather than a served model name."""
    from evalscope.localmodel import is_local_ref

    return is_local_ref(model)


def check_eval_target(
    model: str | None, api_url: str | None, simulator: bool, backend: str | None = None
) -> None:
    """Refuse to label a simulator run with a model that did not answer, and a contradictory backend.

    The built-in simulator answers only when no ``--model`` is given, or when it is asked for explicitly
    (``--simulator`` / ``--api-url sim``). A hub id or a local path without ``--api-url`` is run locally
    (``evalscope.localmodel.choose_backend``); a served model name without ``--api-url`` is refused.
    """
    from evalscope.localmodel import choose_backend

    chosen = choose_backend(backend, model, api_url, simulator)
    if chosen != "api" or api_url is not None or simulator or model is None:
        return
    from evalscope.eval.models.builtin import BUILTIN_MODEL

    if model == BUILTIN_MODEL:
        return
    if is_local_model_ref(model):
        raise ConfigError(
            f"--backend api with --model {model!r} (a hub id or local path) needs --api-url",
            "pass --api-url http://HOST:PORT/v1, or drop --backend api to run the weights here "
            "(--backend transformers)",
        )
    raise ConfigError(
        f"--model {model!r} is a model name but no --api-url was given, and it is no local path or hub id "
        "(org/name) whose weights could be run here",
        "serve it and pass --api-url http://HOST:PORT/v1, pass a model directory or hub id, "
        "or pass --simulator to score the built-in simulator",
    )


# ----------------------------------------------------------------------------- run_task seed keys


#: Seed-era run_task / YAML keys that mean nothing here, with the one-line reason printed when ignored.
TASK_KEYS_IGNORED: dict[str, str] = {
    "mem_cache": "use use_cache (a directory) for a response cache",
    "analysis_report": "no LLM-written analysis is produced",
    "judge_worker_num": "judge calls share --eval-batch-size",
    "ignore_errors": "failed samples are retried, journalled, counted in the report and retried by --resume",
    "outputs": "use work_dir",
}


#: Seed keys that configure a local model (--backend transformers / a managed server): ignored, with a notice,
#: when the model is an endpoint (``--api-url``), where the server owns templates, dtype and revision.
LOCAL_ONLY_KEYS: dict[str, str] = {
    "template_type": "chat templates are applied by the server (--api-url)",
    "chat_template": "chat templates are applied by the server (--api-url)",
    "model_args": "precision, device_map and revision belong to the server (--api-url)",
}


def local_only_notices(given: Mapping[str, Any]) -> list[str]:
    """One notice per local-model key given to a run whose model is an endpoint."""
    return [
        f"Note: {key!r} is accepted for compatibility and ignored: {why}."
        for key, why in LOCAL_ONLY_KEYS.items()
        if given.get(key) not in (None, False, {}, "")
    ]


def task_key_notice(key: str) -> str:
    """The one-line notice for an ignored seed key."""
    return f"Note: {key!r} is accepted for compatibility and ignored: {TASK_KEYS_IGNORED[key]}."


def normalize_seed_task(d: Mapping[str, Any], err: Any = None) -> dict[str, Any]:
    """Seed / upstream ``run_task`` keys -> EvalConfig keys: mapped, or dropped with a one-line notice.

    ``eval_type`` (service / openai_api / checkpoint / mock_llm), ``judge_strategy`` (validated),
    ``timeout`` -> ``sample_timeout_s``, ``dataset_hub`` and ``dry_run`` as they are; the keys of
    :data:`TASK_KEYS_IGNORED` are ignored with a notice on stderr.
    """
    import sys

    from evalscope.compat_cli import check_judge_strategy, map_eval_type

    stream = sys.stderr if err is None else err
    out = dict(d)
    if map_eval_type(out.pop("eval_type", None)) == "simulator":
        out["simulator"] = True
    strategy = check_judge_strategy(out.pop("judge_strategy", None))
    if strategy is not None:
        out["judge_strategy"] = strategy
    if isinstance(out.get("dataset_hub"), str):
        out["dataset_hub"] = out["dataset_hub"].lower()  # the seed wrote 'ModelScope'
    if "timeout" in out:
        value = out.pop("timeout")
        if value is not None:
            out.setdefault("sample_timeout_s", value)
    for key in TASK_KEYS_IGNORED:
        if key in out:
            value = out.pop(key)
            if value not in (None, False, {}, ""):
                print(task_key_notice(key), file=stream)
    return out


# ----------------------------------------------------------------------------- the table


def _gen_rows() -> list[CompatRow]:
    rows = [CompatRow("generation-config", k, v, "mapped") for k, v in GEN_RENAMES.items()]
    rows.append(CompatRow("generation-config", "do_sample: false", "temperature: 0", "mapped", "greedy"))
    rows.append(CompatRow("generation-config", "do_sample: true", "-", "mapped", "sampling is the default"))
    rows.append(CompatRow("generation-config", "num_beams: 1", "-", "mapped", "no beam search"))
    rows += [CompatRow("generation-config", k, "-", "refused", why) for k, why in GEN_REFUSED.items()]
    ext = ("top_k", "min_p", "min_tokens", "repetition_penalty", "stop_token_ids", "ignore_eos")
    rows += [CompatRow("generation-config", k, k, "same", "extra body field (vLLM / SGLang)") for k in ext]
    rows.append(CompatRow("generation-config", "extra_body: {...}", "merged into the body", "mapped"))
    return rows


def _dataset_rows() -> list[CompatRow]:
    rows = [CompatRow("dataset-args", k, k, "same", why) for k, why in DATASET_ARGS_COMMON.items()]
    rows.append(
        CompatRow(
            "dataset-args", "dataset_id", "local_path", "mapped", "general_mcq / general_qa: a local folder"
        )
    )
    rows.append(CompatRow("dataset-args", "local_path", "local_path", "same", "general_mcq / general_qa"))
    rows += [CompatRow("dataset-args", k, "-", "refused", why) for k, why in DATASET_ARGS_REFUSED.items()]
    return rows


def _task_rows() -> list[CompatRow]:
    rows = [
        CompatRow("python", "from evalscope import run_task", "same", "same"),
        CompatRow("python", "from evalscope.config import TaskConfig", "EvalConfig", "mapped"),
        CompatRow("python", "run_task(TaskConfig(...)) / dict / YAML path", "run_task", "same"),
        CompatRow("python", "eval_type", "-", "mapped", "see --eval-type"),
        CompatRow("python", "dataset_hub", "dataset_hub", "same"),
        CompatRow("python", "dry_run", "dry_run", "same", "validate and load data; no requests"),
        CompatRow(
            "python", "eval_backend", "eval_backend", "same", "Native, OpenCompass, VLMEvalKit, ThirdParty"
        ),
        CompatRow(
            "python", "eval_config", "eval_config", "same", "the backend's settings (docs/backends.md)"
        ),
    ]
    rows += [
        CompatRow(
            "python", "model_args", "model_args", "mapped", "local models: precision, device_map, revision"
        ),
        CompatRow(
            "python", "template_type", "template_type", "mapped", "local models without a tokenizer template"
        ),
        CompatRow(
            "python", "chat_template", "chat_template", "mapped", "local models: a Jinja template file"
        ),
    ]
    rows += [CompatRow("python", k, "-", "ignored", why) for k, why in TASK_KEYS_IGNORED.items()]
    return rows


#: Extra rows registered by the CLI modules' tables (perf options, eval options); see :func:`compat_rows`.
EXTRA_ROWS: list[CompatRow] = []


def compat_rows() -> list[CompatRow]:
    """Every row of the compatibility table, from the code that implements it."""
    from evalscope.compat_cli import cli_rows

    return [*cli_rows(), *_gen_rows(), *_dataset_rows(), *_task_rows(), *EXTRA_ROWS]


def render_compat_markdown() -> str:
    """docs/compat.md."""
    lines = [
        "# Compatibility with the original EvalScope",
        "",
        "Generated by `python scripts/gen_compat_docs.py` from `evalscope.compat` and `evalscope.compat_cli`;",
        "do not edit by hand (`tests/unit/core/test_compat.py` fails when this page is stale).",
        "",
        "Status: **same** works as upstream; **mapped** accepted and translated to our equivalent; **ignored**",
        "accepted with a one-line notice saying why; **refused** an error (exit 2) naming the reason.",
        "",
    ]
    titles = {
        "perf": "`evalscope perf` options",
        "eval": "`evalscope eval` / `python -m evalscope.run` options",
        "generation-config": "`--generation-config` keys (CLI JSON or k=v, YAML and `run_task` alike)",
        "dataset-args": "`--dataset-args` keys",
        "python": "Python API and `run_task` keys",
    }
    rows = compat_rows()
    for where, title in titles.items():
        sel = [r for r in rows if r.where == where]
        if not sel:
            continue
        lines += [f"## {title}", "", "| upstream | ours | status | note |", "|---|---|---|---|"]
        for r in sel:
            note = r.note.replace("|", "\\|")
            lines.append(f"| `{r.upstream}` | `{r.ours}` | {r.status} | {note} |")
        lines.append("")
    return "\n".join(lines)

"""Running an arena: answers (from files, or generated and journaled per model), planned judgments (cached
by key, journaled, never sent twice), then the report.

Candidates and the judge are eval :class:`~evalscope.eval.models.base.Model` objects (an ``ApiModel`` for a
URL, the built-in simulator otherwise), so the arena rides on the same engine, retries and concurrency gate
as ``evalscope eval``. Callers may pass their own ``judge`` (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from evalscope.arena.config import ArenaConfig, make_arena_config
from evalscope.arena.journal import Journal, judgment_key, read_lines
from evalscope.arena.questions import Question, load_answers, load_questions, parse_model_spec
from evalscope.arena.report import Planned, build_report
from evalscope.arena.simjudge import LocalSimJudge
from evalscope.arena.verdict import (
    load_templates,
    pairwise_prompt,
    parse_pairwise,
    parse_single,
    single_prompt,
)
from evalscope.errors import ConfigError, EndpointError
from evalscope.eval.models.base import Model

SIM_JUDGE = "sim-judge"
SIM_JUDGE_ENDPOINT = "builtin-sim-judge"


@dataclass(slots=True)
class ArenaResult:
    """What a run produced."""

    run_dir: Path
    report: dict[str, Any]
    sent: int  # judge requests sent by this process
    errors: int  # judgments whose every attempt failed at the endpoint (not journaled; retried on resume)


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _run_dir(cfg: ArenaConfig) -> Path:
    if cfg.resume:
        rd = Path(cfg.resume)
        if not (rd / "arena" / "config.json").is_file():
            raise ConfigError(
                f"--resume {cfg.resume!r} is not an arena run directory", "pass <work-dir>/<run>"
            )
        return rd
    base = Path(cfg.work_dir)
    base.mkdir(parents=True, exist_ok=True)
    name = cfg.run_name or datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    for i in range(1000):
        cand = base / (name if i == 0 else f"{name}_{i}")
        try:
            (cand / "arena").mkdir(parents=True)
            return cand
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a run directory below {base}")


def _resumed_config(cfg: ArenaConfig) -> ArenaConfig:
    """The saved config of ``--resume``, with the options given now on top (keys are never saved)."""
    assert cfg.resume
    saved = orjson.loads((Path(cfg.resume) / "arena" / "config.json").read_bytes())
    data = dict(saved)
    for k in cfg.model_fields_set:
        data[k] = getattr(cfg, k)
    if cfg.judge_api_key is not None:
        data["judge_api_key"] = cfg.judge_api_key
    # the saved model specs lost their keys: take the given ones when they name the same models
    if "models" not in cfg.model_fields_set:
        data["models"] = saved.get("models", [])
    data["resume"] = cfg.resume
    return make_arena_config(data)


def _truth(cfg: ArenaConfig) -> Any:
    from evalscope.sim.judge import JudgeTruth

    return JudgeTruth(
        ratings=dict(cfg.sim_ratings),
        position_bias=cfg.sim_position_bias,
        length_bias=cfg.sim_length_bias,
        tie_rate=cfg.sim_tie_rate,
        null_rate=cfg.sim_null_rate,
    )


def _start_sim(settings: dict[str, Any]) -> Any:
    from evalscope.sim import SimConfig, SimProcess

    return SimProcess(SimConfig(**settings)).start()


class _Closer:
    """Models and simulator processes this run started (closed in reverse)."""

    def __init__(self) -> None:
        self.models: list[Model] = []
        self.procs: list[Any] = []

    async def aclose(self) -> None:
        for m in reversed(self.models):
            await m.aclose()
        for p in reversed(self.procs):
            p.stop()


async def _build_judge(cfg: ArenaConfig, closer: _Closer) -> tuple[Model, dict[str, Any]]:
    from evalscope.engine.redact import redact_url, register_secret
    from evalscope.engine.session import Timeouts
    from evalscope.eval.models.api import ApiModel

    timeouts = Timeouts(read_s=cfg.timeout, total_s=cfg.timeout)
    if cfg.simulated_judge:
        truth = _truth(cfg)
        loop = asyncio.get_running_loop()
        name = cfg.judge_model or SIM_JUDGE
        proc = await loop.run_in_executor(
            None,
            _start_sim,
            {
                "policy": "judge",
                "judge": truth,
                "models": [name],
                "ttft_ms": cfg.sim_latency_ms,
                "itl_ms": 0.0,
                "seed": cfg.seed,
            },
        )
        closer.procs.append(proc)
        judge: Model = ApiModel(
            str(proc.url),
            name,
            concurrency=cfg.eval_batch_size,
            stream=False,
            endpoint_id=SIM_JUDGE_ENDPOINT,
            timeouts=timeouts,
        )
        digest = hashlib.sha256(truth.model_dump_json().encode()).hexdigest()[:12]
        info = {"model": name, "endpoint": SIM_JUDGE_ENDPOINT, "simulated": True, "truth": digest}
    else:
        key = cfg.judge_api_key.get_secret_value() if cfg.judge_api_key is not None else None
        if key:
            register_secret(key)
        assert cfg.judge_model and cfg.judge_api_url
        judge = ApiModel(
            cfg.judge_api_url,
            cfg.judge_model,
            api_key=key,
            concurrency=cfg.eval_batch_size,
            stream=False,
            timeouts=timeouts,
        )
        info = {"model": cfg.judge_model, "endpoint": redact_url(cfg.judge_api_url), "simulated": False}
    closer.models.append(judge)
    return judge, info


async def _generate_answers(
    cfg: ArenaConfig, questions: list[Question], arena_dir: Path, closer: _Closer
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, int]], list[str]]:
    """Answers of the ``--models`` candidates: journaled ones reused, the missing ones generated now."""
    from evalscope.engine.redact import register_secret
    from evalscope.eval.models.api import ApiModel

    answers: dict[str, dict[str, str]] = {}
    usage: dict[str, dict[str, int]] = {}
    order: list[str] = []
    specs = [parse_model_spec(s) for s in cfg.models]
    sim_names = [n for n, url, _ in specs if url == "sim"]
    sim_url = None
    if sim_names:
        loop = asyncio.get_running_loop()
        served = [o.get("model", n) for n, url, o in specs if url == "sim"]
        proc = await loop.run_in_executor(
            None,
            _start_sim,
            {
                "policy": "random",
                "models": served,
                "ttft_ms": 5.0,
                "itl_ms": 0.0,
                "output_tokens": 60,
                "output_dist": "uniform",
                "output_spread": 0.6,
                "seed": cfg.seed,
            },
        )
        closer.procs.append(proc)
        sim_url = str(proc.url)
    sem = asyncio.Semaphore(cfg.eval_batch_size)
    for name, url, opts in specs:
        if name in answers:
            raise ConfigError(f"--models: {name!r} given twice")
        order.append(name)
        journal = Journal(arena_dir / "answers" / f"{name}.jsonl")
        have = {str(e["question_id"]): e for e in journal.entries if isinstance(e.get("answer"), str)}
        answers[name] = {q: e["answer"] for q, e in have.items()}
        usage[name] = {
            "prompt_tokens": sum(int(e.get("prompt_tokens") or 0) for e in have.values()),
            "completion_tokens": sum(int(e.get("completion_tokens") or 0) for e in have.values()),
        }
        todo = [q for q in questions if q.question_id not in have]
        if not todo:
            journal.close()
            continue
        key = opts.get("key")
        if key:
            register_secret(key)
        model = ApiModel(
            str(sim_url) if url == "sim" else url,
            opts.get("model", name),
            api_key=key,
            concurrency=cfg.eval_batch_size,
            endpoint_id=None if url != "sim" else "builtin-sim",
        )
        closer.models.append(model)
        await model.start(check=True)

        async def one(
            q: Question, model: ApiModel = model, name: str = name, journal: Journal = journal
        ) -> str | None:
            async with sem:
                gen = await model.generate(
                    [{"role": "user", "content": q.question}],
                    {"max_tokens": cfg.max_tokens},
                    f"{name}-{q.question_id}",
                )
            if not gen.ok:
                return gen.error.kind if gen.error else "error"
            answers[name][q.question_id] = gen.text
            journal.append(
                {
                    "question_id": q.question_id,
                    "model": name,
                    "answer": gen.text,
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                    "latency_s": gen.latency_s,
                }
            )
            usage[name]["prompt_tokens"] += gen.prompt_tokens or 0
            usage[name]["completion_tokens"] += gen.completion_tokens or 0
            return None

        errs = [e for e in await asyncio.gather(*(one(q) for q in todo)) if e]
        journal.close()
        if errs:
            _log(
                f"Warning: {name}: {len(errs)} of {len(todo)} answers failed ({errs[0]}); rerun with --resume",
                cfg.quiet,
            )
    return answers, usage, order


def plan(
    cfg: ArenaConfig,
    questions: list[Question],
    models: list[str],
    answers: dict[str, dict[str, str]],
    judge_id: list[Any],
    baseline: str,
) -> list[Planned]:
    """Every judgment of the run, in the order the report walks them (question, pair, game)."""
    templates = load_templates(cfg.judge_prompt)
    version = templates.version
    out: list[Planned] = []
    for q in questions:
        if cfg.mode == "single":
            for m in models:
                ans = answers[m].get(q.question_id)
                if ans is None:
                    continue
                prompt = single_prompt(templates, q.question, q.reference, ans)
                key = judgment_key(
                    *judge_id, version, "single", q.question_id, q.question, q.reference, m, ans
                )
                out.append(Planned(key, q, m, None, 0, prompt, ans, None, {"model": m}))
            continue
        if cfg.mode == "pairwise-baseline":
            pairs = [(m, baseline) for m in models if m != baseline]
        else:
            pairs = [(models[i], models[j]) for i in range(len(models)) for j in range(i + 1, len(models))]
        for x, y in pairs:
            ax, ay = answers[x].get(q.question_id), answers[y].get(q.question_id)
            if ax is None or ay is None:
                continue
            if cfg.position_bias == "swap":
                orders = [(x, y, ax, ay), (y, x, ay, ax)]
            elif cfg.position_bias == "random":
                r = random.Random(f"{cfg.seed}\x00{q.question_id}\x00{x}\x00{y}")
                orders = [(x, y, ax, ay)] if r.random() < 0.5 else [(y, x, ay, ax)]
            else:
                orders = [(x, y, ax, ay)]
            for game, (a, b, aa, ab) in enumerate(orders):
                prompt = pairwise_prompt(templates, q.question, q.reference, aa, ab)
                key = judgment_key(
                    *judge_id, version, "pairwise", q.question_id, q.question, q.reference, a, aa, b, ab
                )
                out.append(Planned(key, q, a, b, game, prompt, aa, ab, {"a": a, "b": b}))
    return out


async def _judge_all(
    cfg: ArenaConfig, judge: Model, todo: list[Planned], journal: Journal, version: str, simulated: bool
) -> tuple[int, int]:
    """Send the judgments not yet journaled; returns (requests sent, judgments that errored)."""
    sem = asyncio.Semaphore(cfg.eval_batch_size)
    sent = 0
    errors = 0
    single = cfg.mode == "single"

    async def one(p: Planned) -> None:
        nonlocal sent, errors
        raws: list[str] = []
        result: str | int | None = None
        ptok = ctok = 0
        latency = 0.0
        attempts = 0
        async with sem:  # held across the retry: a judgment in flight is finished before a new one starts
            for attempt in (1, 2):  # an unparseable verdict is asked once more, then it is null
                params: dict[str, Any] = {"max_tokens": cfg.judge_max_tokens, "temperature": 0.0}
                if simulated:
                    params["metadata"] = {"evalscope_arena": {**p.meta, "attempt": attempt}}
                sent += 1
                gen = await judge.generate(
                    [{"role": "user", "content": p.prompt}], params, f"arena-{p.key[:16]}-{attempt}"
                )
                if not gen.ok:
                    errors += 1
                    return  # not journaled: asked again on resume
                attempts = attempt
                raws.append(gen.text)
                ptok += gen.prompt_tokens or 0
                ctok += gen.completion_tokens or 0
                latency += gen.latency_s or 0.0
                result = parse_single(gen.text) if single else parse_pairwise(gen.text)
                if result is not None:
                    break
        journal.append(
            {
                "key": p.key,
                "question_id": p.question.question_id,
                "category": p.question.category,
                "a": p.a,
                "b": p.b,
                "game": p.game,
                "verdict": None if single else result,
                "score": result if single else None,
                "attempts": attempts,
                "raw": raws,
                "prompt": p.prompt,
                "prompt_version": version,
                "latency_s": round(latency, 4),
                "prompt_tokens": ptok,
                "completion_tokens": ctok,
            }
        )

    await asyncio.gather(*(one(p) for p in todo))
    return sent, errors


async def arun_arena(cfg: ArenaConfig, judge: Model | None = None) -> ArenaResult:
    """Run (or resume) one arena; writes ``<run>/arena/{config.json, judgments.jsonl, report.json}``."""
    if cfg.resume:
        cfg = _resumed_config(cfg)
    if not cfg.models and not cfg.answers:
        raise ConfigError("no candidates", "pass --models NAME=URL ... or --answers A.jsonl B.jsonl ...")
    run_dir = _run_dir(cfg)
    arena_dir = run_dir / "arena"
    (arena_dir / "config.json").write_bytes(orjson.dumps(cfg.saved(), option=orjson.OPT_INDENT_2))
    questions = load_questions(cfg.questions, cfg.limit)
    closer = _Closer()
    t0 = time.perf_counter()
    try:
        answers, cand_usage, order = await _generate_answers(cfg, questions, arena_dir, closer)
        from_files = load_answers(cfg.answers) if cfg.answers else {}
        for m, a in from_files.items():
            if m in answers:
                raise ConfigError(f"model {m!r} has answers from --models and --answers", "give it once")
            answers[m] = a
            order.append(m)
        need = 1 if cfg.mode == "single" else 2
        if len(order) < need:
            raise ConfigError(f"--mode {cfg.mode} needs at least {need} models, got {len(order)}")
        baseline = cfg.baseline or order[0]
        if baseline not in answers:
            raise ConfigError(
                f"--baseline {baseline!r} is not a candidate", "candidates: " + ", ".join(order)
            )
        if judge is None:
            judge, jinfo = await _build_judge(cfg, closer)
            if cfg.simulated_judge:
                _log(
                    "No --judge-api-url: the built-in simulator judges (verdicts drawn from a hidden truth, "
                    "not a real evaluation).",
                    cfg.quiet,
                )
        else:
            jinfo = {
                "model": judge.name,
                "endpoint": judge.endpoint_id,
                "simulated": isinstance(judge, LocalSimJudge),
            }
        await judge.start(check=not jinfo.get("simulated"), check_model=True)
        # who wrote which answer goes only to our simulator (its judge policy needs it; a real judge is blind)
        client = getattr(judge, "client", None)
        to_sim = bool(jinfo.get("simulated")) or bool(client is not None and await client.identify())
        judge_id = [jinfo["model"], jinfo["endpoint"], jinfo.get("truth")]
        planned = plan(cfg, questions, order, answers, judge_id, baseline)
        version = load_templates(cfg.judge_prompt).version
        journal = Journal(arena_dir / "judgments.jsonl")
        entries = {str(e["key"]): e for e in journal.entries if "key" in e}
        todo = [p for p in planned if p.key not in entries]
        todo = list({p.key: p for p in todo}.values())  # a key planned twice is judged once
        if entries:
            _log(f"Resuming: {len(planned) - len(todo)} of {len(planned)} judgments journaled", cfg.quiet)
        tj = time.perf_counter()
        try:
            sent, errors = await _judge_all(cfg, judge, todo, journal, version, to_sim)
        finally:
            journal.close()
        judge_wall = time.perf_counter() - tj
        entries.update({str(e["key"]): e for e in read_lines(arena_dir / "judgments.jsonl")[0] if "key" in e})
        if todo and errors == len(todo) and sent:
            raise EndpointError(
                f"every judge call failed ({errors})", "check --judge-api-url and --judge-model"
            )
    finally:
        await closer.aclose()
    lengths = _lengths(answers, order)
    report = build_report(
        cfg.mode,
        planned,
        entries,
        order,
        answers,
        anchor=baseline,
        position_bias=cfg.position_bias,
        strong_weight=cfg.strong_weight,
        rounds=cfg.bootstrap,
        level=cfg.ci_level,
        seed=cfg.seed,
        judge={**jinfo, "prompt_version": version},
        lengths=lengths,
    )
    report["candidate_usage"] = cand_usage
    report["judge_errors"] = errors
    report["run"] = {
        "dir": str(run_dir),
        "wall_s": round(time.perf_counter() - t0, 3),
        "requests_sent": sent,
        "judging_wall_s": round(judge_wall, 3),
    }
    (arena_dir / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    if errors:
        _log(
            f"Warning: {errors} judgments failed at the judge endpoint; --resume {run_dir} retries them",
            cfg.quiet,
        )
    return ArenaResult(run_dir, report, sent, errors)


def _lengths(answers: dict[str, dict[str, str]], order: list[str]) -> dict[str, dict[str, int]]:
    from evalscope.tokens import count_tokens

    return {m: {q: count_tokens(a) for q, a in answers[m].items()} for m in order}


def run_arena(cfg: ArenaConfig | dict[str, Any], judge: Model | None = None) -> ArenaResult:
    """Blocking :func:`arun_arena` (accepts a dict of options too)."""
    c = cfg if isinstance(cfg, ArenaConfig) else make_arena_config(cfg)
    return asyncio.run(arun_arena(c, judge))

"""The eval runner: benchmarks -> lazily produced requests -> engine (with retries) -> scorer -> journal -> report.

Order of work (nothing touches the network before step 4):

1. validate the config, resolve benchmark names (did-you-mean), check code-execution consent;
2. load every benchmark's samples (dataset errors are one line, exit 2) and compute fingerprints;
3. create the run directory (never an existing one) or, with ``--resume``, reopen one and compare
   fingerprints (refuse with the difference unless ``--force``);
4. start the built-in simulator when no ``--api-url`` was given, run preflight;
5. dispatch every (sample, repeat) not already done, at most ``eval_batch_size`` in flight, journal each
   result as it completes; then aggregate from the journals and write reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import os
import pkgutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, TextIO
from urllib.parse import quote

import orjson

from evalscope import __version__
from evalscope.engine.redact import redact_url, register_secret, register_url_secrets, scrub
from evalscope.engine.retry import RetryPolicy
from evalscope.engine.session import Timeouts, normalize_url
from evalscope.errors import ConfigError, DatasetError, EndpointError, EvalscopeError
from evalscope.eval.benchmarks.base import BENCHMARKS, Benchmark, Sample, ScoreResult
from evalscope.eval.cache import ResponseCache
from evalscope.eval.config import EvalConfig, load_task_config, scrub_secrets
from evalscope.eval.journal import DONE, ERRORED, JournalWriter, latest_entries, read_journal
from evalscope.eval.models.api import ApiModel
from evalscope.eval.models.base import Generation, Model
from evalscope.eval.models.builtin import BUILTIN_ENDPOINT, BUILTIN_MODEL, BuiltinSimModel
from evalscope.eval.report import perf_fields
from evalscope.localmodel import local_identity
from evalscope.servers import MANAGED_BACKENDS

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


# ------------------------------------------------------------------------------------------- results


@dataclass(slots=True)
class EvalResult:
    """What ``run_eval`` returns: the run directory and every report (model -> benchmark -> report)."""

    run_dir: Path
    reports: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sent: int = 0
    skipped: int = 0
    errored: int = 0
    #: Benchmarks whose error rate exceeded --max-error-rate: the CLI exits 4 (see docs/eval.md).
    over_error_rate: list[str] = field(default_factory=list)

    def report(self, benchmark: str) -> dict[str, Any]:
        for by_bench in self.reports.values():
            if benchmark in by_bench:
                return by_bench[benchmark]
        raise KeyError(benchmark)


@dataclass(slots=True)
class _Task:
    """One benchmark in this run: the instance, its samples (in order) and its journal."""

    name: str
    bench: Benchmark
    samples: list[Sample]
    fingerprint: dict[str, Any]
    generation: dict[str, Any]
    writer: JournalWriter | None = None
    done: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    pending: int = 0
    finished: int = 0
    errored: int = 0


# ------------------------------------------------------------------------------------------- helpers


def _ensure_registered(names: list[str]) -> None:
    """Import benchmark modules so their ``@BENCHMARKS.register`` decorators ran."""
    if all(n in BENCHMARKS for n in names):
        return
    import evalscope.eval.benchmarks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        try:
            importlib.import_module(f"{pkg.__name__}.{info.name}")
        except ImportError as exc:  # a broken optional module must not hide the others
            log.debug("benchmark module %s not importable: %s", info.name, exc)


def _judge_mode(cls: type[Benchmark], strategy: str, has_judge: bool) -> str | None:
    """How a benchmark is scored: ``llm`` (by the judge), ``llm_recall`` (rule, then the judge for 0s), None
    (rule). Judge-scored benchmarks always use the judge; judge-capable ones (general_qa) follow the strategy."""
    if getattr(cls, "uses_judge", False):
        return "llm"
    if not getattr(cls, "judge_capable", False) or strategy == "rule":
        return None
    if strategy == "llm" or (strategy == "auto" and has_judge):
        return "llm"
    return "llm_recall" if strategy == "llm_recall" else None


def judge_usage(details: list[dict[str, Any]]) -> dict[str, int] | None:
    """The judge's own requests and tokens summed over samples' ``detail["judge"]`` (None: no judge used)."""
    found = [d["judge"] for d in details if isinstance(d.get("judge"), dict)]
    if not found:
        return None
    return {
        k: sum(int(j.get(k) or 0) for j in found) for k in ("requests", "prompt_tokens", "completion_tokens")
    }


def limit_samples(samples: list[Sample], limit: int) -> list[Sample]:
    """The first ``limit`` samples taken round-robin across subsets (each subset in dataset order), so a small
    ``--limit`` still covers every subset; the result keeps dataset order. Deterministic."""
    if limit >= len(samples):
        return samples
    by_subset: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_subset.setdefault(s.subset, []).append(i)
    if len(by_subset) == 1:
        return samples[:limit]
    chosen: list[int] = []
    queues = list(by_subset.values())
    depth = 0
    while len(chosen) < limit:
        for q in queues:
            if depth < len(q) and len(chosen) < limit:
                chosen.append(q[depth])
        depth += 1
    return [samples[i] for i in sorted(chosen)]


_HEAVY = ("prompt", "output", "reasoning")


def _light(entry: dict[str, Any]) -> dict[str, Any]:
    """A journal entry without the texts (kept on disk, not needed for aggregation)."""
    for k in _HEAVY:
        entry.pop(k, None)
    return entry


def _jsonable(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj, default=str, option=orjson.OPT_SORT_KEYS))


def _samples_hash(samples: list[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(orjson.dumps([s.id, s.messages, s.gold, s.subset], default=str))
    return h.hexdigest()


def _atomic_write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str))
    os.replace(tmp, path)


def server_fields(gen: Any) -> dict[str, Any]:
    """The server-reported numbers of one generation, for the endpoint performance block."""
    return {
        "prompt_tokens": gen.prompt_tokens,
        "cached_tokens": gen.cached_tokens,
        "reasoning_tokens": gen.reasoning_tokens,
        "timings": gen.timings,
    }


def _safe_name(name: str) -> str:
    from evalscope.eval.report import model_dir_name

    return model_dir_name(name)


def _new_run_dir(work_dir: Path, run_name: str | None) -> Path:
    """A fresh directory below ``work_dir``; an existing one is never reused (D4)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    base = run_name or datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    for i in range(10_000):
        cand = work_dir / (base if i == 0 else f"{base}_{i}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a new run directory below {work_dir}", "clean up --work-dir")


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints (``key: old -> new``)."""
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a != b:
            sa = orjson.dumps(a, option=orjson.OPT_SORT_KEYS).decode()[:120]
            sb = orjson.dumps(b, option=orjson.OPT_SORT_KEYS).decode()[:120]
            out.append(f"{k}: {sa} -> {sb}")
    return out


def _request_id(bench: str, sample_id: str, repeat: int) -> str:
    return quote(f"{bench}/{sample_id}/{repeat}", safe="/:-_.~")[:400]


def _check_data_available(cfg: EvalConfig, name: str, bench: Benchmark) -> None:
    """Without --dataset-dir, the benchmark's files come from --dataset-hub into the cache (eval/hub.py):
    used from there when a complete copy is cached, else downloaded (not when offline)."""
    if cfg.dataset_dir is not None or cfg.dataset_hub == "local":
        return
    if bench.args.get("local_path") or bench.args.get("dataset_path"):
        return  # the user's own files (general_mcq / general_qa)
    root = cfg.dataset_root()
    sub = bench.data_subdir
    if not sub or root is None:
        return
    from evalscope.eval.hub import ensure_dataset

    ensure_dataset(name, sub, cfg.dataset_hub, root)


# ------------------------------------------------------------------------------------------- runner


class EvalRunner:
    """One evaluation run; ``await runner.run()`` returns an :class:`EvalResult`.

    The runner knows models only through the :class:`Model` protocol. By default it builds them from the config
    (an :class:`ApiModel` for ``--api-url``, else the built-in simulator; an ``ApiModel`` judge for
    ``--judge-model``); callers embedding evalscope pass their own ``model`` / ``judge`` instead (started and
    closed by the runner). The judge reaches judge-scored benchmarks as an argument, never as an attribute.
    """

    def __init__(
        self,
        cfg: EvalConfig,
        out: TextIO | None = None,
        model: Model | None = None,
        judge: Model | None = None,
    ) -> None:
        self.cfg = cfg
        # results (the table) go to stdout, messages to stderr; ``out`` (tests, embedding) takes both
        self.out = out if out is not None else sys.stdout
        self.err = out if out is not None else sys.stderr
        self.tasks: list[_Task] = []
        self._judge_modes: dict[str, str | None] = {}
        self.run_dir: Path | None = None
        self.backend = cfg.resolved_backend() if model is None else "api"
        self.model_name = (
            model.name if model is not None else cfg.model or (BUILTIN_MODEL if cfg.api_url is None else "")
        )
        register_url_secrets(cfg.api_url)
        register_url_secrets(cfg.judge_api_url)
        try:
            # The endpoint's identity (fingerprints, cache keys, reports): never the credentials in its URL.
            self.endpoint_id = (
                model.endpoint_id
                if model is not None
                else local_identity(self.backend, self.model_name, cfg.model_args)[1]
                if self.backend != "api"
                else BUILTIN_ENDPOINT
                if cfg.api_url is None
                else redact_url(normalize_url(cfg.api_url, "/v1/chat/completions")) or ""
            )
        except ConfigError as exc:
            exc.message = exc.message.replace("--url", "--api-url")
            raise
        if model is None and self.backend in MANAGED_BACKENDS:
            from evalscope.eval.models.managed import managed_identity

            assert cfg.model is not None
            self.model_name, self.endpoint_id = managed_identity(self.backend, cfg.model, cfg.server_args)
        self.api_key = cfg.resolved_api_key()
        if self.api_key:
            register_secret(self.api_key)
        self.manifest: dict[str, Any] = {}
        self.model: Model | None = model
        self.cache: ResponseCache | None = None
        self.started = time.time()
        self._t0 = time.perf_counter()
        self._session_entries: list[dict[str, Any]] = []
        # requests of earlier sessions (--resume), read back from the journals
        self._past_entries: list[dict[str, Any]] = []
        self._stopping = False
        self._lock_fh: IO[str] | None = None
        self.judge: Model | None = judge

    def say(self, msg: str) -> None:
        if not self.cfg.quiet:
            print(scrub(msg), file=self.err, flush=True)

    # ---------------------------------------------------------------- preparation (no network)

    def prepare(self) -> None:
        cfg = self.cfg
        _ensure_registered(cfg.datasets)
        classes: list[tuple[str, type[Benchmark]]] = [(n, BENCHMARKS.get(n)) for n in cfg.datasets]
        for name, cls in classes:
            if getattr(cls, "needs_code_execution", False) and not cfg.allow_code_execution:
                raise ConfigError(
                    f"benchmark {name!r} runs model-generated code",
                    "pass --allow-code-execution to run it in the sandbox",
                )
        has_judge = bool(cfg.judge_model) or self.judge is not None
        strategy = cfg.judge_strategy or "auto"
        if strategy in ("llm", "llm_recall") and not has_judge:
            raise ConfigError(
                f"--judge-strategy {strategy} needs a judge", "pass --judge-model (and --judge-api-url)"
            )
        self._judge_modes = {name: _judge_mode(cls, strategy, has_judge) for name, cls in classes}
        judged = [name for name, mode in self._judge_modes.items() if mode is not None]
        if has_judge and not judged:
            raise ConfigError(
                f"--judge-model: none of the benchmarks {', '.join(cfg.datasets)} is judge-scored, "
                "so the judge would never be called",
                "remove --judge-model / --judge-api-url / --judge-api-key (these benchmarks are scored by rule)",
            )
        if judged and not has_judge:
            raise ConfigError(
                f"benchmark {judged[0]!r} is scored by a judge model",
                "pass --judge-model (and --judge-api-url)",
            )
        if self.backend == "api":
            from evalscope.compat import local_only_notices

            for note in local_only_notices(
                cfg.model_dump(include={"template_type", "chat_template", "model_args"})
            ):
                self.say(note)
        root = cfg.dataset_root()
        from evalscope.compat import apply_prompt_template, check_dataset_args

        for name, cls in classes:
            bench_args = check_dataset_args(name, cfg.benchmark_args(name), cls)
            bench = cls(root, bench_args)
            _check_data_available(cfg, name, bench)
            samples = bench.load()
            if "prompt_template" in bench_args or "system_prompt" in bench_args:
                for s in samples:
                    s.messages = apply_prompt_template(s.messages, bench_args)
            if not samples:
                raise DatasetError(
                    f"benchmark {name!r} loaded no samples", "check --dataset-args subset_list"
                )
            ids = [s.id for s in samples]
            if len(set(ids)) != len(ids):
                raise DatasetError(
                    f"benchmark {name!r} has duplicate sample ids", "sample ids must be unique"
                )
            if cfg.limit is not None:
                samples = limit_samples(samples, cfg.limit)
            gen = {**dict(getattr(cls, "default_generation", {}) or {}), **cfg.generation_config}
            files = bench.data_files()
            data_hash = bench.data_hash() if files else _samples_hash(samples)
            args = {k: v for k, v in cfg.benchmark_args(name).items() if k != "allow_code_execution"}
            fp = {
                "model": self.model_name,
                "endpoint": self.endpoint_id,
                "api": cfg.api,
                "benchmark": name,
                "version": str(getattr(cls, "version", "1")),
                "data_hash": data_hash,
                "generation": _jsonable(gen),
                "args": _jsonable(args),
                "few_shot": bench.few_shot_num,
                "subsets": list(bench.subset_list),
            }
            parts = bench.parts()
            if parts:
                fp["parts"] = parts  # loader / prompt / scorer name@version
            if self.judge is not None:
                fp["judge"] = {"model": self.judge.name, "endpoint": self.judge.endpoint_id}
            elif cfg.judge_model:
                fp["judge"] = {
                    "model": cfg.judge_model,
                    "endpoint": redact_url(cfg.judge_api_url) or self.endpoint_id,
                }
            if self._judge_modes.get(name) is not None:
                fp["judge_mode"] = self._judge_modes[name]
            self.tasks.append(_Task(name, bench, samples, fp, gen))
            if not cls.needs_code_execution:
                # Warm lazy imports (sympy...) now: doing it on the first answer would stall the event loop
                # while other requests stream, and inflate their measured TTFT.
                try:
                    for probe in ("ANSWER: A \\boxed{1}", "ANSWER: B \\boxed{\\frac{x}{2}+\\sqrt{3}}"):
                        bench.score(samples[0], probe)
                except Exception as exc:  # noqa: BLE001 - warming only; real scoring reports its own errors
                    log.debug("warm-up scoring of %s failed: %s", name, exc)

    def open_run_dir(self) -> None:
        cfg = self.cfg
        if cfg.resume is not None:
            rd = cfg.resume
            mpath = rd / MANIFEST
            if not mpath.is_file():
                raise ConfigError(
                    f"--resume {str(rd)!r}: not a run directory (no {MANIFEST})",
                    "pass the directory of an earlier run, e.g. outputs/20260101_120000",
                )
            try:
                old = orjson.loads(mpath.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"--resume {str(rd)!r}: {MANIFEST} is unreadable ({exc})") from None
            self.manifest = old
            if not self.model_name and old.get("model"):
                self.model_name = str(old["model"])  # adopted from the server in the earlier session
                for t in self.tasks:
                    t.fingerprint["model"] = self.model_name
            old_fps: dict[str, Any] = old.get("fingerprints", {})
            diffs: list[str] = []
            for t in self.tasks:
                prev = old_fps.get(t.name)
                if prev is None:
                    continue
                cur = t.fingerprint
                if "parts" not in prev:  # recorded before benchmarks declared their parts: not a difference
                    cur = {k: v for k, v in cur.items() if k != "parts"}
                diffs += [f"{t.name}.{d}" for d in fingerprint_diff(prev, cur)]
            if diffs and not cfg.force:
                raise ConfigError(
                    "--resume refused: the configuration differs from the earlier run: "
                    + "; ".join(diffs[:8]),
                    "use the same settings, or --force to resume anyway",
                )
            if diffs:
                self.say(
                    "Warning: resuming with a different configuration (--force): " + "; ".join(diffs[:8])
                )
            self.run_dir = rd
            self.manifest.setdefault("sessions", []).append({"started": self.started, "resumed": True})
        else:
            self.run_dir = _new_run_dir(cfg.work_dir, cfg.run_name)
            self.manifest = {"sessions": [{"started": self.started, "resumed": False}]}
        self.manifest.update(
            {
                "status": "running",
                "evalscope_version": __version__,
                "python": sys.version.split()[0],
                "config": self.cfg.redacted_dict(),
                "fingerprints": {
                    **self.manifest.get("fingerprints", {}),
                    **{t.name: t.fingerprint for t in self.tasks},
                },
                "started": self.manifest.get("started", self.started),
            }
        )
        assert self.run_dir is not None
        self._lock_run_dir(self.run_dir)
        self.write_manifest()
        for t in self.tasks:
            path = self.run_dir / "journal" / f"{t.name}.jsonl"
            entries, _ = read_journal(path)
            self._past_entries.extend(perf_fields(e) for e in entries if not e.get("cached"))
            t.done = {k: _light(e) for k, e in latest_entries(entries).items()}
            del entries
            t.writer = JournalWriter(path).open()

    def _lock_run_dir(self, run_dir: Path) -> None:
        """Hold an exclusive lock on the run directory: two processes must never append to one journal."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not on POSIX
            return
        fh = open(run_dir / ".lock", "a+")  # noqa: SIM115 - held until the process ends or run() finishes
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise ConfigError(
                f"run directory {str(run_dir)!r} is in use by another evalscope process",
                "wait for it to finish, or stop it first",
            ) from None
        self._lock_fh = fh

    def _unlock(self) -> None:
        fh = getattr(self, "_lock_fh", None)
        if fh is not None:
            fh.close()
            self._lock_fh = None

    def write_manifest(self) -> None:
        if self.run_dir is None:
            return
        _atomic_write_json(self.run_dir / MANIFEST, scrub_secrets(self.manifest))

    # ---------------------------------------------------------------- endpoint

    def _policy(self) -> RetryPolicy:
        cfg = self.cfg
        return RetryPolicy(
            max_attempts=cfg.max_attempts,
            base_delay_s=cfg.retry_backoff_s,
            max_delay_s=cfg.retry_max_backoff_s,
            retry_after_cap_s=cfg.retry_after_cap_s,
            deadline_s=cfg.sample_timeout_s,
        )

    def _build_model(self) -> Model:
        """The model the config describes: weights run by a local backend, the endpoint at --api-url, else the
        built-in simulator."""
        cfg = self.cfg
        if self.backend != "api" and self.backend not in MANAGED_BACKENDS:
            from evalscope.eval.models.local import build_local_model

            return build_local_model(self.backend, cfg, cache=self.cache, say=self.say)
        common: dict[str, Any] = {
            "api": cfg.api,
            "api_key": self.api_key,
            "concurrency": cfg.eval_batch_size,
            "policy": self._policy(),
            "timeouts": Timeouts(connect_s=cfg.connect_timeout_s, read_s=cfg.read_timeout_s),
            "stream": cfg.stream,
            "cache": self.cache,
            "transport": cfg.transport,
        }
        if self.backend in MANAGED_BACKENDS:
            from evalscope.eval.models.managed import ManagedServerModel

            assert cfg.model is not None
            return ManagedServerModel(
                self.backend,
                cfg.model,
                server_args=cfg.server_args,
                server_bin=cfg.server_bin,
                timeout_s=cfg.server_timeout,
                log_dir=cfg.work_dir,
                endpoint_id=self.endpoint_id,
                served_name=self.model_name,
                stopping=lambda: self._stopping,
                run_dir=lambda: self.run_dir,
                say=self.say,
                **common,
            )
        if cfg.api_url is None:
            return BuiltinSimModel(self.model_name, **common)
        return ApiModel(cfg.api_url, self.model_name, endpoint_id=self.endpoint_id, **common)

    def _build_judge(self, main_url: str | None) -> Model | None:
        cfg = self.cfg
        if not cfg.judge_model:
            return None
        judge_key = cfg.resolved_judge_key()
        if judge_key:
            register_secret(judge_key)
        url = cfg.judge_api_url or main_url
        if url is None:
            raise ConfigError("--judge-model needs an endpoint", "pass --judge-api-url")
        return ApiModel(
            url,
            cfg.judge_model,
            api="openai",
            api_key=judge_key,
            concurrency=cfg.eval_batch_size,
            policy=self._policy(),
            timeouts=Timeouts(connect_s=cfg.connect_timeout_s, read_s=cfg.read_timeout_s),
            stream=cfg.stream,
            transport=cfg.transport,
        )

    async def connect(self) -> Model:
        cfg = self.cfg
        if cfg.use_cache is not None and self.model is None:
            self.cache = ResponseCache(cfg.use_cache).open()
        if self.model is None:
            self.model = self._build_model()
        model = self.model
        try:
            await model.start(check=cfg.preflight, check_model=bool(self.model_name))
        except EndpointError as exc:
            exc.message = exc.message.replace("--url", "--api-url")
            if exc.hint:
                exc.hint = exc.hint.replace("--url", "--api-url")
            raise
        if isinstance(model, BuiltinSimModel):
            self.say(f"No --api-url given: using the built-in simulator (policy 'choice') at {model.url}")
        if self.judge is None:
            self.judge = self._build_judge(model.url if isinstance(model, BuiltinSimModel) else cfg.api_url)
        if self.judge is not None:
            await self.judge.start(check=False)
        if not self.model_name:
            self.model_name = model.name
            for t in self.tasks:
                t.fingerprint["model"] = self.model_name
        return model

    # ---------------------------------------------------------------- running

    def _pending(self) -> Iterator[tuple[_Task, Sample, int]]:
        """Every (task, sample, repeat) not done yet, interleaved by repeat then sample order."""
        for t in self.tasks:
            for s in t.samples:
                for r in range(self.cfg.repeats):
                    if self._stopping:
                        return
                    e = t.done.get((s.id, r))
                    if e is not None and e.get("status") == DONE:
                        continue
                    t.pending += 1
                    yield t, s, r

    _QUIRK_WARNINGS: ClassVar[dict[str, str]] = {
        "usage_rejected": "the server's token usage was not plausible (strings, negative, huge or more than "
        "max_tokens): counted tokens are used instead",
        "not_streamed": "the server did not stream (a whole JSON body came back): TTFT is not measured",
        "sse_mislabelled": "the server labelled its stream as something other than text/event-stream: "
        "accepted because it parsed as SSE",
    }

    def _warn_quirks(self, quirks: tuple[str, ...]) -> None:
        """One warning line per kind of server quirk, once per run."""
        warned: set[str] = self.__dict__.setdefault("_warned_quirks", set())
        for q in quirks:
            if q not in warned:
                warned.add(q)
                self.say("Warning: " + self._QUIRK_WARNINGS.get(q, q))

    async def _one(self, model: Model, t: _Task, s: Sample, rep: int) -> None:
        gen: Generation = await model.generate(s.messages, t.generation, _request_id(t.name, s.id, rep), rep)
        if gen.quirks:
            self._warn_quirks(gen.quirks)
        entry: dict[str, Any] = {
            "benchmark": t.name,
            "sample_id": s.id,
            "repeat": rep,
            "subset": s.subset,
            "category": s.category,
            "prompt": s.messages,
            "output": gen.raw_text,
            "reasoning": gen.reasoning,
            "gold": s.gold,
            "finish_reason": gen.finish_reason,
            "latency_s": gen.latency_s,
            "ttft_s": gen.ttft_s,
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "reasoning_tokens": gen.reasoning_tokens,
                "cached_tokens": gen.cached_tokens,
            },
            "attempts": gen.attempts,
            "cached": gen.cached,
            "time": time.time(),
        }
        if gen.retried_errors:
            entry["retried_errors"] = gen.retried_errors
        if gen.ok:
            try:
                mode = self._judge_modes.get(t.name)
                if mode == "llm":
                    assert self.judge is not None  # prepare() refused judge-scored benchmarks without one
                    res = await t.bench.ajudge(s, gen.text, self.judge)
                else:
                    res = await t.bench.ascore(s, gen.text)
                    if mode == "llm_recall" and res.value == 0.0:
                        assert self.judge is not None
                        res = await t.bench.ajudge(s, gen.text, self.judge)
            except Exception as exc:  # noqa: BLE001 - a scorer bug marks the sample errored, never wrong
                entry.update(status=ERRORED, error={"kind": "scoring", "message": scrub(repr(exc))[:1024]})
            else:
                entry.update(
                    status=DONE if res.status != "sandbox_error" else ERRORED,
                    score=res.value,
                    extracted=res.extracted,
                    parsed=res.parsed,
                    score_status=res.status,
                    detail=res.detail,
                )
        else:
            assert gen.error is not None
            entry.update(status=ERRORED, error={**gen.error.to_dict(), "gave_up": gen.gave_up})
        if entry["status"] == ERRORED:
            t.errored += 1
        t.finished += 1
        assert t.writer is not None
        # what resume reads back is exactly what this run aggregates (JSON round trip)
        t.done[(s.id, rep)] = _light(orjson.loads(t.writer.append(entry)))
        if not gen.cached:
            self._session_entries.append(
                {
                    "latency_s": gen.latency_s,
                    "ttft_s": gen.ttft_s,
                    "completion_tokens": gen.completion_tokens,
                    "ok": gen.ok,
                    **server_fields(gen),
                    "time": entry["time"],
                }
            )

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            parts = [
                f"{t.name} {t.finished}/{t.pending}" + (f" ({t.errored} errored)" if t.errored else "")
                for t in self.tasks
            ]
            self.say("progress: " + ", ".join(parts))

    async def dispatch(self, model: Model) -> None:
        """At most ``eval_batch_size`` sample tasks alive (fewer if the model takes fewer at once); requests
        produced lazily (M2)."""
        limit = self.cfg.eval_batch_size
        cap = model.capabilities.max_in_flight
        if cap is not None:
            limit = max(1, min(limit, cap))
        slots = asyncio.Semaphore(limit)
        progress = asyncio.create_task(self._progress()) if not self.cfg.quiet else None
        try:
            async with asyncio.TaskGroup() as tg:
                for t, s, rep in self._pending():
                    await slots.acquire()

                    async def job(t: _Task = t, s: Sample = s, rep: int = rep) -> None:
                        try:
                            await self._one(model, t, s, rep)
                        finally:
                            slots.release()

                    tg.create_task(job())
        finally:
            if progress is not None:
                progress.cancel()
                try:
                    await progress
                except asyncio.CancelledError:
                    pass

    # ---------------------------------------------------------------- main

    def _install_signals(self) -> list[int]:
        """First SIGINT/SIGTERM: stop dispatching, drain in-flight requests (up to ``drain_timeout_s``),
        write the reports, exit 130. A second signal cancels at once (journals are already on disk)."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        if main is None:
            return []

        def on_signal(signame: str) -> None:
            if not self._stopping:
                self._stopping = True
                self.say(
                    f"{signame}: stopping; waiting up to {self.cfg.drain_timeout_s:g} s for requests in flight "
                    "(again to stop at once)"
                )
                loop.call_later(self.cfg.drain_timeout_s, main.cancel)
            else:
                main.cancel()

        installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        return installed

    def _dry_run(self) -> EvalResult:
        """--dry-run: options validated and data loaded; report what would be sent, create nothing."""
        for t in self.tasks:
            self.say(
                f"Dry run: {t.name}: {len(t.samples)} samples x {self.cfg.repeats} repeats, "
                f"generation {_jsonable(t.generation)}"
            )
        target = (
            self.endpoint_id
            if self.backend != "api" or self.cfg.api_url is not None
            else "the built-in simulator"
        )
        if self.backend in MANAGED_BACKENDS:
            target = f"the managed {self.backend} server (not started)"
        self.say(f"Dry run: nothing sent to {target}; no run directory created.")
        return EvalResult(run_dir=self.cfg.work_dir)

    async def run(self) -> EvalResult:
        self.prepare()
        if self.cfg.dry_run:
            return self._dry_run()
        status = "failed"
        installed = self._install_signals()
        try:
            model = await self.connect()
            # only after the endpoint check: an unreachable endpoint leaves no (failed) run directory behind
            self.open_run_dir()
            assert self.run_dir is not None
            self.say(f"Run directory: {self.run_dir}")
            self.manifest["fingerprints"].update({t.name: t.fingerprint for t in self.tasks})
            self.manifest["endpoint"] = self.endpoint_id
            self.manifest["model"] = self.model_name
            self.write_manifest()
            t_start = time.perf_counter()
            await self.dispatch(model)
            wall = time.perf_counter() - t_start
            result = self.finish(model, wall)
            if self._stopping:
                status = "interrupted"
                raise KeyboardInterrupt
            status = "completed"
            return result
        except asyncio.CancelledError:
            status = "interrupted"
            if self._stopping:
                raise KeyboardInterrupt from None
            raise
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except EvalscopeError:
            status = "failed"
            raise
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)
            for t in self.tasks:
                if t.writer is not None:
                    t.writer.close()
            if self.cache is not None:
                self.cache.close()
            if self.model is not None:
                await self.model.aclose()
            if self.judge is not None:
                await self.judge.aclose()
            self.manifest["status"] = status
            self.manifest["finished"] = time.time()
            self.manifest["elapsed_s"] = time.perf_counter() - self._t0
            self.write_manifest()
            self._unlock()
            if self.cfg.html:
                from evalscope.report import write_html_safely

                write_html_safely(self.run_dir)

    def finish(self, model: Model, wall_s: float) -> EvalResult:
        from evalscope.eval.report import build_report, cumulative_performance, print_table, write_report

        assert self.run_dir is not None
        stats = model.stats()
        result = EvalResult(run_dir=self.run_dir, sent=stats.sent)
        # This session's counters go into the manifest; the report's performance covers every session of the
        # run (a resumed run used to overwrite it with the last session's, "0 requests" when nothing was left).
        session: dict[str, Any] = self.manifest.setdefault("sessions", [{"started": self.started}])[-1]
        session.update(
            wall_time_s=wall_s,
            **stats.as_dict(),
            eval_batch_size=self.cfg.eval_batch_size,
        )
        if self.cache is not None:
            session["cache_hits"] = self.cache.hits
        if self.judge is not None:  # the judge's requests, apart from the candidate's (requests_sent)
            session["judge"] = {"model": self.judge.name, **self.judge.stats().as_dict()}
        perf = cumulative_performance(self._past_entries + self._session_entries, self.manifest["sessions"])
        by_bench: dict[str, dict[str, Any]] = {}
        for t in self.tasks:
            triples: list[tuple[Sample, int, ScoreResult, dict[str, Any]]] = []
            errored: list[dict[str, Any]] = []
            as_wrong: list[tuple[Sample, int, ScoreResult, dict[str, Any]]] = []  # errored, scored 0
            for s in t.samples:
                for r in range(self.cfg.repeats):
                    e = t.done.get((s.id, r))
                    if e is None:
                        continue
                    if e.get("status") == DONE:
                        sr = ScoreResult(
                            value=float(e.get("score", 0.0)),
                            extracted=e.get("extracted"),
                            parsed=bool(e.get("parsed", True)),
                            status=str(e.get("score_status", "scored")),
                            detail=dict(e.get("detail") or {}),
                        )
                        triples.append((s, r, sr, e))
                    else:
                        errored.append(e)
                        as_wrong.append((s, r, ScoreResult(value=0.0, parsed=False, status="errored"), e))
            rep = build_report(
                t.name,
                t.bench,
                triples,
                errored,
                self.cfg,
                t.fingerprint,
                self.model_name,
                self.endpoint_id,
                perf,
                errored_as_wrong=as_wrong,
            )
            ju = judge_usage([sr.detail for _s, _r, sr, _e in triples])
            if ju is not None:  # the judge's tokens, apart from the candidate's (usage / performance)
                rep["judge_usage"] = ju
            write_report(self.run_dir, self.model_name, t.name, rep)
            by_bench[t.name] = rep
            result.errored += len(errored)
            if rep["error_rate"] > self.cfg.max_error_rate:
                result.over_error_rate.append(
                    f"{t.name} {rep['errored']}/{rep['num_samples'] + rep['errored']} ({rep['error_rate']:.1%})"
                )
        result.reports[self.model_name] = by_bench
        self.manifest["reports"] = {
            name: str(Path("reports") / _safe_name(self.model_name) / f"{name}.json") for name in by_bench
        }
        self.manifest["performance"] = perf
        self.manifest["error_rate_exceeded"] = list(result.over_error_rate)
        if not self.cfg.quiet:
            print_table(self.model_name, by_bench, self.out)
            self.out.flush()
            self.say(f"Reports: {self.run_dir / 'reports' / _safe_name(self.model_name)}")
        if result.errored:
            kinds: dict[str, int] = {}
            for rep in by_bench.values():
                for k, v in (rep.get("errors") or {}).items():
                    kinds[k] = kinds.get(k, 0) + int(v)
            top = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:5])
            print(
                scrub(
                    f"Warning: {result.errored} sample(s) errored ({top}); 'score' is over answered samples, "
                    f"'all' counts them as wrong. Retry them with --resume {self.run_dir}"
                ),
                file=self.err,
                flush=True,
            )
        return result


async def arun_eval(cfg: EvalConfig | dict[str, Any] | str | Path, out: TextIO | None = None) -> EvalResult:
    """Async form of :func:`run_eval` (for callers already in an event loop)."""
    config = load_task_config(cfg)
    if config.eval_backend != "Native":
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _run_other_backend, config, out)
    return await EvalRunner(config, out).run()


def run_eval(cfg: EvalConfig | dict[str, Any] | str | Path, out: TextIO | None = None) -> EvalResult:
    """Run an evaluation to completion on a fresh (uvloop) event loop and return its reports."""
    from evalscope.engine.session import run

    config = load_task_config(cfg)
    if config.eval_backend != "Native":
        return _run_other_backend(config, out)
    return run(EvalRunner(config, out).run())


def _run_other_backend(config: EvalConfig, out: TextIO | None) -> EvalResult:
    """``--eval-backend OpenCompass|VLMEvalKit|ThirdParty``: the adapter runs the framework (docs/backends.md)."""
    from evalscope.eval.backends.dispatch import run_backend

    run_dir, res = run_backend(config, _new_run_dir, out)
    return EvalResult(run_dir=run_dir, reports=res.reports)

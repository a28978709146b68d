"""The perf lifecycle, public entry: validate -> (start simulator) -> coordinator (preflight, warm-up, stages).

:func:`run_perf` is the Python API and what ``evalscope perf`` calls. Everything that can be checked without
the network (options, dataset files, tokenizer, URL) is checked here before any request; then a
:class:`~evalscope.perf._coordinator.Coordinator` runs the stages over a pool of dispatch cores (one local
core in-process, worker processes with ``--workers``, Ray actors with ``--ray``; see ``_pools.py``).

May import: ``engine`` (redact, session, protocols), ``perf.config``, ``perf.datasets``, ``perf.tokenizer``,
``perf._coordinator``, ``perf._pools``, ``perf.progress``; ``perf.ray_backend`` (``--ray``), ``sim``
(no ``--url``) and ``servers`` (``--backend vllm`` etc.) lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from evalscope.engine.redact import register_secret, register_url_secrets
from evalscope.engine.session import normalize_url, run
from evalscope.errors import EndpointError, EvalscopeError
from evalscope.perf._coordinator import Coordinator
from evalscope.perf._pools import Pool
from evalscope.perf.config import PerfConfig, make_config
from evalscope.perf.datasets import DATASETS, DatasetOptions, PerfDataset
from evalscope.perf.progress import LiveStage, Reporter
from evalscope.perf.tokenizer import Tokenizer, get_tokenizer

#: The run object (kept under its old name for scripts that annotate with it).
PerfRun = Coordinator

#: Settings of the simulator started when no --url is given: a small, quick, realistic-looking server.
DEFAULT_SIM: dict[str, Any] = {"ttft_ms": 50.0, "itl_ms": 10.0, "output_tokens": 64}


def _start_simulator(
    cfg: PerfConfig | None = None,
) -> tuple[AbstractContextManager[Any], str, dict[str, Any]]:
    settings = dict(DEFAULT_SIM)
    if cfg is not None and (cfg.prefix_length or cfg.dataset == "trace" or cfg.multi_turn):
        settings["prefix_cache"] = True  # shared prefixes are the point: let the numbers show cache hits
    try:
        from evalscope.sim import SimConfig, SimProcess
    except ImportError:
        raise EndpointError(
            "no --url given and the built-in simulator is not available", "pass --url of a server"
        ) from None
    proc = SimProcess(SimConfig(**settings))
    p = proc.__enter__()
    info = {"started": True, "url": p.url, "pid": p.pid, "config": settings}
    return proc, str(p.url), info


def prepare(cfg: PerfConfig) -> tuple[Tokenizer, PerfDataset, str | None, str | None]:
    """Everything checked before any network I/O: tokenizer, dataset, URL, API key."""
    tokenizer = get_tokenizer(cfg.tokenizer_path)
    dataset = DATASETS.get(cfg.dataset)(DatasetOptions.of(cfg), tokenizer)
    register_url_secrets(cfg.url)
    url = None
    if cfg.url is not None:
        from evalscope.engine.protocols.base import PROTOCOLS

        url = normalize_url(cfg.url, PROTOCOLS.get(cfg.api).default_path)
    api_key = cfg.resolve_api_key()
    if api_key:
        register_secret(api_key)
    from evalscope.engine.redact import is_secret_key

    for k, v in cfg.headers.items():
        if is_secret_key(k):
            register_secret(v)
            register_secret(v.split(" ", 1)[-1])
    return tokenizer, dataset, url, api_key


def _make_run(
    cfg: PerfConfig,
    dataset: PerfDataset,
    tokenizer: Tokenizer,
    url: str,
    api_key: str | None,
    reporter: Reporter,
    sim_info: dict[str, Any] | None,
) -> Coordinator:
    """A coordinator over one local core (in-process), worker processes (``--workers``) or Ray actors."""
    from evalscope.perf._pools import LocalPool, ProcessPool, resolve_workers

    if cfg.workers == 1 and cfg.ray is None:
        return Coordinator(cfg, dataset, tokenizer, url, api_key, reporter, LocalPool(), sim_info)
    n, how = resolve_workers(cfg, local_simulator=sim_info is not None)
    pool: Pool
    if cfg.ray is not None:
        from evalscope.perf.ray_backend import RayPool

        pool = RayPool(n, cfg.ray)
    else:
        pool = LocalPool() if n == 1 else ProcessPool(n)
    return Coordinator(cfg, dataset, tokenizer, url, api_key, reporter, pool, sim_info, how)


def run_perf(
    config: PerfConfig | Mapping[str, Any] | None = None,
    *,
    reporter: Reporter | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run a perf benchmark and return the summary (the same dict as ``summary.json``).

    Args:
        config: a :class:`PerfConfig`, or a mapping of its fields (option names with underscores).
        reporter: receives progress for display; default: silent.
        **overrides: field values applied on top of ``config``.

    Returns:
        The summary; ``summary["status"]`` is ``completed``, ``interrupted``, ``aborted`` (error threshold)
        and ``summary["run_dir"]`` is the run directory.

    Raises:
        ConfigError: invalid options or dataset (before any network I/O).
        EndpointError: the endpoint failed the preflight checks.
    """
    cfg = make_config(config, **overrides)
    resume_dir = None
    if cfg.resume is not None:
        from evalscope.perf.resume import resume_config

        cfg, resume_dir = resume_config(cfg)
    tokenizer, dataset, url, api_key = prepare(cfg)
    reporter = reporter or Reporter()
    sim_cm: AbstractContextManager[Any] | None = None
    sim_info: dict[str, Any] | None = None
    server: Any = None  # a ManagedServer with --backend vllm | llama.cpp | sglang | swift
    pr: Coordinator | None = None
    try:
        if cfg.backend != "api":
            server, cfg, url, api_key = _start_managed(cfg, api_key)
        if url is None:
            sim_cm, sim_url, sim_info = _start_simulator(cfg)
            from evalscope.engine.protocols.base import PROTOCOLS

            url = normalize_url(sim_url, PROTOCOLS.get(cfg.api).default_path)
        pr = _make_run(cfg, dataset, tokenizer, url, api_key, reporter, sim_info)
        from evalscope.perf import probe

        if probe.wanted(cfg):  # a sweep, an SLA search or repeats: stages decided as the run goes
            probe.Plan(cfg).bind(pr, resume_dir)
        if sim_info is not None:
            pr.kill_on_exit.append(int(sim_info["pid"]))
        try:
            return run(pr.main())
        finally:
            reporter.close()
    finally:
        if sim_cm is not None:
            sim_cm.__exit__(None, None, None)
        if server is not None:
            server.stop()
            server.keep_in(pr.run_dir if pr is not None else None)


def _start_managed(cfg: PerfConfig, api_key: str | None) -> tuple[Any, PerfConfig, str, str | None]:
    """--backend: start the model's server (printing its command line), wait until it answers, and point the
    run at it: the URL is the server's, ``model`` the name it serves (the path stays in ``server.json``)."""
    from evalscope.engine.protocols.base import PROTOCOLS
    from evalscope.servers.managed import ManagedServer, split_server_args

    assert cfg.model is not None
    server = ManagedServer(
        cfg.backend,
        cfg.model,
        server_args=split_server_args(cfg.server_args),
        server_bin=cfg.server_bin,
        timeout_s=cfg.server_timeout,
        log_dir=Path(cfg.outputs_dir),
    )
    server.start()  # stops the process tree itself when it fails or is interrupted
    run_cfg = cfg.model_copy(update={"url": server.url, "model": server.served_model})
    url = normalize_url(server.url, PROTOCOLS.get(cfg.api).default_path)
    return server, run_cfg, url, api_key or server.api_key


__all__ = ["EvalscopeError", "LiveStage", "PerfConfig", "PerfRun", "Reporter", "run_perf"]

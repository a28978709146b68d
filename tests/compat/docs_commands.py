"""Extract the commands of README.md and docs/*.md and adapt them to run here (used by the docs tests).

A command is a line of a fenced ``bash``/``sh``/``shell``/``console`` block (backslash continuations joined)
that starts with ``evalscope`` or ``python -m evalscope``, plus the ``Examples:`` lines of the ``--help``
texts reproduced in docs/cli.md. The adaptation is an allow-list, nothing else is touched:

* URLs of real servers (``--url``, ``--api-url``, ``--server-metrics``) -> the simulator's host:port, path kept;
* data folders (``../shared/datasets``, ``/data/benchmarks``) -> the real data folder found here;
* ``outputs/<run>`` (or an example timestamp) -> the newest eval run directory an earlier documented command
  created against an endpoint (``--api-url``); an example ``outputs/<stamp>_perf`` -> the newest perf run;
  ``RUN`` -> the newest perf run;
* counts and times bounded: ``--number`` <= 6, ``--parallel`` <= 4, ``--duration`` <= 2, ``--rate`` <= 20,
  ``--limit`` <= 4 (added to eval commands without one), ``--max-tokens`` <= 32, ``--eval-batch-size`` <= 8,
  perf gets ``--sleep-interval 0 --no-live``; selftest levels <= 4 with ``--number 8 --output-tokens 8``.

Commands that need what CI lacks are listed in :data:`SKIPPED` with the reason.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE_LANGS = ("bash", "sh", "shell", "console")
DATA_ALIASES = ("../shared/datasets", "/data/benchmarks")

#: substring of a documented command -> why it is not run here
SKIPPED: dict[str, str] = {
    "evalscope app": "a long-running web server (its own tests start and stop it)",
    "evalscope sim": "a long-running server (this test starts one itself)",
    "--ray": "needs the optional Ray extra and a cluster",
    "--tokenizer-path": "downloads a Hugging Face tokenizer (no network in CI)",
    "--wandb-api-key": "needs a wandb account",
    "--swanlab-api-key": "needs a swanlab account",
    "--backend": "starts a real model server (tests/e2e/test_managed_cli.py runs these with a stand-in server)",
    "--eval-backend OpenCompass": "needs OpenCompass (heavy: nox -s crosscheck_opencompass runs it)",
}

CAPS: dict[str, float] = {
    "--number": 6,
    "-n": 6,
    "--parallel": 4,
    "--duration": 2,
    "--rate": 20,
    "--limit": 4,
    "--max-tokens": 32,
    "--eval-batch-size": 8,
}


@dataclass(slots=True)
class DocCommand:
    source: str  # file:line
    text: str  # as documented (continuations joined)

    @property
    def id(self) -> str:
        return self.source


def _doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def extract() -> list[DocCommand]:
    out: list[DocCommand] = []
    for path in _doc_files():
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.S | re.M):
            lang, body = m.group(1), m.group(2)
            start = text.count("\n", 0, m.start(2)) + 1
            if lang in FENCE_LANGS:
                lines = body.split("\n")
                i = 0
                while i < len(lines):
                    first = i
                    line = lines[i]
                    while line.rstrip().endswith("\\") and i + 1 < len(lines):
                        i += 1
                        line = line.rstrip()[:-1] + " " + lines[i].strip()
                    cmd = line.strip().removeprefix("$ ")
                    if cmd.startswith(("evalscope ", "python -m evalscope")):
                        out.append(DocCommand(f"{path.name}:{start + first}", cmd))
                    i += 1
            elif lang == "text" and path.name == "cli.md":
                for j, line in enumerate(body.split("\n")):
                    cmd = line.strip()
                    if cmd.startswith("evalscope ") and "[OPTIONS]" not in cmd:
                        out.append(DocCommand(f"{path.name}:{start + j}", cmd))
    return out


def skip_reason(cmd: DocCommand) -> str | None:
    for key, why in SKIPPED.items():
        if key in cmd.text:
            return why
    placeholders = set(re.findall(r"<[a-z_]+>", cmd.text)) - {"<run>"}
    if placeholders:
        return f"placeholder {sorted(placeholders)} has no value here"
    return None


def _cap(value: str, cap: float) -> str:
    parts = value.split(",")
    out = []
    for p in parts:
        try:
            f = float(p)
        except ValueError:
            out.append(p)
            continue
        if f == -1:
            out.append(p)
            continue
        v = min(f, cap)
        out.append(str(int(v)) if v == int(v) else str(v))
    return ",".join(out)


def adapt(cmd: DocCommand, sim_hostport: str, data_dir: Path | None, cwd: Path) -> list[str]:
    """argv for ``python``: the documented command with only the allow-listed substitutions."""
    tokens = shlex.split(cmd.text, comments=True)
    if tokens[0] == "evalscope":
        argv = ["-m", "evalscope", *tokens[1:]]
    else:
        assert tokens[:2] == ["python", "-m"], tokens
        argv = tokens[1:]
    sub = argv[2] if argv[1] == "evalscope" and len(argv) > 2 else "eval"
    out: list[str] = []
    opt: str | None = None
    for tok in argv:
        t = re.sub(r"https?://[^/\s]+", f"http://{sim_hostport}", tok)
        for alias in DATA_ALIASES:
            if data_dir is not None and t == alias:
                t = str(data_dir)
        if re.fullmatch(r"outputs/\d{8}_\d{6}_perf", t):
            t = str(newest_run(cwd, "summary.json"))
        elif re.fullmatch(r"outputs/(<run>|\d{8}_\d{6})", t):
            t = str(newest_service_run(cwd))
        elif t == "RUN":
            t = str(newest_run(cwd, "summary.json"))  # "stages.csv": a perf run
        if t.startswith("-"):
            opt = t
        elif opt in CAPS and not (sub == "selftest" and opt == "--number"):
            t = _cap(t, CAPS[opt])
        out.append(t)
    if sub == "perf":
        if "--sleep-interval" not in out:
            out += ["--sleep-interval", "0"]
        out += ["--no-live"]
        if "--number" not in out and "-n" not in out and "--duration" not in out:
            out += ["--number", "6"]
    elif sub == "selftest":
        out += ["--number", "8", "--output-tokens", "8"]
    elif sub == "eval" and "--limit" not in out and "--resume" not in out:
        out += ["--limit", "4"]
    return out


def newest_service_run(cwd: Path) -> Path:
    """The newest eval run directory below ``cwd/outputs`` that was run against an ``--api-url``."""
    import json

    runs = []
    for d in (cwd / "outputs").glob("*"):
        m = d / "manifest.json"
        if m.is_file() and str(json.loads(m.read_text()).get("endpoint", "")).startswith("http"):
            runs.append(d)
    assert runs, "outputs/<run>: no earlier eval run against an endpoint"
    return max(runs, key=lambda p: p.stat().st_mtime)


def newest_run(cwd: Path, marker: str) -> Path:
    """The newest run directory below ``cwd/outputs`` (holding ``marker``, e.g. a perf run's summary.json)."""
    runs = [d for d in (cwd / "outputs").glob("*") if d.is_dir() and (not marker or (d / marker).is_file())]
    assert runs, f"no earlier run directory with {marker or 'anything'} below outputs/"
    return max(runs, key=lambda p: p.stat().st_mtime)


def find_data_dir() -> Path | None:
    """The documented data folder: ../shared/datasets next to the repository, or $EVALSCOPE_SHARED_DATASETS."""
    import os

    for cand in (
        REPO.parent / "shared" / "datasets",
        Path(os.environ.get("EVALSCOPE_SHARED_DATASETS", "/-")),
    ):
        if cand.is_dir():
            return cand
    return None


def uses_data(cmd: DocCommand) -> bool:
    return any(a in cmd.text for a in DATA_ALIASES)

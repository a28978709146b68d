"""Mutation check: inject each error the test suite must catch and show which tests fail.

Each mutation is applied to a temporary copy of the tree (``src``, ``tests``, ``pyproject.toml``), never to
the working tree; the relevant tests run with ``PYTHONPATH`` pointing at the copy; the table lists, per
mutation, the tests that failed. A row with no failing test is a blind spot (exit status 1).

    python benchmarks/mutations.py                 # every mutation
    python benchmarks/mutations.py --only send-5ms --baseline

Timing tests are sensitive to machine load: the send/receive rows rely on medians (a 5 ms delay moves every
request; load moves the tail), and the e2e accuracy test skips, naming the measured load, on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_SEND_ANCHOR = (
    "        try:\n            async with self.session.post(self.url, data=body, headers=headers) as resp:\n"
)
_RECV_ANCHOR = "            chunk = await content.readany()\n            now = _clock()\n"

SEND_TESTS = [
    "tests/unit/engine/test_client_added_latency.py",
    "tests/integration/test_selftest.py",
    "tests/integration/test_perf_fidelity.py::test_perf_checks_its_send_side_against_the_simulator",
    "tests/e2e/test_perf_cli.py::test_accuracy_against_simulator_truth",
]
RECV_TESTS = [
    "tests/unit/engine/test_client_added_latency.py",
    "tests/unit/engine/test_timing_accuracy.py",
    "tests/e2e/test_perf_cli.py::test_accuracy_against_simulator_truth",
]
EVAL_TESTS = [
    "tests/integration/test_eval_truth_from_raw.py",
    "tests/integration/test_eval_accuracy_truth.py",
]


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str
    old: str
    new: str
    tests: list[str]


MUTATIONS = [
    Mutation(
        "send-5ms",
        "client waits 5 ms after stamping sent_ns, before writing the request",
        "src/evalscope/engine/client.py",
        _SEND_ANCHOR,
        "        await asyncio.sleep(0.005)\n" + _SEND_ANCHOR,
        SEND_TESTS,
    ),
    Mutation(
        "send-20ms",
        "client waits 20 ms after stamping sent_ns, before writing the request",
        "src/evalscope/engine/client.py",
        _SEND_ANCHOR,
        "        await asyncio.sleep(0.02)\n" + _SEND_ANCHOR,
        SEND_TESTS,
    ),
    Mutation(
        "recv-3ms",
        "client stamps every stream read 3 ms late",
        "src/evalscope/engine/client.py",
        _RECV_ANCHOR,
        "            chunk = await content.readany()\n            await asyncio.sleep(0.003)\n            now = _clock()\n",
        RECV_TESTS,
    ),
    Mutation(
        "arc-gold-shift",
        "ARC loader maps the answer key to the next letter",
        "src/evalscope/eval/benchmarks/arc.py",
        "LETTERS[labels.index(key)]",
        "LETTERS[(labels.index(key) + 1) % len(labels)]",
        [t + ("::test_mcq_gold_is_the_raw_files_answer[arc]" if "raw" in t else "") for t in EVAL_TESTS],
    ),
    Mutation(
        "first-number",
        "math extractor takes the first number instead of the last (GSM8K without a box)",
        "src/evalscope/eval/scoring/extract.py",
        "n = str(nums[-1])",
        "n = str(nums[0])",
        [
            t + ("::test_math_equal_and_lookalike_forms_against_raw_answers[gsm8k]" if "raw" in t else "")
            for t in EVAL_TESTS
        ],
    ),
]


def copy_tree(dest: Path) -> None:
    for part in ("src", "tests"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def apply(tree: Path, m: Mutation) -> None:
    path = tree / m.file
    text = path.read_text(encoding="utf-8")
    if text.count(m.old) != 1:
        raise SystemExit(
            f"mutation {m.name}: anchor found {text.count(m.old)} times in {m.file}; update the script"
        )
    path.write_text(text.replace(m.old, m.new), encoding="utf-8")


def run_tests(tree: Path, tests: list[str], timeout: float) -> tuple[list[str], list[str], float]:
    """(failed test ids, skipped notes, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *tests],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
    )
    out = r.stdout
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.M)
    skipped = re.findall(r"^SKIPPED \[\d+\] (\S+?):\d+: (.{0,90})", out, flags=re.M)
    return failed, [f"{p}: {why}" for p, why in skipped], time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="mutation name (repeatable)")
    ap.add_argument("--baseline", action="store_true", help="also run every test set on the unmutated copy")
    ap.add_argument("--baseline-only", action="store_true", help="run the unmutated copy only")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
    args = ap.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if not chosen:
        raise SystemExit(f"no mutation named {args.only}; known: {[m.name for m in MUTATIONS]}")
    args.baseline = args.baseline or args.baseline_only
    rows: list[tuple[str, list[str], list[str], float]] = []
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"loadavg at start: {f.read().split()[:3]}", flush=True)
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="evalscope-mut-") as d:
            tree = Path(d)
            copy_tree(tree)
            tests = sorted({t for m in chosen for t in m.tests})
            failed, skipped, secs = run_tests(tree, tests, args.timeout)
            rows.append(("(none: baseline)", failed, skipped, secs))
            print(f"baseline: {len(failed)} failed in {secs:.0f} s {failed}", flush=True)
    for m in [] if args.baseline_only else chosen:
        with tempfile.TemporaryDirectory(prefix="evalscope-mut-") as d:
            tree = Path(d)
            copy_tree(tree)
            apply(tree, m)
            failed, skipped, secs = run_tests(tree, m.tests, args.timeout)
            rows.append((m.name, failed, skipped, secs))
            print(f"{m.name}: {len(failed)} failed in {secs:.0f} s", flush=True)
    print()
    print("| mutation | tests that failed | skipped (reason) | s |")
    print("|---|---|---|---|")
    blind = False
    for name, failed, skipped, secs in rows:
        base = name.startswith("(none")
        if not base and not failed:
            blind = True
        empty = "none (as it should be)" if base else "**none (blind spot)**"
        print(f"| {name} | {'<br>'.join(failed) or empty} | {'<br>'.join(skipped) or '-'} | {secs:.0f} |")
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"\nloadavg at end: {f.read().split()[:3]}")
    return 1 if blind else 0


if __name__ == "__main__":
    raise SystemExit(main())

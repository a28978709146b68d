"""The client states its own error: an overloaded client is marked untrustworthy with the reason; a light
run is not. Also the verdict rules themselves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evalscope.perf.aggregate import Metric
from evalscope.perf.fidelity import verdict
from evalscope.sim import SimConfig, SimProcess

pytestmark = pytest.mark.timeout(240)


def perf(url: str, out: Path, args: list[str], cpus: set[int] | None) -> dict:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "evalscope",
            "perf",
            "--no-live",
            "--url",
            url,
            "--outputs-dir",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=200,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    assert r.returncode == 0, r.stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return json.loads((run / "summary.json").read_text())["stages"][0]["client"]


def cpus_apart() -> tuple[set[int] | None, set[int] | None]:
    allowed = sorted(os.sched_getaffinity(0))
    return ({allowed[0]}, {allowed[1]}) if len(allowed) >= 2 else (None, None)


def test_overloaded_client_is_marked_untrustworthy(tmp_path: Path) -> None:
    sim_cpus, cli_cpus = cpus_apart()
    # 1,024 streams, one token per ms each: about a million events per second offered to one client core.
    with SimProcess(SimConfig(ttft_ms=1, itl_ms=1, output_tokens=64, truth=False), cpus=sim_cpus) as sim:
        client = perf(
            sim.url, tmp_path, ["--parallel", "1024", "--number", "2048", "--max-tokens", "64"], cli_cpus
        )
    assert client["trustworthy"] is False
    assert "lag" in client["reason"] or "CPU" in client["reason"], client["reason"]


def test_light_run_is_trustworthy(tmp_path: Path, machine_load: Any) -> None:
    sim_cpus, cli_cpus = cpus_apart()
    verdicts = []
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=10, output_tokens=20), cpus=sim_cpus) as sim:
        for attempt in range(3):  # another process may briefly take the CPU; a light run is fine in one of 3
            out = tmp_path / str(attempt)
            out.mkdir()
            client = perf(sim.url, out, ["--parallel", "4", "--number", "40", "--max-tokens", "20"], cli_cpus)
            verdicts.append(client)
            if client["trustworthy"]:
                return
    # A verdict of "not trustworthy" on a machine busy with other work is right; only a quiet machine (measured
    # outside the tool) makes it a false alarm.
    busy, busy_note = machine_load.foreign_share()
    if busy > 0.25:
        pytest.skip(f"machine busy: {busy_note} (> 25%): {[v['reason'] for v in verdicts]}")
    raise AssertionError(f"a light run was never trustworthy: {[v['reason'] for v in verdicts]}")


def lag_metric(values_ms: list[float]) -> Metric:
    m = Metric()
    for v in values_ms:
        m.record(v * 1e6)
    return m


def test_verdict_rules() -> None:
    quiet, busy = lag_metric([0.1] * 100), lag_metric([0.1] * 90 + [20.0] * 10)
    ok = verdict(quiet, Metric(), 30.0, None, None, None, False)
    assert ok["trustworthy"] is True and ok["reason"] is None
    lagging = verdict(busy, Metric(), 30.0, None, None, None, False)
    assert lagging["trustworthy"] is False and "event-loop lag p99" in lagging["reason"]
    behind = verdict(quiet, Metric(), 30.0, 100.0, 100.0, 90.0, False)
    assert behind["trustworthy"] is False and "fell behind" in behind["reason"]
    capped = verdict(quiet, Metric(), 30.0, 100.0, 100.0, 50.0, True)
    assert "--parallel cap" in capped["reason"]
    hot = verdict(quiet, Metric(), 99.0, None, None, None, False)
    assert hot["trustworthy"] is False and "CPU" in hot["reason"]


def test_verdict_limits_follow_the_accuracy_claim() -> None:
    from evalscope.perf.fidelity import (
        ACCURACY_CLAIM_MS,
        DISPATCH_LAG_P99_LIMIT_MS,
        LOOP_LAG_P99_LIMIT_MS,
        SEND_SIDE_P99_LIMIT_MS,
    )

    assert ACCURACY_CLAIM_MS == 2.0
    assert max(LOOP_LAG_P99_LIMIT_MS, DISPATCH_LAG_P99_LIMIT_MS, SEND_SIDE_P99_LIMIT_MS) <= ACCURACY_CLAIM_MS
    # A loop lag p99 of 2.5 ms passed the old 5 ms limit although it breaks the 2 ms claim.
    lagging = verdict(lag_metric([0.2] * 95 + [2.5] * 5), Metric(), 30.0, None, None, None, False)
    assert lagging["trustworthy"] is False


def test_send_side_rule_and_join() -> None:
    from evalscope.perf.fidelity import apply_send_side
    from evalscope.perf.sendside import summarize

    sent = {str(i): 1_000_000_000 + i * 10_000_000 for i in range(100)}
    truth = [
        {"request_id": str(i), "arrival_ns": s + 6_000_000, "kernel_arrival_ns": s + 5_000_000}
        for i, s in enumerate(sent.values())
    ]
    block = summarize(sent, truth)
    assert block is not None and block["clock"] == "kernel" and block["p50"] == pytest.approx(5.0)
    client = verdict(lag_metric([0.1] * 100), Metric(), 30.0, None, None, None, False)
    apply_send_side(client, block)
    assert client["trustworthy"] is False and "send side p99 5.0 ms" in client["reason"]
    ok = verdict(lag_metric([0.1] * 100), Metric(), 30.0, None, None, None, False)
    apply_send_side(
        ok, summarize(sent, [{**t, "kernel_arrival_ns": int(sent[t["request_id"]]) + 300_000} for t in truth])
    )
    assert ok["trustworthy"] is True and ok["send_side_ms"]["p99"] == pytest.approx(0.3)
    # Only the loop's stamp (a simulator on uvloop): an upper bound that holds the simulator's own read lateness.
    # Over the limit it proves nothing about the client: reported, marked not judged, the verdict unchanged.
    loop_only = summarize(sent, [{**t, "kernel_arrival_ns": None} for t in truth])
    assert (
        loop_only is not None and loop_only["clock"] == "arrival" and loop_only["p99"] == pytest.approx(6.0)
    )
    upper = verdict(lag_metric([0.1] * 100), Metric(), 30.0, None, None, None, False)
    apply_send_side(upper, loop_only)
    assert upper["trustworthy"] is True and upper["reason"] is None
    assert upper["send_side_ms"]["judged"] is False and "upper bound" in upper["send_side_ms"]["note"]
    within = summarize(
        sent,
        [{**t, "arrival_ns": int(sent[t["request_id"]]) + 500_000, "kernel_arrival_ns": None} for t in truth],
    )
    fine = verdict(lag_metric([0.1] * 100), Metric(), 30.0, None, None, None, False)
    apply_send_side(fine, within)
    assert fine["trustworthy"] is True and "judged" not in fine["send_side_ms"]  # within the limit: it holds
    # another machine's clock (arrival long before sent): no check rather than a wrong one
    assert summarize(sent, [{**t, "arrival_ns": 5, "kernel_arrival_ns": None} for t in truth]) is None


def test_perf_checks_its_send_side_against_the_simulator(tmp_path: Path) -> None:
    """A light run against the simulator carries a kernel-clock send-side figure; its median stays small."""
    sim_cpus, cli_cpus = cpus_apart()
    notes = []
    with SimProcess(SimConfig(ttft_ms=20, itl_ms=2, output_tokens=10), cpus=sim_cpus, loop="asyncio") as sim:
        for attempt in range(3):
            out = tmp_path / f"a{attempt}"
            out.mkdir()
            client = perf(sim.url, out, ["--parallel", "4", "--number", "64", "--max-tokens", "10"], cli_cpus)
            send = client["send_side_ms"]
            assert send["clock"] == "kernel" and send["sampled"] == 64, send
            if send["p99"] > 2.0:
                assert client["trustworthy"] is False and "send side" in client["reason"]
            notes.append(str(send))
            if send["p50"] < 1.5:
                return
    raise AssertionError("perf send-side median >= 1.5 ms in every attempt: " + "; ".join(notes))

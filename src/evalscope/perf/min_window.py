"""No client verdict below a minimum measurement window (``--strict`` on short runs).

The client checks of :mod:`evalscope.perf.fidelity` are statistics over the stage: over a ~5 ms stage the CPU
meter read 200 % of a core and the loop-lag p99 rested on a handful of timer ticks, so 3 of 6 identical
20-request runs exited 5 with ``--strict``. Below the window a stage is "too short to judge": its verdict is
withdrawn (``trustworthy`` null), never failed.

May import: nothing from evalscope (it reads summary dicts).
"""

from __future__ import annotations

from typing import Any

#: Below this measurement window (or this many loop-lag samples) the client checks are noise: CPU percent over a
#: 5 ms stage read 200 % of a core, and --strict flipped between identical runs. No verdict is given then.
MIN_JUDGE_WINDOW_S = 1.0
MIN_LOOP_LAG_SAMPLES = 50


def too_short_to_judge(window_s: float, loop_lag_samples: int) -> str | None:
    """Why a stage is too short for a client verdict, or None when it is long enough."""
    if window_s >= MIN_JUDGE_WINDOW_S and loop_lag_samples >= MIN_LOOP_LAG_SAMPLES:
        return None
    return (
        f"too short to judge: a measurement window of {window_s:.3f} s with {loop_lag_samples} loop-lag samples "
        f"(a verdict needs >= {MIN_JUDGE_WINDOW_S:g} s and >= {MIN_LOOP_LAG_SAMPLES} samples)"
    )


def apply_min_window(client: dict[str, Any], window_s: float, loop_lag_samples: int) -> dict[str, Any]:
    """Withdraw the verdict of ``client`` (a :func:`verdict` block) when the stage was too short.

    ``trustworthy`` becomes None (not judged; ``--strict`` does not fail on it) and ``reason`` says why,
    keeping what the checks would have said.
    """
    why = too_short_to_judge(window_s, loop_lag_samples)
    client["judged"] = why is None
    if why is not None:
        if client.get("reason"):
            why += f"; the checks read: {client['reason']}"
        client["trustworthy"] = None
        client["reason"] = why
    return client


def overall_trust(stages: list[dict[str, Any]]) -> bool | None:
    """Run-level verdict: False if any stage was untrustworthy, True if every stage was judged trustworthy,
    None when nothing was judged (no stage, or only stages too short to judge)."""
    values = [s["client"]["trustworthy"] for s in stages]
    if any(v is False for v in values):
        return False
    return True if any(v is True for v in values) else None

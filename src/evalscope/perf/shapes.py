"""Traffic shapes beyond a steady rate: ramps, stage lists, recorded traces (when requests are sent).

A shape only decides the open-loop send times of a stage, as absolute offsets from the stage start (see
:mod:`evalscope.perf.schedule` for why offsets are absolute). The dispatch core asks :func:`shaped_offsets`
once per stage, so the per-request path is the same as for ``--rate``:

- **ramp** (``--ramp-up-strategy linear|exponential``, vLLM's semantics): request *i* of *N* goes out at the
  rate ``r_i`` with progress ``i / (N - 1)``; linear ``r_i = start + (end - start) * progress``, exponential
  ``r_i = start * (end / start) ** progress``. The gap after request *i* is gamma distributed with shape
  ``burstiness`` and mean ``1 / r_i``. Without a request count (``--duration`` only), progress is the elapsed
  fraction of the duration instead.
- **trace**: the recorded timestamps of a trace dataset, shifted to start at 0 and multiplied by
  ``--time-scale``.

May import: ``perf.sessions`` (lazily); nothing else from evalscope.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RAMP_STRATEGIES = ("linear", "exponential")


def ramp_rate(strategy: str, start: float, end: float, progress: float) -> float:
    """The request rate at ``progress`` (0..1) of a ramp from ``start`` to ``end`` requests/s."""
    p = min(1.0, max(0.0, progress))
    if strategy == "linear":
        return start + (end - start) * p
    if strategy == "exponential":
        return float(start * (end / start) ** p)
    raise ValueError(f"unknown ramp strategy {strategy!r}; allowed: {', '.join(RAMP_STRATEGIES)}")


def ramp_offsets_ns(
    strategy: str,
    start: float,
    end: float,
    *,
    number: int | None,
    duration_s: float | None,
    burstiness: float = 1.0,
    seed: int = 0,
) -> Iterator[int]:
    """Absolute offsets (ns) of a ramp's arrivals; the first is 0.

    With ``number`` the ramp is over request indices (as vLLM does); otherwise over ``duration_s`` of time.
    """
    if start <= 0 or end <= 0:
        raise ValueError("ramp rates must be > 0")
    if number is None and duration_s is None:
        raise ValueError("a ramp needs a request count or a duration")
    rng = np.random.default_rng(seed)
    t = 0.0
    i = 0
    yield 0
    while True:
        if number is not None:
            progress = i / max(number - 1, 1)
        else:
            assert duration_s is not None
            progress = t / (duration_s * 1e9)
        rate = ramp_rate(strategy, start, end, progress)
        mean_ns = 1e9 / rate
        t += float(rng.gamma(burstiness, mean_ns / burstiness))
        i += 1
        yield int(t)


def trace_offsets_ns(timestamps_ms: Sequence[float], base: int = 0, scale: float = 1.0) -> Iterator[int]:
    """Offsets (ns) of a trace's requests from ``base`` on, relative to request ``base``, times ``scale``."""
    if not timestamps_ms or base >= len(timestamps_ms):
        return
    t0 = timestamps_ms[base]
    k = scale * 1e6
    for ts in timestamps_ms[base:]:
        yield round((ts - t0) * k)


def shaped_offsets(
    shape: dict[str, Any], *, burstiness: float, seed: int, dataset: Any, prompt_base: int
) -> Iterator[int]:
    """The offsets of a stage whose spec carries ``arrivals`` (built by the coordinator's stage plan)."""
    kind = shape["kind"]
    if kind == "ramp":
        return ramp_offsets_ns(
            shape["strategy"],
            float(shape["start"]),
            float(shape["end"]),
            number=shape.get("number"),
            duration_s=shape.get("duration_s"),
            burstiness=burstiness,
            seed=seed,
        )
    if kind == "trace":
        stamps = getattr(dataset, "timestamps_ms", None)
        if stamps is None:
            raise ValueError("a trace schedule needs the trace dataset (--dataset trace)")
        return trace_offsets_cycled(stamps, prompt_base, float(shape["scale"]))
    raise ValueError(f"unknown arrival shape {kind!r}")


# ---- stage lists -------------------------------------------------------------------------------------------

_STAGE_KEYS = {"rate", "parallel", "duration", "number"}


def parse_stage_list(v: Any) -> list[dict[str, Any]] | None:
    """``--stage-list``: a list of ``{rate|parallel, duration[, number]}`` (JSON text, a .json/.yaml file path, or
    the list itself from a config file) -> normalised dicts. Raises ValueError with one line on bad input."""
    if v is None:
        return None
    if isinstance(v, str):
        text = v.strip()
        if not text.startswith("["):
            p = Path(text)
            if not p.is_file():
                raise ValueError(
                    f'{text!r} is neither a JSON list nor a file (e.g. \'[{{"rate": 5, "duration": 10}}]\')'
                )
            text = p.read_text(encoding="utf-8")
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                loaded = yaml.safe_load(text)
                v = loaded.get("stages", loaded) if isinstance(loaded, dict) else loaded
                return parse_stage_list(v)
        try:
            v = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at char {exc.pos})") from None
        if isinstance(v, dict) and "stages" in v:
            v = v["stages"]
    if not isinstance(v, list) or not v:
        raise ValueError('must be a non-empty list of {"rate"|"parallel", "duration"} objects')
    out: list[dict[str, Any]] = []
    for i, item in enumerate(v, 1):
        if not isinstance(item, dict):
            raise ValueError(f'stage {i}: expected an object like {{"rate": 5, "duration": 10}}')
        unknown = set(item) - _STAGE_KEYS
        if unknown:
            raise ValueError(
                f"stage {i}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_STAGE_KEYS))}"
            )
        st: dict[str, Any] = {}
        rate = item.get("rate")
        if rate is not None:
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not math.isfinite(rate)
                or rate <= 0
            ):
                raise ValueError(f"stage {i}: rate must be a number > 0 (requests/s)")
            st["rate"] = float(rate)
        for key in ("parallel", "number"):
            n = item.get(key)
            if n is not None:
                if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                    raise ValueError(f"stage {i}: {key} must be an integer >= 1")
                st[key] = n
        dur = item.get("duration")
        if dur is not None:
            if isinstance(dur, bool) or not isinstance(dur, int | float) or not dur > 0:
                raise ValueError(f"stage {i}: duration must be a number of seconds > 0")
            st["duration"] = float(dur)
        if "rate" not in st and "parallel" not in st:
            raise ValueError(f"stage {i}: give rate (open loop) or parallel (closed loop)")
        if "duration" not in st and "number" not in st:
            raise ValueError(f"stage {i}: give duration (seconds) or number (requests)")
        out.append(st)
    return out


def trace_offsets_cycled(timestamps_ms: Sequence[float], base: int, scale: float) -> Iterator[int]:
    """Like :func:`trace_offsets_ns` but endless: past the trace's end it starts over after one mean gap."""
    n = len(timestamps_ms)
    span = timestamps_ms[-1] - timestamps_ms[0]
    gap = span / (n - 1) if n > 1 else 1000.0
    t0 = timestamps_ms[base % n]
    k = scale * 1e6
    shift = 0.0
    i = base % n
    while True:
        yield round((timestamps_ms[i] + shift - t0) * k)
        i += 1
        if i == n:
            i = 0
            shift += span + gap


# ---- the coordinator's stage plan ------------------------------------------------------------------------


def plan_stage_list(cfg: Any) -> list[dict[str, Any]]:
    """``--stage-list`` entries -> Stage fields: a ``rate`` stage is open loop (cap: its ``parallel``, else none),
    a ``parallel``-only stage closed loop; each runs for its own ``duration`` and/or ``number``."""
    out = []
    for st in cfg.stage_list:
        rate = st.get("rate")
        parallel = int(st.get("parallel", cfg.parallel[0]))
        cap = parallel if "parallel" in st or rate is None else 100_000
        out.append(
            {
                "parallel": parallel,
                "number": st.get("number"),
                "rate": rate,
                "duration": st.get("duration"),
                "cap": cap,
            }
        )
    return out


def shaped_stage(cfg: Any, dataset: Any, parallel: int, number: int | None) -> dict[str, Any]:
    """Stage fields of one ``--parallel`` stage under a ramp, a trace or ``--multi-turn``."""
    if cfg.multi_turn:
        return {"parallel": parallel, "number": number, "rate": cfg.rate, "sessions": True}
    if cfg.ramp_up_strategy is not None:
        shape = {
            "kind": "ramp",
            "strategy": cfg.ramp_up_strategy,
            "start": cfg.ramp_up_start_rate,
            "end": cfg.ramp_up_end_rate,
            "number": number,
            "duration_s": cfg.duration if number is None else None,
        }
        rate = max(cfg.ramp_up_start_rate, cfg.ramp_up_end_rate)
        return {"parallel": parallel, "number": number, "rate": rate, "arrivals": shape}
    stamps = getattr(dataset, "timestamps_ms", None)
    if not stamps:
        raise ValueError("--dataset trace: the trace dataset is needed to plan the stage")
    rows = len(stamps)
    if cfg.number is None:
        number = max(1, rows - cfg.warmup)  # the rest of the trace after any warm-up (a --duration cuts it)
    span_s = (stamps[-1] - stamps[0]) / 1e3 * cfg.time_scale
    rate = (rows - 1) / span_s if rows > 1 and span_s > 0 else 1000.0
    shape = {"kind": "trace", "scale": cfg.time_scale, "requests": rows}
    return {"parallel": parallel, "number": number, "rate": rate, "arrivals": shape}


def add_shape_summary(
    summary: dict[str, Any],
    shape: dict[str, Any] | None,
    done: list[dict[str, Any]],
    percentiles: tuple[float, ...] = (),
) -> None:
    """Add ``schedule_error`` (ramps and traces) and ``sessions`` (``--multi-turn``) to a stage summary.

    The schedule error is each request's send lateness, ``sent - scheduled`` (the ``queue_time``
    distribution), against the trace's (or ramp's) own times: client overhead plus any wait for a slot.
    """
    if shape is not None:
        q = summary.get("queue_time") or {}
        summary["schedule_error"] = {
            "vs": shape["kind"],
            "requests": q.get("count", 0),
            "p50_ms": q.get("p50"),
            "p99_ms": q.get("p99"),
            "max_ms": q.get("max"),
            "mean_ms": q.get("mean"),
            **({"time_scale": shape["scale"]} if shape["kind"] == "trace" else {}),
            **(
                {"strategy": shape["strategy"], "start_rate": shape["start"], "end_rate": shape["end"]}
                if shape["kind"] == "ramp"
                else {}
            ),
        }
    states = [d["sessions"] for d in done if d.get("sessions")]
    if states:
        from evalscope.perf.sessions import merged_summary

        summary["sessions"] = merged_summary(states, percentiles)

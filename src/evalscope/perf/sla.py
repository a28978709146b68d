"""``--sla-auto-tune``: criteria (``--sla-params``), their margins, and the search for the largest value that meets them.

Criteria follow upstream EvalScope: a list of groups, each a mapping of metric name to ``"<=500"``, ``">=10"``,
``"<0.01"`` or ``"max"`` / ``"min"``; the criteria of a group are ANDed, the groups ORed. A metric is any
number of a stage summary: ``error_rate``, ``success_rate``, ``rps``, ``tps``, ``total_tps``, ``goodput``
(requests/s meeting ``--goodput``), ``goodput_ratio``, or ``<stat>_<latency>`` with stat ``avg``/``mean``,
``min``, ``max``, ``median`` or ``pNN`` (``p99``, ``p999``, ``p99.5``) and latency ``ttft``, ``ttfo``,
``tpot``, ``itl``, ``icl``, ``e2e_latency`` (also ``latency``, ``e2e``), ``queue_time``... Latencies are in ms;
a target may carry ``ms`` or ``s`` (upstream reads a bare latency in seconds: write ``"<=2s"`` to be explicit).

The *margin* of a criterion is how far the observed value is inside its target, as a fraction of the target
(``(target - v) / target`` for ``<=``); a group's margin is its worst criterion's, the whole SLA's the best
group's. The SLA is met iff the margin is >= 0 (> 0 for strict operators). One scalar lets the search
interpolate where the SLA stops being met instead of only bisecting.

The search itself (:func:`constraint_search`, :func:`maximise`) is a generator over probe values: it yields a
value and gets back a :class:`ProbeResult`; :mod:`evalscope.perf.probe` runs the stages.

May import: ``perf.metrics``, ``perf.histogram``; ``perf.probe`` is the caller.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

_OPS = ("<=", ">=", "<", ">")
_TARGET = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(ms|s|%)?$")
_STAT = re.compile(r"^(avg|mean|min|max|median|p\d+(?:\.\d+)?)_(.+)$")
_ALIASES = {"latency": "e2e_latency", "e2e": "e2e_latency"}
#: Plain summary numbers: name -> path in a stage summary.
_PLAIN: dict[str, tuple[str, ...]] = {
    "error_rate": ("requests", "error_rate"),
    "rps": ("throughput", "requests_per_s"),
    "tps": ("throughput", "output_tokens_per_s"),
    "total_tps": ("throughput", "total_tokens_per_s"),
    "goodput": ("goodput", "requests_per_s"),
    "goodput_ratio": ("goodput", "ratio"),
}
_DERIVED = ("success_rate",)


@dataclass(frozen=True, slots=True)
class Criterion:
    """One ``metric op target`` (or ``metric: max|min``)."""

    metric: str
    op: str  # <=, >=, <, >, max, min
    target: float = 0.0

    def margin(self, v: float | None) -> float:
        """How far ``v`` is inside the target, relative to it (>= 0: met; -inf: no value)."""
        if v is None or not math.isfinite(v):
            return -math.inf
        if self.op in ("max", "min"):
            return 0.0
        scale = abs(self.target) or 1.0
        return ((self.target - v) if self.op in ("<=", "<") else (v - self.target)) / scale

    def met(self, v: float | None) -> bool:
        m = self.margin(v)
        return m > 0 if self.op in ("<", ">") else m >= 0

    def text(self) -> str:
        return (
            f"{self.metric} {self.op}"
            if self.op in ("max", "min")
            else f"{self.metric} {self.op} {self.target:g}"
        )


def percentile_of(metric: str) -> float | None:
    """The percentile a metric name asks for (``p99_ttft`` -> 99.0; ``median_x`` -> 50.0), else None."""
    m = _STAT.match(metric)
    if m is None:
        return None
    stat = m.group(1)
    if stat == "median":
        return 50.0
    if stat.startswith("p"):
        digits = stat[1:]
        if "." not in digits and len(digits) > 2:  # p999 -> 99.9
            return float(digits[:2] + "." + digits[2:])
        return float(digits)
    return None


def _latency_names() -> tuple[str, ...]:
    from evalscope.perf.metrics import metric_names

    return metric_names()


def check_metric_name(name: str) -> None:
    """Raise ValueError naming the allowed forms when ``name`` is not a metric of the summary."""
    if name in _PLAIN or name in _DERIVED:
        return
    m = _STAT.match(name)
    if m is not None:
        lat = _ALIASES.get(m.group(2), m.group(2))
        if lat in _latency_names():
            q = percentile_of(name)
            if q is not None and not 0 < q < 100:
                raise ValueError(f"{name}: the percentile must be between 0 and 100")
            return
    raise ValueError(
        f"unknown SLA metric {name!r}; use one of {', '.join(list(_PLAIN) + list(_DERIVED))} or "
        f"<avg|min|max|median|pNN>_<{'|'.join(_latency_names())}> (e.g. p99_ttft)"
    )


def parse_criterion(metric: str, value: Any) -> Criterion:
    """``("p99_ttft", "<=500")`` -> Criterion; a one-line ValueError otherwise."""
    check_metric_name(metric)
    text = str(value).strip().replace("≤", "<=").replace("≥", ">=").replace(" ", "")
    if text.lower() in ("max", "min"):
        return Criterion(metric, text.lower())
    for op in _OPS:
        if text.startswith(op):
            m = _TARGET.match(text[len(op) :])
            if m is None:
                break
            target = float(m.group(1))
            unit = m.group(2)
            if unit == "s":
                target *= 1000.0
            elif unit == "%":
                target /= 100.0
            return Criterion(metric, op, target)
    raise ValueError(
        f'--sla-params {metric}: {value!r} is not a target; write e.g. "<=500" (ms), "<=2s", ">=10" or "max"'
    )


def normalise_sla_params(v: Any) -> Any:
    """``--sla-params`` as given (JSON text, a dict, a list of dicts) -> a list of {metric: target text}."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f'not valid JSON ({exc.msg} at char {exc.pos}); e.g. \'[{{"p99_ttft": "<=500"}}]\''
            ) from None
    if isinstance(v, dict):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(g, dict) and g for g in v):
        raise ValueError('must be a non-empty list of non-empty groups, e.g. [{"p99_ttft": "<=500"}]')
    out = [{str(k): str(val) for k, val in g.items()} for g in v]
    groups = parse_groups(out)
    extrema = [c for g in groups for c in g if c.op in ("max", "min")]
    if extrema and (len(groups) != 1 or len(groups[0]) != 1):
        raise ValueError("max / min must be the only criterion (one group with one metric)")
    return out


def parse_groups(params: list[dict[str, str]]) -> list[list[Criterion]]:
    return [[parse_criterion(k, val) for k, val in g.items()] for g in params]


def check_capacity_options(cfg: Any) -> None:
    """Cross-option checks of the capacity-planning options (ValueError -> one ConfigError line)."""
    if cfg.sla_num_runs is not None and "sla_repeats" not in cfg.model_fields_set:
        cfg.sla_repeats = cfg.sla_num_runs
    modes = [n for n, on in (("--sweep", cfg.sweep), ("--sla-auto-tune", cfg.sla_auto_tune)) if on]
    if len(modes) > 1:
        raise ValueError("--sweep and --sla-auto-tune are separate searches: give one of them")
    if cfg.sla_auto_tune and not cfg.sla_params:
        raise ValueError('--sla-auto-tune needs --sla-params, e.g. \'[{"p99_ttft": "<=500"}]\'')
    if modes and cfg.rate is not None:
        raise ValueError(f"{modes[0]} chooses the rates itself: drop --rate")
    if modes and cfg.repeats > 1:
        raise ValueError(f"{modes[0]} repeats its own probes (--sla-repeats): drop --repeats")
    if (
        cfg.sla_params
        and any(c.metric.startswith("goodput") for g in parse_groups(cfg.sla_params) for c in g)
        and not cfg.goodput
    ):
        raise ValueError("an SLA on goodput needs --goodput SLOs (e.g. --goodput ttft:500)")
    lo, hi = cfg.sla_lower_bound, cfg.sla_upper_bound
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("--sla-lower-bound must be <= --sla-upper-bound")
    if cfg.sla_fixed_parallel is not None and "parallel" not in cfg.model_fields_set:
        cfg.parallel = [cfg.sla_fixed_parallel]
        cfg.model_fields_set.add("parallel")  # an explicit cap for the open-loop probes


# ---- values of a stage summary ---------------------------------------------------------------------------


def metric_value(summary: dict[str, Any], name: str) -> float | None:
    """The value of one SLA metric in a stage summary (None when the summary has none)."""
    if name in _PLAIN:
        a, b = _PLAIN[name]
        block = summary.get(a)
        v = block.get(b) if isinstance(block, dict) else None
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    if name == "success_rate":
        er = metric_value(summary, "error_rate")
        return None if er is None else 1.0 - er
    m = _STAT.match(name)
    if m is None:
        return None
    stats = summary.get(_ALIASES.get(m.group(2), m.group(2)))
    if not isinstance(stats, dict):
        return None
    stat = m.group(1)
    if stat == "avg":
        stat = "mean"
    elif stat == "median":
        stat = "p50"
    elif stat.startswith("p"):
        from evalscope.perf.histogram import pct_key

        q = percentile_of(name)
        stat = pct_key(q) if q is not None else stat
    v = stats.get(stat)
    return float(v) if isinstance(v, int | float) else None


def needed_percentiles(groups: list[list[Criterion]]) -> tuple[float, ...]:
    """Percentiles the criteria read (so that probe summaries compute them)."""
    out = {q for g in groups for c in g if (q := percentile_of(c.metric)) is not None}
    return tuple(sorted(out))


# ---- statistics over repeats -----------------------------------------------------------------------------

#: Two-sided 95% Student t quantiles for 1..30 degrees of freedom (then the normal 1.96).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)  # fmt: skip


def mean_ci(values: list[float | None]) -> dict[str, Any]:
    """Mean and 95% confidence half-width (Student t) of repeated measurements; half-width None for one."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return {"mean": None, "ci95": None, "n": 0, "values": values}
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n, "values": values}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    t = _T95[n - 2] if n - 2 < len(_T95) else 1.96
    return {"mean": mean, "ci95": t * sd / math.sqrt(n), "sd": sd, "n": n, "values": values}


# ---- probes and the searches -----------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """One value of the variable, measured ``len(runs)`` times; ``met`` when every run met the SLA."""

    value: float
    runs: list[dict[str, Any]] = field(default_factory=list)  # the measured (warm-up-free) stage summaries
    stages: list[int] = field(default_factory=list)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> mean_ci
    margin: float = -math.inf
    met: bool = False
    saturated: bool = False
    groups: list[bool] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "met": self.met,
            "margin": None if not math.isfinite(self.margin) else self.margin,
            "saturated": self.saturated,
            "groups_met": self.groups,
            "stages": self.stages,
            "metrics": self.metrics,
            "runs": [
                {
                    "stage": r.get("stage"),
                    "requests": (r.get("requests") or {}).get("succeeded"),
                    "duration_s": r.get("duration_s"),
                    "stopped_early": r.get("stopped_early"),
                }
                for r in self.runs
            ],
        }


def judge(result: ProbeResult, groups: list[list[Criterion]]) -> None:
    """Fill ``metrics``, ``margin``, ``met`` and ``groups`` of a probe from its runs.

    With repeats, each metric is judged at its worst run (the largest value for an upper bound), so a value
    passes only if every run met the SLA; the mean and 95% interval are reported alongside. (Judging at the
    interval's end was tried: with two runs Student's t is 12.7, and one noisy percentile failed any value.)
    """
    names = list(dict.fromkeys(c.metric for g in groups for c in g))
    for extra in ("rps", "tps", "error_rate", "p99_ttft", "mean_ttft", "p99_tpot", "p99_e2e_latency"):
        if extra not in names:
            names.append(extra)
    result.metrics = {n: mean_ci([metric_value(r, n) for r in result.runs]) for n in names}
    group_margins: list[float] = []
    result.groups = []
    for g in groups:
        ms: list[float] = []
        ok = True
        for c in g:
            vals = [x for x in result.metrics[c.metric]["values"] if x is not None]
            v = None if not vals else (max(vals) if c.op in ("<=", "<") else min(vals))
            ms.append(c.margin(v))
            ok = ok and c.met(v)
        group_margins.append(min(ms))
        result.groups.append(ok)
    result.margin = max(group_margins) if group_margins else -math.inf
    result.met = any(result.groups) and not result.saturated
    if result.saturated:
        result.margin = -math.inf


Search = Generator[float, ProbeResult, dict[str, Any]]


def _resolved(lo: float, hi: float, resolution: float, integer: bool) -> bool:
    if integer and hi - lo <= 1:
        return True
    return (hi - lo) <= resolution * lo


def _inside(lo: float, hi: float, x: float, integer: bool) -> float:
    """``x`` moved strictly inside (lo, hi): at least a fifth of the bracket from either end."""
    span = hi - lo
    x = min(max(x, lo + 0.2 * span), hi - 0.2 * span)
    if integer:
        x = float(round(x))
        x = min(max(x, lo + 1), hi - 1)
    return x


def constraint_search(
    lower: float, upper: float, resolution: float, integer: bool, start: float | None = None
) -> Search:
    """The largest value meeting the SLA: bracket by doubling (or halving), then interpolate the margin.

    Yields probe values; receives their results; returns the answer block.
    """
    tried: dict[float, ProbeResult] = {}

    def value(x: float) -> float:
        x = min(max(x, lower), upper)
        return float(round(x)) if integer else x

    best: float | None = None  # largest value met
    worst: float | None = None  # smallest value failed
    x = value(start if start is not None else lower)
    r = yield x
    tried[x] = r
    if r.met:
        best = x
        while best < upper:
            x = value(best * 2)
            r = yield x
            tried[x] = r
            if not r.met:
                worst = x
                break
            best = x
    else:
        worst = x
        while worst > lower:
            x = value(worst / 2)
            if x == worst:
                break
            r = yield x
            tried[x] = r
            if r.met:
                best = x
                break
            worst = x
    if best is not None and worst is not None:
        while not _resolved(best, worst, resolution, integer):
            m_lo, m_hi = tried[best].margin, tried[worst].margin
            if math.isfinite(m_lo) and math.isfinite(m_hi) and m_lo > m_hi:
                x = best + (worst - best) * m_lo / (m_lo - m_hi)  # where the margin crosses zero
            else:
                x = (best + worst) / 2
            x = _inside(best, worst, x, integer)
            if x in tried or not best < x < worst:
                break
            r = yield x
            tried[x] = r
            if r.met:
                best = x
            else:
                worst = x
    reason = "resolved"
    if best is None:
        reason = "no value met the SLA (not even the lower bound)"
    elif worst is None:
        reason = "the upper bound met the SLA"
    return {"mode": "constraint", "largest_met": best, "smallest_failed": worst, "reason": reason}


def maximise(
    lower: float,
    upper: float,
    resolution: float,
    integer: bool,
    metric: str,
    sign: float,
    start: float | None = None,
) -> Search:
    """The value where ``sign * metric`` is largest: double while it improves by more than the resolution,
    then a ternary search inside the bracket around the best value."""
    seen: dict[float, float] = {}

    def value(x: float) -> float:
        x = min(max(x, lower), upper)
        return float(round(x)) if integer else x

    def score(r: ProbeResult) -> float:
        v = (r.metrics.get(metric) or {}).get("mean")
        return -math.inf if v is None else sign * float(v)

    x = value(start if start is not None else lower)
    seen[x] = score((yield x))
    while x < upper:
        nxt = value(x * 2)
        if nxt == x:
            break
        seen[nxt] = score((yield nxt))
        if seen[nxt] <= seen[x] + resolution * abs(seen[x]):
            x = nxt
            break
        x = nxt
    xs = sorted(seen)
    b = max(xs, key=lambda k: seen[k])
    i = xs.index(b)
    lo, hi = xs[max(0, i - 1)], xs[min(len(xs) - 1, i + 1)]
    while not _resolved(lo, hi, resolution, integer) and hi - lo > (2 if integer else 0):
        m1 = value(lo + (hi - lo) / 3)
        m2 = value(hi - (hi - lo) / 3)
        if m1 == m2:
            break
        for m in (m1, m2):
            if m not in seen:
                seen[m] = score((yield m))
        if seen[m1] < seen[m2]:
            lo = m1
        else:
            hi = m2
    best = max(seen, key=lambda k: seen[k])
    return {
        "mode": "max" if sign > 0 else "min",
        "metric": metric,
        "best": best,
        "best_value": sign * seen[best] if math.isfinite(seen[best]) else None,
    }

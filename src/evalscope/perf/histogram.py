"""One latency distribution: :class:`Metric`, an HDR histogram plus exact count, sum, min and max.

Split from the aggregator so that small modules (coverage, per-metric classes) can hold a distribution
without importing the aggregator back. May import: numpy, hdrh; nothing from evalscope.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
#: Percentiles always present in the summary (``p999`` is 99.9).
SUMMARY_PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p999", 99.9),
)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


#: HDR sub-bucket quantisation for 3 significant digits: values below 2048 µs are exact, larger ones keep
#: their top 11 bits. Pre-quantising lets :class:`Metric` count repeats in a small dict (a few hundred ns per
#: sample) and hand each distinct value to the (pure-Python, ~6 µs per call) HDR histogram once.
_SUB_BUCKET_BITS = 11
_PENDING_MAX = 4096
#: Single samples buffered by :meth:`Metric.record` before numpy folds them in.
_BUF_MAX = 2048


def quantise(
    values_ns: np.ndarray, weights: np.ndarray | None = None
) -> tuple[list[int], list[int], int, float, float, float]:
    """Samples (ns) -> (HDR bucket keys in µs, counts, n, sum ns, min ns, max ns), as :meth:`Metric.record`."""
    v, lo, hi = _clamped(values_ns)
    us = _quantised_us(v, lo, hi)
    if weights is None:
        keys, counts = np.unique(us, return_counts=True)
        return keys.tolist(), counts.tolist(), int(v.size), float(v.sum()), lo, hi
    keys, inv = np.unique(us, return_inverse=True)
    wcounts = np.bincount(inv, weights=weights).astype(np.int64)
    return keys.tolist(), wcounts.tolist(), int(weights.sum()), float((v * weights).sum()), lo, hi


def _clamped(v: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Samples with negative values (clock noise) as 0, and their min and max."""
    lo = float(v.min())
    if lo < 0:
        v = np.maximum(v, 0)
        lo = 0.0
    return v, lo, float(v.max())


def _quantised_us(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Non-negative samples (ns; ``lo`` / ``hi`` their min / max) -> HDR bucket keys in µs (int64), the same keys
    :func:`bucket_us` gives one by one.

    Why not ``(v + 500.0) // 1000.0``: numpy's float floor division is Python's (through ``fmod``), about 17 ns a
    sample; a fold of 32,768 gaps spent half a millisecond there, a pause of the event loop that makes the reads
    arriving in it late. Integer samples take integer division; float ones a true division and a floor."""
    if v.dtype.kind in "iu":
        if hi >= HIGHEST_US * 1000.0:
            v = np.minimum(v, HIGHEST_US * 1000)  # and no overflow of a forged value near 2**63 below
        us = (v + 500) // 1000
    else:
        # the exact floor of a / 1000 (what Python's // gives): the correctly rounded quotient of a < 1000 k never
        # reaches k, as 1000 k - a >= ulp(1000 k) >= 512 ulp(k) puts a / 1000 over half a float spacing below k
        us = np.floor((v + 500.0) / 1000.0).astype(np.int64)
    if lo < 500.0 or hi >= HIGHEST_US * 1000.0:
        us = np.clip(us, LOWEST_US, HIGHEST_US)
    if hi >= (1 << _SUB_BUCKET_BITS) * 1000.0 - 500.0:
        # keep the top 11 bits
        shift = np.maximum(_bit_length(us) - _SUB_BUCKET_BITS, 0)
        us = (us >> shift) << shift
    return us  # type: ignore[no-any-return]


def _bit_length(a: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of each non-negative int64 below 2**53 (0 gives a negative number), read from the
    exponent of its exact float64 form: ``np.frexp`` costs about ten times as much."""
    e: np.ndarray = (a.astype(np.float64).view(np.int64) >> 52) - 1022
    return e


def bucket_us(ns: float) -> int:
    """A non-negative sample in ns -> its HDR bucket key in µs (clamped to the range; values above 2048 µs keep
    their top 11 bits, HDR's own bucket boundary, so no precision is lost)."""
    us = int((ns + 500.0) // 1000.0)  # numpy's quantise computes the same (floor division, not int())
    if us < LOWEST_US:
        return LOWEST_US
    if us > HIGHEST_US:
        us = HIGHEST_US
    shift = us.bit_length() - _SUB_BUCKET_BITS
    return (us >> shift) << shift if shift > 0 else us


def value_at_percentile(hist: HdrHistogram, p: float) -> int:
    """``hist.get_value_at_percentile(p)``, the same answer, with the scan of the counts done by numpy.

    hdrh walks its counts array in Python (one call per bucket: about 10 ms for our 1 µs..1 h range); the live
    progress asks for two percentiles four times a second, and every such walk is a pause of the event loop
    that delays the receive stamps of the streams in flight.
    """
    target = hist.get_target_count_at_percentile(p)
    raw = (
        hist.counts
    )  # a ctypes array; read through the buffer protocol (np.ctypeslib's view sums 10x slower)
    counts = np.frombuffer(memoryview(raw).cast("B"), dtype=np.dtype(raw._type_))
    idx = int(np.searchsorted(np.cumsum(counts), target, side="left"))
    if idx >= len(counts):
        return 0
    value = hist.get_value_from_index(idx)
    return int(hist.get_highest_equivalent_value(value) if p else hist.get_lowest_equivalent_value(value))


#: Distinct values from which a flush adds them with numpy (hdrh's ``record_value`` is ~3 µs of Python each).
_FLUSH_VECTOR_MIN = 16


def _add_counts(h: HdrHistogram, pending: dict[int, int]) -> None:
    """``h.record_value(v, c)`` for every item of ``pending``, at once (see :func:`_add_array`)."""
    n = len(pending)
    vals = np.fromiter(pending.keys(), dtype=np.int64, count=n)
    cnts = np.fromiter(pending.values(), dtype=np.int64, count=n)
    _add_array(h, vals, cnts)


def _add_array(h: HdrHistogram, vals: np.ndarray, cnts: np.ndarray | None) -> None:
    """``h.record_value(v, c)`` for every value (int64 µs, in the histogram's range: Metric clamps them) and
    count (1 each when ``cnts`` is None), on numpy arrays."""
    lo, hi = int(vals.min()), int(vals.max())
    _add_indexed(h, _counts_index(h, vals, hi), lo, hi, int(vals.size) if cnts is None else cnts)


def _counts_index(h: HdrHistogram, vals: np.ndarray, hi: int) -> np.ndarray:
    """hdrh's ``_counts_index_for`` of every value (int64 µs in range, ``hi`` their max): the bucket from the bit
    length of ``v | sub_bucket_mask``. In the first bucket (below 2048 µs: most gaps) the index is the value."""
    if h.unit_magnitude == 0 and hi < h.sub_bucket_count:
        return vals
    bitlen = _bit_length(vals | h.sub_bucket_mask)
    bucket = bitlen - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = vals >> (bucket + h.unit_magnitude)
    idx: np.ndarray = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
    return idx


def _add_indexed(h: HdrHistogram, idx: np.ndarray, lo: int, hi: int, cnts: np.ndarray | int) -> None:
    """Count values at their counts indexes (:func:`_counts_index`); ``lo`` / ``hi``: their min and max (µs);
    ``cnts``: their counts, or the number of values when each counts once."""
    raw = h.counts
    counts = np.frombuffer(memoryview(raw).cast("B"), dtype=np.dtype(raw._type_))
    # in the counts' own dtype: a mixed-type np.add.at takes a slow path (about 20x)
    if isinstance(cnts, int):
        np.add.at(counts, idx, counts.dtype.type(1))
        h.total_count += cnts
    else:
        np.add.at(counts, idx, cnts.astype(counts.dtype))
        h.total_count += int(cnts.sum())
    h.min_value = min(h.min_value, lo)
    h.max_value = max(h.max_value, hi)


def _layout(h: HdrHistogram) -> tuple[int, int, int]:
    """What a counts index depends on: histograms alike in it share one :func:`_counts_index`."""
    return h.unit_magnitude, h.sub_bucket_half_count_magnitude, h.counts_len


class Metric:
    """An HDR histogram in microseconds plus exact count, sum, min and max in nanoseconds.

    Single samples (:meth:`record`, :meth:`record_all`) are appended to a list and folded straight into the HDR
    counts by numpy 2048 at a time, or when anything is read: the aggregator records about twenty per request
    (six latencies, a short stream's gaps twice), and the per-sample Python work (bucket, dict, moments) was
    about 1 µs each. Every read (``count``, ``sum_ns``, ``min_ns``, ``max_ns``, ``hist``) sees them.
    """

    __slots__ = ("_bsum", "_buf", "_count", "_hist", "_max", "_min", "_pending", "_sum")

    def __init__(self) -> None:
        self._hist = new_histogram()
        self._pending: dict[int, int] = {}
        self._buf: list[float] = []
        self._bsum = 0.0  # the buffered samples' sum (negative ones as 0), for totals() without a fold
        self._count = 0
        self._sum = 0.0
        self._min = float("inf")
        self._max = float("-inf")

    @property
    def count(self) -> int:
        if self._buf:
            self._fold_buffer()
        return self._count

    @property
    def sum_ns(self) -> float:
        if self._buf:
            self._fold_buffer()
        return self._sum

    @property
    def min_ns(self) -> float:
        if self._buf:
            self._fold_buffer()
        return self._min

    @property
    def max_ns(self) -> float:
        if self._buf:
            self._fold_buffer()
        return self._max

    def totals(self) -> tuple[int, float]:
        """(count, sum ns) without folding the buffer: what a per-request difference needs, cheaply."""
        return self._count + len(self._buf), self._sum + self._bsum

    @property
    def hist(self) -> HdrHistogram:
        """The HDR histogram with every sample recorded so far."""
        self._flush()
        return self._hist

    def _fold_buffer(self) -> None:
        """Fold the buffered single samples in: quantised as :func:`bucket_us` does and added to the HDR counts,
        all in numpy (no Python step per sample or per distinct value)."""
        buf = self._buf
        if buf:
            v = np.asarray(buf, dtype=np.float64)
            buf.clear()
            self._bsum = 0.0
            self.record_array(v)

    def record_array(self, values_ns: np.ndarray) -> None:
        """Add one sample per element of an int64 or float64 array (ns), exactly as that many :meth:`record` calls
        would."""
        record_arrays((self,), values_ns)

    def _moments(self, n: int, total_ns: float, lo_ns: float, hi_ns: float) -> None:
        """Exact count, sum, min and max of samples added to the histogram."""
        self._count += n
        self._sum += total_ns
        if lo_ns < self._min:
            self._min = lo_ns
        if hi_ns > self._max:
            self._max = hi_ns

    def _flush(self) -> None:
        if self._buf:
            self._fold_buffer()
        pending = self._pending
        if not pending:
            return
        h = self._hist
        if len(pending) < _FLUSH_VECTOR_MIN:
            rec = h.record_value
            for v, c in pending.items():
                rec(v, c)
        else:
            _add_counts(h, pending)
        pending.clear()

    def record(self, ns: float, count: int = 1) -> None:
        """Add ``count`` samples of ``ns`` nanoseconds (negative values, e.g. clock noise, count as 0)."""
        if count == 1:
            buf = self._buf
            buf.append(ns)
            if ns > 0:
                self._bsum += ns
            if len(buf) >= _BUF_MAX:
                self._fold_buffer()
            return
        if ns < 0:
            ns = 0
        us = bucket_us(ns)
        pending = self._pending
        pending[us] = pending.get(us, 0) + count
        if len(pending) > _PENDING_MAX:
            self._flush()
        self._count += count
        self._sum += ns * count
        if ns < self._min:
            self._min = ns
        if ns > self._max:
            self._max = ns

    def record_all(self, values_ns: list[int] | list[float]) -> None:
        """Add one sample per value (a short stream's gaps): buffered like single samples, folded by numpy."""
        if not values_ns:
            return
        buf = self._buf
        buf.extend(values_ns)
        self._bsum += sum(values_ns) if min(values_ns) >= 0 else sum(v for v in values_ns if v > 0)
        if len(buf) >= _BUF_MAX:
            self._fold_buffer()

    def record_many(self, values_ns: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add many samples at once (vectorised; ``weights`` are per-sample counts, default 1)."""
        if values_ns.size:
            self.add_quantised(*quantise(values_ns, weights))

    def add_quantised(
        self, keys: list[int], counts: list[int], n: int, total_ns: float, lo_ns: float, hi_ns: float
    ) -> None:
        """Add samples already reduced by :func:`quantise` (lets two metrics share one computation)."""
        pending = self._pending
        for k, c in zip(keys, counts, strict=True):
            pending[k] = pending.get(k, 0) + c
        if len(pending) > _PENDING_MAX:
            self._flush()
        self._moments(n, total_ns, lo_ns, hi_ns)

    def percentile_ms(self, p: float) -> float | None:
        """``p`` (0-100) percentile in ms from the histogram, clamped to the exact min / max."""
        if self.count == 0:
            return None
        v_ns = float(value_at_percentile(self.hist, p)) * 1000.0
        return min(max(v_ns, self.min_ns), self.max_ns) / 1e6

    def mean_ms(self) -> float | None:
        return None if self.count == 0 else self.sum_ns / self.count / 1e6

    def stats(self, extra_percentiles: tuple[float, ...] = ()) -> dict[str, Any] | None:
        """``{mean, min, max, p50, p90, p95, p99, p999}`` in ms (None when no sample)."""
        if self.count == 0:
            return None
        out: dict[str, Any] = {
            "mean": self.sum_ns / self.count / 1e6,
            "min": self.min_ns / 1e6,
            "max": self.max_ns / 1e6,
        }
        for key, p in SUMMARY_PERCENTILES:
            out[key] = self.percentile_ms(p)
        for p in extra_percentiles:
            key = pct_key(p)
            if key not in out:
                out[key] = self.percentile_ms(p)
        out["count"] = self.count
        return out

    def merge(self, other: Metric) -> None:
        """Add ``other``'s samples (exact: HDR histograms with the same layout add bucket by bucket)."""
        if other.count == 0:
            return
        self.hist.add(other.hist)
        self._count += other.count
        self._sum += other.sum_ns
        self._min = min(self._min, other.min_ns)
        self._max = max(self._max, other.max_ns)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state: the histogram in HDR's compressed encoding (base64), exact moments alongside."""
        return {
            "hist": base64.b64encode(self.hist.encode()).decode("ascii") if self.count else None,
            "count": self.count,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns if self.count else None,
            "max_ns": self.max_ns if self.count else None,
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> Metric:
        m = cls()
        if d.get("count"):
            m._hist = HdrHistogram.decode(base64.b64decode(d["hist"]))
            m._count = int(d["count"])
            m._sum = float(d["sum_ns"])
            m._min = float(d["min_ns"])
            m._max = float(d["max_ns"])
        return m


def record_arrays(metrics: tuple[Metric, ...] | list[Metric], values_ns: np.ndarray) -> None:
    """:meth:`Metric.record_array` of the same samples into several metrics, bucketed once (the gap metrics)."""
    if not values_ns.size:
        return
    v, lo, hi = _clamped(values_ns)
    us = _quantised_us(v, lo, hi)
    n, total = int(v.size), float(v.sum())
    us_lo, us_hi = int(us.min()), int(us.max())
    done: dict[tuple[int, int, int], np.ndarray] = {}
    for m in metrics:
        h = m._hist
        key = _layout(h)
        idx = done.get(key)
        if idx is None:
            idx = done[key] = _counts_index(h, us, us_hi)
        _add_indexed(h, idx, us_lo, us_hi, n)
        m._moments(n, total, lo, hi)


def pct_key(p: float) -> str:
    """50 -> ``p50``, 99.9 -> ``p999``, 99.99 -> ``p9999``."""
    return "p" + f"{p:g}".replace(".", "")

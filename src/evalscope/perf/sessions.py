"""Multi-turn sessions (``--multi-turn``): a conversation's turns sent in order with the growing history.

A session holds one concurrency slot (``--parallel`` sessions at a time; with ``--rate`` sessions *start* at
open-loop arrival times) for its whole life. Turn *k* is sent once turn *k-1*'s record is in: the history is
every earlier user turn followed by the model's actual reply, plus the new user turn; between a reply and the
next turn the session waits its think time (``--think-time``). A failed or cancelled turn ends the session.

The core's one dispatch loop claims sessions instead of requests: :func:`session_launcher` gives it the
function that starts session *i* as one task (the per-request path of ordinary runs is untouched). Every turn is an ordinary request and record (id
``SESSION-TURN``) in the stage's aggregator; :class:`SessionStats` adds TTFT and E2E latency by turn index and
the session-level numbers (duration from the first send to the last reply, turns completed). Its state is
JSON-ready, so worker processes hand it over like their other results and the coordinator merges them
exactly (a session never leaves the worker that claimed it).

May import: ``engine`` (client, records), ``perf.histogram``, ``perf.schedule``, ``perf.coverage``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

from evalscope.engine.client import yield_then
from evalscope.engine.records import Request, RequestRecord
from evalscope.perf.histogram import Metric

_clock = time.perf_counter_ns

#: Turns from this index on share the last per-turn bucket (reported as ``"32+"``).
MAX_TURN_BUCKETS = 32


@dataclass(frozen=True, slots=True)
class ThinkTime:
    """Seconds between a reply and the next turn: fixed, uniform in [lo, hi], or exponential with a mean."""

    kind: str  # fixed | uniform | exp
    a: float
    b: float = 0.0

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0


def parse_think_time(spec: str) -> ThinkTime:
    """``S`` | ``uniform:LO,HI`` | ``exp:MEAN`` (seconds) -> :class:`ThinkTime`; ValueError on bad input."""
    text = spec.strip().lower()
    hint = "use S, uniform:LO,HI or exp:MEAN (seconds), e.g. --think-time exp:2"
    kind, sep, rest = text.partition(":")
    try:
        if not sep:
            v = float(text)
            if v < 0:
                raise ValueError
            return ThinkTime("fixed", v)
        nums = [float(x) for x in rest.split(",")]
    except ValueError:
        raise ValueError(f"{spec!r} is not a think time; {hint}") from None
    if kind == "uniform" and len(nums) == 2 and 0 <= nums[0] <= nums[1]:
        return ThinkTime("uniform", nums[0], nums[1])
    if kind in ("exp", "exponential") and len(nums) == 1 and nums[0] >= 0:
        return ThinkTime("exp", nums[0])
    raise ValueError(f"{spec!r} is not a think time; {hint}")


class SessionStats:
    """Per-turn and per-session numbers of one stage (one core's share, mergeable)."""

    __slots__ = (
        "completed",
        "cut",
        "durations",
        "e2e_by_turn",
        "failed",
        "ok_by_turn",
        "started",
        "ttft_by_turn",
        "turns_completed",
    )

    def __init__(self) -> None:
        self.ttft_by_turn: list[Metric] = []
        self.e2e_by_turn: list[Metric] = []
        self.ok_by_turn: list[int] = []
        self.durations = Metric()
        self.turns_completed: dict[int, int] = {}  # turns completed -> sessions
        self.started = 0
        self.completed = 0  # every turn succeeded
        self.failed = 0  # a turn failed
        self.cut = 0  # stopped by the deadline, a stop or a cancel

    def _bucket(self, turn: int) -> int:
        k = min(turn, MAX_TURN_BUCKETS - 1)
        while len(self.ttft_by_turn) <= k:
            self.ttft_by_turn.append(Metric())
            self.e2e_by_turn.append(Metric())
            self.ok_by_turn.append(0)
        return k

    def turn(self, turn: int, rec: RequestRecord) -> None:
        if rec.status != "ok":
            return
        k = self._bucket(turn)
        self.ok_by_turn[k] += 1
        ttft = rec.ttft_ns()
        if ttft is not None:
            self.ttft_by_turn[k].record(max(0, ttft))
        e2e = rec.e2e_ns()
        if e2e is not None:
            self.e2e_by_turn[k].record(max(0, e2e))

    def session(self, outcome: str, turns_ok: int, duration_ns: int | None) -> None:
        self.started += 1
        if outcome == "completed":
            self.completed += 1
        elif outcome == "failed":
            self.failed += 1
        else:
            self.cut += 1
        self.turns_completed[turns_ok] = self.turns_completed.get(turns_ok, 0) + 1
        if duration_ns is not None and outcome == "completed":
            self.durations.record(max(0, duration_ns))

    # ---- hand-over and merge ------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "ttft": [m.to_state() for m in self.ttft_by_turn],
            "e2e": [m.to_state() for m in self.e2e_by_turn],
            "ok": list(self.ok_by_turn),
            "durations": self.durations.to_state(),
            "turns_completed": {str(k): v for k, v in self.turns_completed.items()},
            "counts": [self.started, self.completed, self.failed, self.cut],
        }

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> SessionStats:
        s = cls()
        s.ttft_by_turn = [Metric.from_state(x) for x in d["ttft"]]
        s.e2e_by_turn = [Metric.from_state(x) for x in d["e2e"]]
        s.ok_by_turn = [int(x) for x in d["ok"]]
        s.durations = Metric.from_state(d["durations"])
        s.turns_completed = {int(k): int(v) for k, v in d["turns_completed"].items()}
        s.started, s.completed, s.failed, s.cut = (int(x) for x in d["counts"])
        return s

    def merge(self, other: SessionStats) -> None:
        for k in range(len(other.ttft_by_turn)):
            self._bucket(k)
            self.ttft_by_turn[k].merge(other.ttft_by_turn[k])
            self.e2e_by_turn[k].merge(other.e2e_by_turn[k])
            self.ok_by_turn[k] += other.ok_by_turn[k]
        self.durations.merge(other.durations)
        for n, c in other.turns_completed.items():
            self.turns_completed[n] = self.turns_completed.get(n, 0) + c
        self.started += other.started
        self.completed += other.completed
        self.failed += other.failed
        self.cut += other.cut

    def summary(self, percentiles: tuple[float, ...] = ()) -> dict[str, Any]:
        """The ``sessions`` block of a stage summary (latencies in ms)."""
        n_turns = sum(n * c for n, c in self.turns_completed.items())
        by_turn = []
        for k in range(len(self.ttft_by_turn)):
            by_turn.append(
                {
                    "turn": str(k + 1) if k < MAX_TURN_BUCKETS - 1 else f"{MAX_TURN_BUCKETS}+",
                    "succeeded": self.ok_by_turn[k],
                    "ttft": self.ttft_by_turn[k].stats(percentiles),
                    "e2e_latency": self.e2e_by_turn[k].stats(percentiles),
                }
            )
        return {
            "started": self.started,
            "completed": self.completed,
            "failed": self.failed,
            "cut": self.cut,
            "turns_completed": {
                "mean": n_turns / self.started if self.started else None,
                "histogram": {str(k): v for k, v in sorted(self.turns_completed.items())},
            },
            "duration": self.durations.stats(percentiles),
            "by_turn": by_turn,
        }


def merged_summary(states: list[dict[str, Any]], percentiles: tuple[float, ...] = ()) -> dict[str, Any]:
    """The cores' session states merged into one ``sessions`` block."""
    total = SessionStats()
    for d in states:
        total.merge(SessionStats.from_state(d))
    return total.summary(percentiles)


# ---- dispatch -----------------------------------------------------------------------------------------------


def session_launcher(core: Any, stats: SessionStats) -> Any:
    """The core's launch function for a sessions stage (see ``perf._core.Launch``): item *i* is session *i*,
    run as one task; ``number`` counts sessions, and with ``--rate`` a session's first turn is due at its
    arrival time."""
    cfg = core.cfg
    think = parse_think_time(cfg.think_time) if cfg.think_time else None

    def launch(st: Any, sem: asyncio.Semaphore, i: int, due: int | None, slot_ns: int) -> Any:
        p = core._prompt_at(st.prompt_base + i)
        turns = p.turns if p.turns else [p.prompt or ""]
        sid = f"warmup-{i}" if st.warmup else str(st.id_base + i)
        seed = cfg.seed * 1_000_003 + st.prompt_base + i
        return _session(
            core, st, sem, sid, turns, p.max_tokens, None if st.warmup else stats, think, seed, due or 0
        )

    return launch


async def _session(
    core: Any,
    st: Any,
    sem: asyncio.Semaphore,
    sid: str,
    turns: list[str],
    max_tokens: int | None,
    stats: SessionStats | None,
    think: ThinkTime | None,
    seed: int,
    first_due_ns: int = 0,
) -> None:
    task = asyncio.current_task()
    client = core.client
    count = core._tokenizer.count
    rng = random.Random(seed)
    history: list[dict[str, Any]] = []
    tokens = 0
    first_sent: int | None = None
    last_end: int | None = None
    done = 0
    outcome = "cut"
    try:
        for k, user in enumerate(turns):
            if k and think is not None:
                delay = think.draw(rng)
                if st.deadline_ns is not None and _clock() + delay * 1e9 >= st.deadline_ns:
                    break
                if delay > 0:
                    try:  # think, but stop thinking at once on Ctrl-C / abort
                        await asyncio.wait_for(core._stopping.wait(), delay)
                    except TimeoutError:
                        pass
            if core._stopping.is_set():
                break
            history.append({"role": "user", "content": user})
            tokens += count(user)
            now = _clock()
            due = first_due_ns if k == 0 and first_due_ns else now
            req = Request(
                request_id=f"{sid}-{k}",
                messages=list(history),
                max_tokens=max_tokens,
                min_tokens=core.cfg.min_tokens,
                params=core._params,
                prompt_tokens=tokens,
                scheduled_ns=due,
            )
            if st.first_sched_ns is None:
                st.first_sched_ns = due
            st.last_sched_ns = due

            def cancelled(r: RequestRecord, slot_ns: int = now) -> None:
                core._on_record(st, r, slot_ns)

            rec = await client.send(req, on_cancel=cancelled)
            await yield_then(core._on_record, st, rec, now)
            if stats is not None:
                stats.turn(k, rec)
            if first_sent is None:
                first_sent = rec.sent_ns
            last_end = rec.end_ns
            if rec.status != "ok":
                outcome = "failed" if rec.status == "error" else "cut"
                break
            done += 1
            reply = rec.text or ""
            history.append({"role": "assistant", "content": reply})
            tokens += count(reply)
        else:
            outcome = "completed"
    except asyncio.CancelledError:
        outcome = "cut"
    finally:
        sem.release()
        if task is not None:
            st.in_flight.discard(task)
        if stats is not None:
            dur = None if first_sent is None or last_end is None else last_end - first_sent
            stats.session(outcome, done, dur)

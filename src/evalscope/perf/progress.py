"""What a run tells its display: the :class:`Reporter` hooks and the :class:`LiveStage` snapshot they get.

Reporting consumes data, never the run object: the live view reads a :class:`LiveStage` (counters the cores
last reported), the end of a stage its summary dict. May import: nothing from evalscope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LiveStage:
    """The running stage as the cores last reported it (about four times a second)."""

    index: int
    parallel: int
    number: int | None
    duration_s: float | None
    warmup: bool = False
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    sent: int = 0
    in_flight: int = 0
    #: the last whole second: completed, failed, output tokens, in flight
    last_second: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    ttft_p50_ms: float | None = None
    e2e_p50_ms: float | None = None

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled


class Reporter:
    """Receives progress from the coordinator; the default does nothing (rendering is in report.py)."""

    def header(self, info: dict[str, Any]) -> None: ...

    def stage_start(self, live: LiveStage) -> None: ...

    def tick(self, live: LiveStage | None) -> None: ...

    def stage_end(self, summary: dict[str, Any]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...

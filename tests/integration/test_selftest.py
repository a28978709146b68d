"""``evalscope selftest`` measures the send side too, and a slow send makes a level dishonest."""

from __future__ import annotations

import numpy as np
import pytest

from evalscope.selftest import HONEST_P99_MS, SelftestConfig, is_honest, run_selftest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_honest_needs_both_sides_within_the_limit() -> None:
    small = np.full(100, 0.3)
    assert is_honest(0, small, small, small)
    late_send = np.full(100, HONEST_P99_MS + 3.0)  # a client that waits 5 ms between "sent" and the write
    assert not is_honest(0, small, small, late_send)
    assert not is_honest(0, small, small, np.zeros(0))  # no send-side figure: not proven honest
    assert not is_honest(1, small, small, small)
    assert HONEST_P99_MS <= 2.0  # the accuracy the docs claim


def test_selftest_reports_a_small_send_side_from_kernel_stamps() -> None:
    notes = []
    for _attempt in range(3):
        res = run_selftest(SelftestConfig(parallel=(8,), number=64, ttft_ms=20, itl_ms=2, output_tokens=10))
        lv = res["levels"][0]
        assert lv["failed"] == 0
        send = lv["send_side_ms"]
        assert send["clock"] == "kernel", send
        notes.append(f"send {send}, honest {lv['honest']}")
        if send["p99"] > HONEST_P99_MS:
            assert lv["honest"] is False  # the verdict follows the figure
        # The median moves one for one with a send delay; a loaded machine moves the tail (best of three).
        if send["p50"] < 1.5:
            return
    raise AssertionError("selftest send-side median >= 1.5 ms in every attempt: " + "; ".join(notes))

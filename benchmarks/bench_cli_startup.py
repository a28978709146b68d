"""Start-up time of ``evalscope --help`` and ``--version`` (target: well under 0.5 s). Median of 10 runs."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    exe = shutil.which("evalscope")
    base = [exe] if exe else [sys.executable, "-m", "evalscope"]
    rows = {}
    for flag in ("--help", "--version"):
        rows[flag] = statistics.median(timed([*base, flag]) for _ in range(10))
    for k, v in rows.items():
        print(f"evalscope {k:<10} {v * 1000:7.1f} ms")
    print(
        json.dumps(
            {"bench": "cli_startup", **{k.strip("-") + "_ms": round(v * 1000, 1) for k, v in rows.items()}}
        )
    )


if __name__ == "__main__":
    main()

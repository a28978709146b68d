"""The real-server rig lives in benchmarks/realservers (not a package): put it on the path for these tests."""

from __future__ import annotations

import sys
from pathlib import Path

RIG_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "realservers"
if str(RIG_DIR) not in sys.path:
    sys.path.insert(0, str(RIG_DIR))

"""``python -m evalscope.sim``: the same command as ``evalscope sim``."""

from __future__ import annotations

from evalscope.cli.sim import sim

if __name__ == "__main__":
    sim(prog_name="python -m evalscope.sim")

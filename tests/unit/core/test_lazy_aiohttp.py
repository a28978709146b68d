"""With the built-in transport, perf and eval against a server never import aiohttp (~0.1 s of start-up CPU):
the modules on those paths bind it lazily (engine/_lazy.py)."""

from __future__ import annotations

import subprocess
import sys


def test_perf_and_eval_runners_do_not_import_aiohttp() -> None:
    code = (
        "import sys; import evalscope.cli.perf, evalscope.perf.runner, evalscope.engine.preflight, "
        "evalscope.eval.models.api; print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_lazy_name_imports_on_first_use() -> None:
    from evalscope.engine._lazy import LazyModule

    lazy = LazyModule("json")
    assert lazy.dumps([1]) == "[1]"

"""Regenerate docs/compat.md from the compatibility tables in the code (evalscope.compat, evalscope.compat_cli).

Run: ``python scripts/gen_compat_docs.py``; ``tests/unit/core/test_compat.py`` fails when the page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from evalscope.compat import render_compat_markdown


def main() -> int:
    out = Path(__file__).resolve().parents[1] / "docs" / "compat.md"
    out.write_text(render_compat_markdown(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

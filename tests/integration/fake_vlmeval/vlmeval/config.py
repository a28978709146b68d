from __future__ import annotations

from typing import Any

supported_VLM: dict[str, Any] = {}

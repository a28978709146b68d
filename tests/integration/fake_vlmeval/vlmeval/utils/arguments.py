from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Arguments:
    data: list[str] = field(default_factory=list)
    model: list[Any] = field(default_factory=list)
    work_dir: str = "outputs"
    mode: str = "all"
    limit: int | None = None
    api_nproc: int = 4
    retry: int = 6
    judge: str | None = None
    reuse: bool = False
    verbose: bool = False

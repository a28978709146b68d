from __future__ import annotations

from typing import Any


class CustomAPIModel:
    def __init__(self, model: str = "custom", key: str = "EMPTY", api_base: str = "", **kwargs: Any) -> None:
        self.model = model
        self.key = key
        self.api_base = api_base
        self.kwargs = kwargs


GPT4V = CustomAPIModel

"""The word tokenizer shared by the simulator and perf: one token per whitespace-separated word, trailing
whitespace attached.

A real tokenizer would make the simulator depend on model files; a word tokenizer is deterministic, fast and
easy to reason about in tests. Perf counts prompt tokens with the same functions (``perf/tokenizer.py``'s word
tokenizer), so client and simulator agree exactly. A leaf module: it imports nothing from evalscope.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from typing import Any

#: A token is a run of non-space characters plus the whitespace after it (leading space joins the first).
TOKEN_RE = re.compile(r"\s*\S+\s*")

#: Size of the id space returned by ``/tokenize``; ids are stable across processes (crc32, not ``hash``).
VOCAB_SIZE = 100_000


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens; ``"".join(tokenize(t)) == t`` unless ``t`` is only whitespace."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Count tokens the way the simulator does (same as ``len(tokenize(text))``, without building a list)."""
    return len(text.split())


def token_ids(text: str) -> list[int]:
    """Deterministic token ids for ``/tokenize`` (crc32 of the stripped word, modulo :data:`VOCAB_SIZE`)."""
    return [zlib.crc32(w.encode()) % VOCAB_SIZE for w in text.split()]


def message_text(content: Any) -> str:
    """The text of one chat message ``content``: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def messages_text(messages: Iterable[Any]) -> str:
    """All message contents joined by newlines: what ``prompt_tokens`` counts for chat requests."""
    return "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))


def count_message_tokens(messages: Iterable[Any]) -> int:
    """Prompt tokens of a chat request: the word count of every message's text (no template overhead)."""
    return count_tokens(messages_text(messages))


def prompt_text(prompt: Any) -> str:
    """The text of a completions ``prompt``: a string, or a list of strings joined by newlines."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return "\n".join(prompt)
    return ""


def count_prompt_tokens(prompt: Any) -> int:
    """Prompt tokens of a completions request; a list of token ids counts one token per id."""
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return len(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        return sum(len(p) for p in prompt)
    return count_tokens(prompt_text(prompt))

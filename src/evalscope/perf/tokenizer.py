"""Token counting for prompt lengths: a Hugging Face tokenizer when given, else the simulator's word count.

``transformers`` is imported only when ``--tokenizer-path`` is used. Without it the word tokenizer counts one
token per whitespace-separated word, exactly as the built-in simulator does (both use ``evalscope.tokens``);
against a real model it is only an approximation, and the summary says which counter was used.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from evalscope.errors import ConfigError
from evalscope.tokens import count_tokens


class Tokenizer(Protocol):
    """What perf needs from a tokenizer."""

    name: str
    exact_for_simulator: bool

    def count(self, text: str) -> int: ...

    def count_own(self, text: str) -> int:
        """``count(text)`` for a text made of this tokenizer's random texts joined by single spaces (no
        leading or trailing space): the same number, possibly cheaper."""
        ...

    def random_text(self, n_tokens: int, rng: Any) -> str: ...

    def random_texts(self, lengths: list[int], rng: Any) -> list[str]: ...


_sim_count = count_tokens  # the simulator counts with the same function (evalscope/tokens.py)

#: A small fixed vocabulary for random prompts (plain lowercase words, one token each for the word counter).
_WORDS_TEXT = (
    "time year people way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night point "
    "home water room mother area money story fact month lot right study book eye job word business issue "
    "side kind head house service friend father power hour game line end member law car city community name "
    "president team minute idea kid body information back parent face others level office door health "
    "person art war history party result change morning reason research girl guy moment air teacher force "
    "education foot boy age policy process music market sense nation plan college interest death experience"
)
_WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())
_WORDS_ARRAY = np.array(_WORDS, dtype=object)


_PAIRS: np.ndarray | None = None


def _word_pairs() -> np.ndarray:
    """Every ordered pair of vocabulary words as one string ("a b"), made once (114 x 114 strings)."""
    global _PAIRS
    if _PAIRS is None:
        _PAIRS = np.array([f"{a} {b}" for a in _WORDS for b in _WORDS], dtype=object)
    return _PAIRS


class WordTokenizer:
    """One token per whitespace-separated word (the simulator's definition)."""

    name = "word (simulator-compatible; approximate for real models)"
    exact_for_simulator = True

    def count(self, text: str) -> int:
        return _sim_count(text)

    def count_own(self, text: str) -> int:
        # vocabulary words (no whitespace) joined by single spaces: one token per space, plus one
        return text.count(" ") + 1 if text else 0

    def random_text(self, n_tokens: int, rng: Any) -> str:
        if n_tokens <= 0:
            return ""
        return " ".join(_WORDS_ARRAY[rng.integers(0, len(_WORDS), n_tokens)].tolist())

    def random_texts(self, lengths: list[int], rng: Any) -> list[str]:
        """Many random texts from one draw, two words at a time: a uniform pick among all word pairs is two
        independent uniform words, and it halves the per-word work (gather, list, join) that dominated."""
        pairs = _word_pairs()
        halves = [n // 2 if n > 0 else 0 for n in lengths]
        odd = [n > 0 and n % 2 == 1 for n in lengths]
        two = pairs[rng.integers(0, len(pairs), sum(halves))].tolist()
        one = _WORDS_ARRAY[rng.integers(0, len(_WORDS), sum(odd))].tolist()
        out: list[str] = []
        pos = k = 0
        for h, o in zip(halves, odd, strict=True):
            parts = two[pos : pos + h]
            pos += h
            if o:
                parts.append(one[k])
                k += 1
            out.append(" ".join(parts))
        return out


class HFTokenizer:
    """A Hugging Face tokenizer; random prompts are re-tokenised until they have the exact length."""

    exact_for_simulator = False

    def __init__(self, path: str) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise ConfigError(
                f"--tokenizer-path {path!r} needs the transformers package",
                "pip install 'evalscope[tokenizers]', or omit --tokenizer-path to count words",
            ) from None
        try:
            self._tok: Any = AutoTokenizer.from_pretrained(path)  # typed loosely: decode() is str | list[str]
        except Exception as exc:  # noqa: BLE001 - transformers raises many types; one line for the user
            raise ConfigError(f"--tokenizer-path {path!r}: cannot load tokenizer ({exc})") from None
        self.name = f"hf:{path}"
        special = set(getattr(self._tok, "all_special_ids", []) or [])
        vocab = int(getattr(self._tok, "vocab_size", 0) or len(self._tok))
        self._ids = [i for i in range(min(vocab, 32000)) if i not in special]

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False))

    def random_texts(self, lengths: list[int], rng: Any) -> list[str]:
        return [self.random_text(n, rng) for n in lengths]

    def count_own(self, text: str) -> int:
        return self.count(text)  # decoded ids can merge across a join: re-tokenise

    def random_text(self, n_tokens: int, rng: Any) -> str:
        if n_tokens <= 0:
            return ""
        ids = [self._ids[int(i)] for i in rng.integers(0, len(self._ids), n_tokens)]
        text = str(self._tok.decode(ids))
        # Decoding and re-encoding merges or splits tokens; trim or pad until the server would see n_tokens.
        for _ in range(32):
            enc = self._tok.encode(text, add_special_tokens=False)
            if len(enc) == n_tokens:
                return text
            if len(enc) > n_tokens:
                text = str(self._tok.decode(enc[:n_tokens]))
            else:
                extra = [self._ids[int(i)] for i in rng.integers(0, len(self._ids), n_tokens - len(enc))]
                text = str(self._tok.decode(enc + extra))
        return text


def get_tokenizer(path: str | None) -> Tokenizer:
    """The tokenizer for ``--tokenizer-path`` (None: the word tokenizer)."""
    if path:
        return HFTokenizer(path)
    return WordTokenizer()

"""The built-in OpenAI-compatible simulator: latency model, reply policies, fault injection and truth.

``SimServer`` runs in the caller's event loop (tests, port 0); ``SimProcess`` runs it in a child process
(benchmarks, CLI-level tests). ``count_tokens`` is the simulator's tokenizer, exported so clients can count
tokens exactly as the server does.
"""

from __future__ import annotations

from evalscope.sim.config import FAULT_KINDS, ScriptRule, SimConfig
from evalscope.sim.process import SimProcess
from evalscope.sim.server import SimServer
from evalscope.sim.truth import TruthRecord
from evalscope.tokens import count_message_tokens, count_prompt_tokens, count_tokens, tokenize

__all__ = [
    "FAULT_KINDS",
    "ScriptRule",
    "SimConfig",
    "SimProcess",
    "SimServer",
    "TruthRecord",
    "count_message_tokens",
    "count_prompt_tokens",
    "count_tokens",
    "tokenize",
]

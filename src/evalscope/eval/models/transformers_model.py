"""``--backend transformers``: a local model run in this process, behind the same :class:`Model` protocol.

The runner calls ``generate`` once per sample, concurrently (up to ``--eval-batch-size`` in flight). Each call
renders its chat template, tokenizes, and waits in a queue; one batcher task takes the pending requests that
share the generation parameters of the oldest one, sorted by prompt length, at most ``batch_size`` of them,
and runs them as one ``model.generate`` in a single worker thread (the event loop stays free: the journal, the
progress line and Ctrl-C keep working). Batches are left-padded with an attention mask, and the position ids
follow the mask, so with greedy decoding a sample's answer does not depend on its batch mates
(tests/unit/eval_runner/test_transformers_model.py checks batch size 1 against 8). An out-of-memory error
halves the batch size for the rest of the run and retries the batch in halves.

A :class:`Generation` has the API path's shape: latency (the batch's generate time), prompt and completion
tokens, finish reason (``stop``: end-of-sequence token or a stop sequence; ``length``: ``max_tokens``), so
reports, journal, resume and ``--use-cache`` work unchanged. torch and transformers are imported in
:meth:`TransformersModel.start` only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalscope.engine.records import ErrorInfo
from evalscope.errors import ConfigError
from evalscope.eval.cache import ResponseCache, cache_key
from evalscope.eval.models.api import split_reasoning
from evalscope.eval.models.base import Capabilities, Generation, ModelStats

__all__ = ["TEMPLATES", "TransformersModel", "pick_chat_template"]

#: Output cap when neither --generation-config nor the benchmark gives ``max_tokens`` (a server has its own).
DEFAULT_MAX_TOKENS = 512
#: How long the batcher waits for more requests once the queue stops growing (s).
GATHER_S = 0.002

_CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ m['content'] | trim }}{{ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)
_PLAIN = (
    "{% for m in messages %}{{ m['content'] }}{% if not loop.last %}{{ '\\n\\n' }}{% endif %}{% endfor %}"
)

#: The seed's ``--template-type`` names that have a template of their own here (used when the tokenizer has
#: none); other names are accepted with a notice.
TEMPLATES: dict[str, str] = {
    "chatml": _CHATML,
    "qwen": _CHATML,
    "qwen2": _CHATML,
    "qwen2_5": _CHATML,
    "qwen2.5": _CHATML,
    "llama3": _LLAMA3,
    "llama-3": _LLAMA3,
    "default-generation": _PLAIN,
    "base": _PLAIN,
}


def pick_chat_template(
    tokenizer_template: str | None,
    chat_template_file: Path | None,
    template_type: str | None,
    say: Callable[[str], None],
) -> str:
    """The template to render prompts with: ``--chat-template FILE``, else the tokenizer's own, else the one
    ``--template-type`` maps to; a notice when ``--template-type`` is superseded or has no mapping."""
    tt = template_type.strip().lower() if template_type else None
    if chat_template_file is not None:
        if tt:
            say(
                f"Note: --template-type {template_type} is superseded by --chat-template {chat_template_file}."
            )
        return chat_template_file.read_text(encoding="utf-8")
    if tokenizer_template:
        if tt:
            say(f"Note: --template-type {template_type} is superseded by the tokenizer's own chat template.")
        return tokenizer_template
    if tt and tt in TEMPLATES:
        return TEMPLATES[tt]
    if tt:
        raise ConfigError(
            f"--template-type {template_type}: no built-in template of that name, and the tokenizer has no chat "
            "template",
            f"pass --chat-template FILE (a Jinja template), or one of --template-type {', '.join(TEMPLATES)}",
        )
    raise ConfigError(
        "the model's tokenizer has no chat template",
        "pass --chat-template FILE (a Jinja template) or --template-type chatml / llama3 / default-generation",
    )


@dataclass(slots=True)
class _Request:
    ids: list[int]
    key: str  # the generation parameters (requests batch together only with equal ones)
    params: dict[str, Any]
    future: asyncio.Future[Generation]
    seq: int = 0


@dataclass(slots=True)
class _Settings:
    max_new_tokens: int
    do_sample: bool
    temperature: float | None
    top_p: float | None
    top_k: int | None
    stop: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


#: Generation parameters this backend honours (others are refused per request, never silently dropped).
_KNOWN = {"max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "repetition_penalty", "min_p"}


def _settings(params: dict[str, Any]) -> _Settings:
    unknown = sorted(k for k in params if k not in _KNOWN)
    if unknown:
        raise ValueError(
            f"--backend transformers does not support the generation parameter(s) {', '.join(unknown)}; "
            f"supported: {', '.join(sorted(_KNOWN))}"
        )
    temp = params.get("temperature")
    do_sample = isinstance(temp, int | float) and temp > 0
    stop = params.get("stop") or []
    extra = {k: params[k] for k in ("repetition_penalty", "min_p") if params.get(k) is not None}
    return _Settings(
        max_new_tokens=int(params.get("max_tokens") or DEFAULT_MAX_TOKENS),
        do_sample=do_sample,
        temperature=float(temp) if do_sample and temp is not None else None,
        top_p=params.get("top_p") if do_sample else None,
        top_k=params.get("top_k") if do_sample else None,
        stop=[stop] if isinstance(stop, str) else list(stop),
        extra=extra,
    )


def is_oom(exc: BaseException) -> bool:
    """torch's out-of-memory error (CUDA, MPS or the CPU allocator)."""
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


class TransformersModel:
    """A :class:`Model` that runs a local checkpoint with ``transformers`` (see the module docstring)."""

    def __init__(
        self,
        model: str,
        *,
        hub: str = "modelscope",
        model_args: dict[str, Any] | None = None,
        chat_template: Path | None = None,
        template_type: str | None = None,
        batch_size: int = 8,
        cache: ResponseCache | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        from evalscope.localmodel import local_identity

        self.ref = model
        self.hub = hub
        self.model_args = dict(model_args or {})
        self.chat_template = chat_template
        self.template_type = template_type
        self.batch_size = max(1, batch_size)
        self.cache = cache
        self.say = say or (lambda _msg: None)
        self._name, self.endpoint_id = local_identity("transformers", model, self.model_args)
        self.path: Path | None = None
        self.device: str = "cpu"
        self.sent = 0
        self.batches = 0
        self.oom_cuts = 0
        self._tok: Any = None
        self._model: Any = None
        self._template = ""
        self._eos: list[int] = []
        self._pad = 0
        self._pending: list[_Request] = []
        self._running: list[_Request] = []  # the batch in the worker thread
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._seq = 0
        self._closed = False
        self._abort = False  # set by aclose(): the batch being generated stops at its next token
        self._stopper: Any = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(streaming=False, logprobs=False, max_in_flight=None)

    def stats(self) -> ModelStats:
        return ModelStats(sent=self.sent, concurrency_cuts=self.oom_cuts)

    # ------------------------------------------------------------------------------------------ loading

    async def start(self, check: bool = True, check_model: bool = True) -> None:
        """Resolve the weights (download a hub id once), load tokenizer and model in the worker thread."""
        if self._closed:
            raise RuntimeError("TransformersModel.start after aclose()")
        if self._model is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalscope-transformers")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)
        self._wake = asyncio.Event()
        self._loop_task = asyncio.create_task(self._batcher(), name="transformers-batcher")

    def _load(self) -> None:
        from evalscope.localmodel import resolve_model

        resolved = resolve_model(self.ref, self.hub, self.model_args.get("revision"))
        self.path = resolved.path
        try:
            import torch
            import transformers
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise ConfigError(
                f"--backend transformers needs torch and transformers ({exc.name} is not installed)",
                'pip install "evalscope[local]" (or torch==2.13.0 and transformers), or serve the model and '
                "pass --api-url",
            ) from None
        logging_: Any = transformers.utils.logging
        logging_.disable_progress_bar()  # one line of ours instead of a bar per load
        logging_.set_verbosity_error()
        self.say(f"Loading {self.ref} ({resolved.path}) with transformers ...")
        trust = bool(self.model_args.get("trust_remote_code", False))
        try:
            tok = AutoTokenizer.from_pretrained(str(resolved.path), trust_remote_code=trust)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--model {self.ref!r}: cannot load a tokenizer from {resolved.path}: {str(exc)[:200]}",
                "pass a model directory with the tokenizer files",
            ) from None
        self._template = pick_chat_template(
            getattr(tok, "chat_template", None), self.chat_template, self.template_type, self.say
        )
        kwargs: dict[str, Any] = {"trust_remote_code": trust}
        dtype = self.model_args.get("dtype")
        if dtype is not None:
            major = int(transformers.__version__.split(".")[0])
            value: Any = dtype if dtype == "auto" else getattr(torch, dtype)
            kwargs["dtype" if major >= 5 else "torch_dtype"] = value
        device_map = self.model_args.get("device_map")
        if device_map is not None:
            kwargs["device_map"] = device_map
        if self.model_args.get("attn_implementation"):
            kwargs["attn_implementation"] = self.model_args["attn_implementation"]
        try:
            auto: Any = transformers.AutoModelForCausalLM
            model = auto.from_pretrained(str(resolved.path), **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--model {self.ref!r}: cannot load the weights from {resolved.path}: {str(exc)[:200]}",
                "pass a causal language model directory (config.json and weights)",
            ) from None
        if device_map is None:
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            model = model.to(self.device)
        else:
            self.device = str(model.device)
        model.eval()
        eos: list[int] = []
        for src in (getattr(model.generation_config, "eos_token_id", None), tok.eos_token_id):
            for i in src if isinstance(src, list) else [src]:
                if isinstance(i, int) and i not in eos:
                    eos.append(i)
        self._eos = eos
        pad = tok.pad_token_id
        self._pad = pad if isinstance(pad, int) else (eos[0] if eos else 0)
        self._tok = tok
        self._model = model
        self._stopper = self._abort_criterion(torch, transformers)
        self.say(f"Loaded {self.ref} with transformers on {self.device} (batch size {self.batch_size}).")

    def _abort_criterion(self, torch: Any, transformers: Any) -> Any:
        """A stopping criterion that ends every row once :meth:`aclose` sets ``_abort`` (Ctrl-C, errors), so
        closing never waits for a long batch to run to ``max_tokens``."""
        owner = self

        class _Abort(transformers.StoppingCriteria):  # type: ignore[misc]
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],), owner._abort, dtype=torch.bool, device=input_ids.device
                )

        return transformers.StoppingCriteriaList([_Abort()])

    # ------------------------------------------------------------------------------------------ requests

    def encode(self, messages: list[dict[str, Any]]) -> list[int]:
        """The prompt's token ids: the chat template rendered, tokenized without extra special tokens."""
        text = self._tok.apply_chat_template(
            messages, chat_template=self._template, tokenize=False, add_generation_prompt=True
        )
        ids: list[int] = self._tok.encode(text, add_special_tokens=False)
        return ids

    async def generate(
        self, messages: list[dict[str, Any]], params: dict[str, Any], request_id: str, repeat: int = 0
    ) -> Generation:
        if self._tok is None or self._wake is None:
            raise RuntimeError("TransformersModel.generate before start()")
        key: str | None = None
        if self.cache is not None:
            key = cache_key(self._name, self.endpoint_id, {"messages": messages, **params}, repeat)
            hit = self.cache.get(key)
            if hit is not None:
                return Generation(
                    text=hit.get("text", ""),
                    reasoning=hit.get("reasoning"),
                    raw_text=hit.get("raw_text", hit.get("text", "")),
                    finish_reason=hit.get("finish_reason"),
                    prompt_tokens=hit.get("prompt_tokens"),
                    completion_tokens=hit.get("completion_tokens"),
                    cached=True,
                )
        try:
            _settings(params)
            ids = self.encode(messages)
        except Exception as exc:  # noqa: BLE001 - a template or parameter problem fails this sample only
            return Generation(
                error=ErrorInfo(kind="client", message=str(exc)[:1024], exception_type=type(exc).__name__),
                attempts=1,
            )
        fut: asyncio.Future[Generation] = asyncio.get_running_loop().create_future()
        self._seq += 1
        req = _Request(ids=ids, key=repr(sorted(params.items())), params=params, future=fut, seq=self._seq)
        self._pending.append(req)
        self._wake.set()
        gen = await fut
        if gen.ok and self.cache is not None and key is not None:
            self.cache.put(
                key,
                {
                    "text": gen.text,
                    "reasoning": gen.reasoning,
                    "raw_text": gen.raw_text,
                    "finish_reason": gen.finish_reason,
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                },
            )
        return gen

    def _take_batch(self) -> list[_Request]:
        """The pending requests with the oldest one's parameters, shortest prompts first, at most batch_size."""
        oldest = min(self._pending, key=lambda r: r.seq)
        same = sorted((r for r in self._pending if r.key == oldest.key), key=lambda r: (len(r.ids), r.seq))
        batch = same[: self.batch_size]
        if oldest not in batch:  # never starve the oldest request
            batch[-1] = oldest
        chosen = {id(r) for r in batch}
        self._pending = [r for r in self._pending if id(r) not in chosen]
        return batch

    async def _batcher(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            # let the requests issued in the same tick (and the next few ms) join before a batch is cut
            while 0 < len(self._pending) < self.batch_size:
                n = len(self._pending)
                await asyncio.sleep(GATHER_S)
                if len(self._pending) == n:
                    break
            while self._pending:
                batch = self._take_batch()
                self._running = batch
                try:
                    gens = await loop.run_in_executor(self._executor, self._run, batch)
                except Exception as exc:  # noqa: BLE001 - the batch fails; the run goes on
                    err = ErrorInfo(kind="client", message=str(exc)[:1024], exception_type=type(exc).__name__)
                    gens = [Generation(error=err, attempts=1) for _ in batch]
                for req, gen in zip(batch, gens, strict=True):
                    if not req.future.done():
                        req.future.set_result(gen)

    # ------------------------------------------------------------------------------------------ worker thread

    def _run(self, batch: list[_Request]) -> list[Generation]:
        """Generate for ``batch`` in chunks of ``batch_size``; out of memory halves the batch size (for the rest
        of the run) and retries the chunk; a single sequence that does not fit is that sample's error."""
        out: list[Generation] = []
        i = 0
        while i < len(batch):
            chunk = batch[i : i + self.batch_size]
            try:
                out += self._generate_batch(chunk)
            except Exception as exc:
                if not is_oom(exc):
                    raise
                self._free_memory()
                if len(chunk) > 1:
                    self.batch_size = max(1, len(chunk) // 2)
                    self.oom_cuts += 1
                    self.say(
                        f"Warning: out of memory with {len(chunk)} sequences: batch size is now {self.batch_size}."
                    )
                    continue
                err = ErrorInfo(kind="client", message=str(exc)[:1024], exception_type=type(exc).__name__)
                out.append(Generation(error=err, attempts=1))
            i += len(chunk)
        return out

    def _free_memory(self) -> None:
        import gc

        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is loaded by now
            pass

    def _generate_batch(self, batch: list[_Request]) -> list[Generation]:
        import torch

        s = _settings(batch[0].params)
        width = max(len(r.ids) for r in batch)
        input_ids = torch.full((len(batch), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            input_ids[i, width - len(r.ids) :] = torch.tensor(r.ids, dtype=torch.long)
            mask[i, width - len(r.ids) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.do_sample,
            "pad_token_id": self._pad,
            "eos_token_id": self._eos or None,
            **s.extra,
        }
        if s.do_sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k)
            seed = batch[0].params.get("seed")
            if seed is not None:
                torch.manual_seed(int(seed))
        else:  # greedy: override sampling defaults a checkpoint's generation_config.json may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if s.stop:
            kwargs.update(stop_strings=s.stop, tokenizer=self._tok)
        if self._stopper is not None:
            kwargs["stopping_criteria"] = self._stopper
        self.sent += len(batch)
        self.batches += 1
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
            )
        latency = time.perf_counter() - t0
        if self._abort:
            raise RuntimeError("generation stopped: the model is being closed")
        rows = out[:, width:].tolist()
        return [self._finish(r, row, s, latency) for r, row in zip(batch, rows, strict=True)]

    def _finish(self, req: _Request, row: list[int], s: _Settings, latency: float) -> Generation:
        """One row of output: cut at end-of-sequence or the first stop sequence; count its tokens."""
        eos = set(self._eos)
        cut = next((i for i, t in enumerate(row) if t in eos), None)
        tokens = row if cut is None else row[: cut + 1]
        finish = "length" if cut is None else "stop"
        text = self._tok.decode(tokens, skip_special_tokens=True)
        if s.stop:
            hits = [(text.find(x), x) for x in s.stop if x and x in text]
            if hits:
                pos, _ = min(hits)
                text = text[:pos]
                finish = "stop"
                tokens = tokens[: self._tokens_until_stop(tokens, s.stop)]
        answer, reasoning = split_reasoning(text, None)
        return Generation(
            text=answer,
            reasoning=reasoning,
            raw_text=text,
            finish_reason=finish,
            prompt_tokens=len(req.ids),
            completion_tokens=len(tokens),
            latency_s=latency,
            attempts=1,
        )

    def _tokens_until_stop(self, tokens: list[int], stop: list[str]) -> int:
        """The fewest leading tokens whose text contains a stop sequence (binary search; containment only grows)."""
        lo, hi = 1, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            text = self._tok.decode(tokens[:mid], skip_special_tokens=True)
            if any(x and x in text for x in stop):
                hi = mid
            else:
                lo = mid + 1
        return lo

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._abort = True
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        closed = ErrorInfo(kind="cancelled", message="the model was closed before this sample was generated")
        for req in [*self._running, *self._pending]:
            if not req.future.done():
                req.future.set_result(Generation(error=closed, attempts=0))
        self._pending, self._running = [], []
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._model = None
        self._tok = None

"""Tool calls and image parts in chat requests: what the simulator does with ``tools`` and ``image_url``.

When a chat request carries ``tools`` (and ``tool_choice`` is not ``"none"``), :func:`plan_tool_call` decides,
deterministically, whether the reply is a call and to which function with which arguments:

* ``tool_choice: {"type": "function", "function": {"name": X}}`` always calls X;
* the ``scripted`` policy: the first rule whose pattern matches the whole conversation text decides (a rule
  with ``tool_call`` calls it, a rule without one replies with text); no match falls to the ``tool_policy``;
* ``tool_policy`` ``match`` (default): a turn that follows a tool result is answered with text (the agent
  "finishes"); otherwise the tool sharing most words with the last user message is called; ``first``: always
  the first tool; ``never``: always text. ``tool_choice: "required"`` makes every turn a call.

Arguments fill the function's required parameters from the last user message: a quoted phrase (else its
longest word) for strings, the first number for numbers, the first ``enum`` value, ``true``, ``[]``, ``{}``.

:func:`image_error` checks ``image_url`` content parts the way OpenAI's API rejects them (400): the URL must be
``http(s)`` or a ``data:image/...;base64,`` URL whose payload decodes. Images are otherwise ignored: policies
read the text parts (an image MCQ is answered from its question and options, or from a script keyed on them).
"""

from __future__ import annotations

import binascii
import re
import zlib
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

import orjson

from evalscope.tokens import message_text, messages_text, tokenize

_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']+)'")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One planned function call; ``arguments`` is JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str

    def message(self) -> dict[str, Any]:
        """The whole-response ``message`` (``content`` is null beside ``tool_calls``, as OpenAI sends it)."""
        call = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    def tokens(self) -> list[str]:
        """What the call costs in completion tokens: the name, then the arguments' words."""
        return [self.name, *tokenize(self.arguments)]

    def stream_pieces(self) -> list[tuple[None, str, int]]:
        """Stream chunks as ``(None, delta members, tokens)``: a head with id, type, name and empty arguments,
        the arguments in word pieces, then an empty delta (the chunk that carries ``finish_reason``)."""
        head = {
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": self.id,
                    "type": "function",
                    "function": {"name": self.name, "arguments": ""},
                }
            ],
        }
        out: list[tuple[None, str, int]] = [(None, orjson.dumps(head).decode()[1:-1], 1)]
        for piece in tokenize(self.arguments):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            out.append((None, orjson.dumps(delta).decode()[1:-1], 1))
        out.append((None, "", 0))
        return out


def _words(text: str) -> set[str]:
    return set(_WORD.findall(_CAMEL.sub(" ", text).replace("_", " ").lower()))


def _functions(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str) and fn["name"]:
            out.append(fn)
    return out


def _value(schema: Any, text: str) -> Any:
    """A plausible value of one parameter, read from the user's text (deterministic)."""
    if not isinstance(schema, dict):
        return ""
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        m = _NUMBER.search(text)
        if m is None:
            return 1
        num = float(m.group())
        return int(num) if kind == "integer" else num
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    m = _QUOTED.search(text)
    if m is not None:
        return m.group(1) or m.group(2)
    words = [w.strip(".,;:!?") for w in text.split()]
    return max(words, key=len, default="")


def fill_arguments(parameters: Any, text: str) -> dict[str, Any]:
    """Values for the required parameters of a JSON-schema ``parameters`` object."""
    if not isinstance(parameters, dict):
        return {}
    props = parameters.get("properties")
    props = props if isinstance(props, dict) else {}
    required = parameters.get("required")
    names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
    return {n: _value(props.get(n), text) for n in names}


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def plan_tool_call(
    body: dict[str, Any], messages: list[Any], tool_policy: str, rules: list[Any] | None = None
) -> ToolCall | None:
    """The call this request is answered with, or None for a text reply (see the module docstring)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice", "auto")
    if choice == "none":
        return None
    funcs = _functions(tools)
    if not funcs:
        return None
    conv = messages_text(messages)
    call_id = f"call_{zlib.crc32(conv.encode('utf-8', 'surrogatepass')):08x}"
    user = _last_user_text(messages)
    forced = None
    if isinstance(choice, dict):
        fn = choice.get("function")
        forced = fn.get("name") if isinstance(fn, dict) else None
    if forced is None and rules:
        for rule in rules:
            if rule.pattern.search(conv):
                tc = rule.tool_call
                if not tc:
                    return None
                args = tc.get("arguments", {})
                text = args if isinstance(args, str) else orjson.dumps(args).decode()
                return ToolCall(call_id, str(tc.get("name", "")), text)
    chosen: dict[str, Any] | None = None
    if forced is not None:
        chosen = next((f for f in funcs if f["name"] == forced), None)
        if chosen is None:
            return None
    else:
        last = messages[-1] if messages else {}
        after_result = isinstance(last, dict) and last.get("role") in ("tool", "function")
        if choice != "required" and (tool_policy == "never" or after_result):
            return None
        if tool_policy == "match":
            asked = _words(user)
            best = -1
            for f in funcs:
                score = len(asked & _words(f["name"] + " " + str(f.get("description") or "")))
                if score > best:
                    chosen, best = f, score
        else:
            chosen = funcs[0]
    assert chosen is not None
    args_obj = fill_arguments(chosen.get("parameters"), user)
    return ToolCall(call_id, chosen["name"], orjson.dumps(args_obj).decode())


def image_error(messages: list[Any]) -> str | None:
    """One line naming the first unusable ``image_url`` part (OpenAI answers those with 400), else None."""
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            if not isinstance(url, str) or not url:
                return "image_url part has no url."
            if url.startswith(("http://", "https://")):
                continue
            head, sep, payload = url.partition(",")
            if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
                return "image_url must be an http(s) URL or a data:image/...;base64 URL."
            try:
                if not b64decode(payload, validate=True):
                    return "image_url data is empty."
            except (binascii.Error, ValueError):
                return "image_url data is not valid base64."
    return None

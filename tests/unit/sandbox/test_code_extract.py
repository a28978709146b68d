"""Code extraction from model replies and HumanEval / MBPP program assembly (no execution here)."""

from __future__ import annotations

import ast

from evalscope.eval.scoring.code import extract_code, humaneval_program, mbpp_program

PROMPT = 'from typing import List\n\n\ndef helper(x):\n    return x\n\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n'
TEST = "def check(candidate):\n    assert candidate(1, 2) == 3\n"


def test_fenced_prefers_block_defining_entry_point() -> None:
    text = (
        "Example usage:\n```python\nprint(add(1, 2))\n```\n"
        "Solution:\n```python\ndef add(a, b):\n    return a + b\n```\n"
        "Test:\n```python\nassert add(1, 1) == 2\n```"
    )
    ext = extract_code(text, "add")
    assert ext.method == "fenced"
    assert ext.code.startswith("def add(a, b):")


def test_fenced_without_entry_point_takes_first_python_block() -> None:
    text = "```bash\npip install x\n```\n```python\nx = 1\n```\n```python\ny = 2\n```"
    assert extract_code(text).code == "x = 1\n"
    assert extract_code("```\nz = 3\n```").code == "z = 3\n"


def test_last_defining_block_wins() -> None:
    text = "```python\ndef add(a, b):\n    return 0\n```\nFixed:\n```python\ndef add(a, b):\n    return a + b\n```"
    assert "a + b" in extract_code(text, "add").code


def test_think_is_stripped_and_unfinished_think_is_empty() -> None:
    text = "<think>\n```python\ndef add(a, b):\n    return 0\n```\n</think>\n```python\ndef add(a, b):\n    return a+b\n```"
    assert "a+b" in extract_code(text, "add").code
    assert extract_code("<think>still thinking ```python\nx=1\n```", "add").method == "empty"


def test_unclosed_fence_and_bare_code_and_begin_done() -> None:
    assert extract_code("```python\ndef add(a, b):\n    return a + b\n", "add").code.endswith("a + b\n")
    assert extract_code("    return a + b").code == "    return a + b\n"
    assert extract_code("[BEGIN]\ndef f():\n    return 1\n[DONE]").method == "begin_done"
    assert extract_code("").method == "empty"


def test_humaneval_body_completion_is_appended() -> None:
    prog = humaneval_program(PROMPT, "    return a + b\n", TEST, "add")
    assert prog.startswith(PROMPT + "    return a + b\n")
    assert prog.rstrip().endswith("check(add)")
    ast.parse(prog)


def test_humaneval_full_function_completion_replaces_body() -> None:
    full = "def add(a: int, b: int) -> int:\n    return a + b\n"
    prog = humaneval_program(PROMPT, full, TEST, "add")
    ast.parse(prog)
    ns: dict[str, object] = {}
    exec(compile(prog, "p", "exec"), ns)  # trusted test content only
    assert "helper" in ns  # helpers from the prompt are kept


def test_mbpp_program_order() -> None:
    prog = mbpp_program(
        "class Node:\r\n  pass\r\ndef f(n):\r\n  return n",
        ["assert f(1) == 1"],
        "root = Node()",
        ["import math"],
    )
    assert (
        prog.index("import math")
        < prog.index("class Node")
        < prog.index("root = Node()")
        < prog.index("assert")
    )
    assert "\r" not in prog
    ns: dict[str, object] = {}
    exec(compile(prog, "p", "exec"), ns)

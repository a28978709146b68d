"""HumanEval / MBPP pass only when the tests ran to their end (issue 10 item 1).

Each hostile completion below is a wrong solution plus a trick that used to turn exit code 0 into a pass (or tries
to forge the harness's proof). Every one must score pass@1 = 0 on real HumanEval and MBPP problems, while the
reference solutions of the same problems still pass.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.benchmarks.base import Sample
from evalscope.eval.benchmarks.humaneval import HumanEval
from evalscope.eval.benchmarks.mbpp import MBPP
from evalscope.eval.scoring.code import PASS_PREFIX, extract_code

pytestmark = [pytest.mark.timeout(300)]

ARGS: dict[str, Any] = {"allow_code_execution": True, "timeout": 30}
N_PROBLEMS = 4

FAKE = PASS_PREFIX + "0" * 32
#: Module-level code appended after a wrong solution.
ATTACKS: dict[str, str] = {
    "sys_exit": "import sys\nsys.exit(0)\n",
    "os_exit": "import os\nos._exit(0)\n",
    "raise_systemexit": "raise SystemExit(0)\n",
    "unittest_main_guarded": "import unittest\nif __name__ == '__main__':\n    unittest.main()\n",
    "unittest_main": "import unittest\nunittest.main(argv=['x'])\n",
    "atexit_marker": f"import atexit, sys\natexit.register(lambda: print({FAKE!r}))\nsys.exit(0)\n",
    "stdout_marker": f"import os\nprint({FAKE!r}, flush=True)\nos._exit(0)\n",
    "read_fds": (
        "import os\n"
        "for fd in range(0, 64):\n"
        "    try:\n"
        "        print(os.read(fd, 4096))\n"
        "    except OSError:\n"
        "        pass\n"
        "for name in os.listdir('/proc/self/fd'):\n"
        "    print(open('/proc/self/fd/' + name, 'rb').read(4096))\n"
        "os._exit(0)\n"
    ),
    "proc_mem": "f = open('/proc/self/mem', 'rb')\n",
    "environ_and_source": (
        "import os, sys\nprint(dict(os.environ))\nprint(open(sys.argv[0]).read()[-200:])\nos._exit(0)\n"
    ),
    "gc_scan": (
        "import gc\n"
        "for o in gc.get_objects():\n"
        "    if type(o).__name__ == 'cell':\n"
        "        print(o.cell_contents)\n"
    ),
    "frame_walk": (
        "import sys, os\n"
        "f = sys._getframe()\n"
        "while f is not None:\n"
        "    for v in list(f.f_locals.values()):\n"
        "        if isinstance(v, bytes):\n"
        "            print(v)\n"
        "    f = f.f_back\n"
        "os._exit(0)\n"
    ),
    "override_builtins": (
        "import builtins, sys\n"
        "builtins.exec = lambda *a, **k: None\n"
        "builtins.compile = lambda *a, **k: compile('pass', 'x', 'exec')\n"
        "builtins.AssertionError = type('Nope', (Exception,), {})\n"
        "sys.audit = lambda *a: None\n"
    ),
    "patch_check": (
        "import builtins\n"
        "def check(*a, **k):\n    return None\n"
        "builtins.check = check\n"
        "import sys\nsys.modules['__main__'].check = check\n"
    ),
    "settrace_skip": "import sys\nsys.settrace(lambda *a: None)\n",
    "thread_marker": (
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.2), print({FAKE!r}))).start()\n"
    ),
    "audit_hook": "import sys\nsys.addaudithook(lambda e, a: None)\n",
    "ctypes": "import ctypes\nctypes.string_at(id(1), 8)\n",
}


async def _score_all(bench: Any, outputs: list[tuple[Sample, str]]) -> list[float]:
    try:
        await bench.sandbox.start()
    except SandboxUnavailableError as e:
        pytest.skip(f"sandbox unavailable: {e.one_line()}")
    results = await asyncio.gather(*(bench.ascore(s, out) for s, out in outputs))
    errors = [r.detail for r in results if r.status == "sandbox_error"]
    assert not errors, errors[:2]
    return [r.value for r in results]


def _he_wrong(sample: Sample, attack: str) -> str:
    prompt = str(sample.meta["prompt"]).rstrip()
    return f"```python\n{prompt}\n    return None\n\n\n{attack}```"


def _mbpp_wrong(bench: MBPP, sample: Sample, attack: str) -> str:
    ep = bench.entry_point(sample) or "solution"
    return f"```python\ndef {ep}(*args, **kwargs):\n    return None\n\n\n{attack}```"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_humaneval_hostile_completion_never_passes(shared_datasets: Path, attack: str) -> None:
    bench = HumanEval(shared_datasets, ARGS)
    samples = bench.load()[:N_PROBLEMS]
    values = await _score_all(bench, [(s, _he_wrong(s, ATTACKS[attack])) for s in samples])
    assert values == [0.0] * len(samples), f"{attack}: pass@1 = {sum(values) / len(values):.0%}"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_mbpp_hostile_completion_never_passes(shared_datasets: Path, attack: str) -> None:
    bench = MBPP(shared_datasets, ARGS)
    samples = bench.load()[:N_PROBLEMS]
    values = await _score_all(bench, [(s, _mbpp_wrong(bench, s, ATTACKS[attack])) for s in samples])
    assert values == [0.0] * len(samples), f"{attack}: pass@1 = {sum(values) / len(values):.0%}"


async def test_references_with_harmless_extras_still_pass(shared_datasets: Path) -> None:
    """The harness does not reject ordinary code: typing, namedtuple, dataclasses, frames of one's own, a
    ``__main__`` guard and printing all still pass with a correct solution."""
    extras = (
        "from typing import TypeVar\nfrom collections import namedtuple\nimport dataclasses, sys, re, math\n"
        "T = TypeVar('T')\nP = namedtuple('P', 'a b')\n"
        "@dataclasses.dataclass\nclass D:\n    x: int\n"
        "_ = sys._getframe().f_code.co_name\nprint('hello')\n"
        "if __name__ == '__main__':\n    print('not run under the harness')\n"
    )
    he = HumanEval(shared_datasets, ARGS)
    he_samples = he.load()[:N_PROBLEMS]
    he_out = [(s, he.reference_output(s, 0)[: -len("```")] + "\n\n" + extras + "```") for s in he_samples]
    assert await _score_all(he, he_out) == [1.0] * len(he_samples)
    mb = MBPP(shared_datasets, ARGS)
    mb_samples = mb.load()[:N_PROBLEMS]
    mb_out = [(s, mb.reference_output(s, 0)[: -len("```")] + "\n\n" + extras + "```") for s in mb_samples]
    assert await _score_all(mb, mb_out) == [1.0] * len(mb_samples)


async def test_each_run_gets_a_fresh_nonce(shared_datasets: Path) -> None:
    """A proof printed by one run does not count for another: the nonce differs per program."""
    bench = HumanEval(shared_datasets, ARGS)
    s = bench.load()[0]
    try:
        await bench.sandbox.start()
    except SandboxUnavailableError as e:
        pytest.skip(f"sandbox unavailable: {e.one_line()}")
    program = bench.build_program(s, extract_code(bench.reference_output(s), bench.entry_point(s)))
    r1 = await bench.sandbox.run(program, 30, stdin=b"aaaa\n")
    r2 = await bench.sandbox.run(program, 30, stdin=b"bbbb\n")
    assert PASS_PREFIX + "aaaa" in r1.stdout and PASS_PREFIX + "bbbb" in r2.stdout
    assert "bbbb" not in r1.stdout

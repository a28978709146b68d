"""Code extraction from model output and program assembly for HumanEval and MBPP.

Extraction: reasoning up to ``</think>`` is dropped; among fenced code blocks, Python ones are preferred and the
last block that defines the entry point wins, else the first Python block; MBPP's ``[BEGIN] ... [DONE]`` markers
are honoured; otherwise the text is taken as bare code. A truncated output whose last fence never closes still
yields its code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from evalscope.eval.scoring.extract import strip_reasoning

_FENCE = re.compile(
    r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.MULTILINE | re.DOTALL
)
_PY_LANGS = {"", "python", "py", "python3", "py3", "pycon", "ipython"}
_BEGIN_DONE = re.compile(r"\[BEGIN\]\s*(.*?)\s*(?:\[DONE\]|\Z)", re.DOTALL)
_THINK_OPEN = re.compile(r"^\s*<think\s*>", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CodeExtraction:
    """The code taken from an output and how it was found (``fenced`` / ``begin_done`` / ``bare`` / ``empty``)."""

    code: str
    method: str


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def extract_code(text: str, entry_point: str | None = None) -> CodeExtraction:
    """The program text in a model reply (see the module docstring for the rules)."""
    text = strip_reasoning(text or "")
    if _THINK_OPEN.match(text):  # an unfinished reasoning block: there is no answer
        return CodeExtraction("", "empty")
    blocks = [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]
    if blocks:
        py = [code for lang, code in blocks if lang in _PY_LANGS] or [code for _, code in blocks]
        chosen = py[0]
        if entry_point:
            defining = [code for code in py if _defines(code, entry_point)]
            if defining:
                chosen = defining[-1]
        return CodeExtraction(chosen.rstrip() + "\n", "fenced")
    m = _BEGIN_DONE.search(text)
    if m:
        return CodeExtraction(m.group(1).rstrip() + "\n", "begin_done")
    if not text.strip():
        return CodeExtraction("", "empty")
    return CodeExtraction(text.rstrip() + "\n", "bare")


def _parses(src: str) -> bool:
    try:
        ast.parse(src)
    except (SyntaxError, ValueError):
        return False
    return True


def humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """``prompt + completion + test + check(entry_point)``.

    When the completion repeats the whole function (its own ``def entry_point(``), it replaces the prompt's
    function instead of being appended into its body; the prompt still comes first (it may hold imports and
    helper functions the solution relies on; a function consisting of its docstring is valid Python).
    """
    body = _humaneval_body(prompt, completion, entry_point)
    return f"{body}\n\n{test.rstrip()}\n\n\ncheck({entry_point})\n"


def _humaneval_body(prompt: str, completion: str, entry_point: str) -> str:
    if re.search(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", completion, re.MULTILINE):
        head = prompt if _parses(prompt) else prompt.rstrip() + "\n    pass\n"
        return head.rstrip() + "\n\n\n" + completion.strip("\n") + "\n"
    body = prompt + completion
    return body if body.endswith("\n") else body + "\n"


def mbpp_program(
    code: str, tests: list[str], setup_code: str = "", test_imports: list[str] | None = None
) -> str:
    """``test imports + code + setup code + the asserts``."""
    parts: list[str] = []
    if test_imports:
        parts.append("\n".join(test_imports))
    parts.append(code.replace("\r\n", "\n").rstrip())
    if setup_code.strip():
        # After the code: MBPP's setup code builds test fixtures from the solution's own classes (task 367).
        parts.append(setup_code.replace("\r\n", "\n"))
    parts.append("\n".join(t.replace("\r\n", "\n") for t in tests))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Completion proof. Exit code 0 says nothing: the completion runs first and may call sys.exit(0), os._exit(0),
# unittest.main(), register atexit hooks or print anything. A program passes only when the harness below writes
# the line ``PASS_PREFIX + nonce``, and it does that only after the test code has run to its end in the same
# namespace. The nonce is a fresh random value per program, delivered on stdin and read before any candidate
# code runs; it then lives only in the closure of an audit hook that the candidate cannot reach (see
# docs/sandbox.md, "Completion proof", for the threat model and what it leaves open).

PASS_PREFIX = "EVALSCOPE-TESTS-PASSED "
HARNESS_FILENAME = "<evalscope-harness>"

_HARNESS = r"""
def _evalscope_harness(cand_src, test_src):
    import sys, os, gc, _thread
    audit, compile_, exec_, exit_ = sys.audit, compile, exec, os._exit
    lock = _thread.allocate_lock()
    outcome = [1]

    def runner():
        audit("evalscope.start")
        try:
            mod = type(sys)("__candidate__")
            sys.modules["__candidate__"] = mod
            g = mod.__dict__
            exec_(compile_(cand_src, "<candidate>", "exec"), g)
            test = compile_(test_src, "<tests>", "exec")
            audit("evalscope.test", test)
            exec_(test, g)
        except BaseException as e:  # SystemExit from the candidate included: the tests did not finish
            try:
                import traceback
                traceback.print_exception(type(e), e, e.__traceback__)
            except BaseException:
                pass
            return
        audit("evalscope.done")
        outcome[0] = 0

    def install(runner_code):
        # Everything the hook uses is captured here, before any candidate code can replace it.
        read, write, count = os.read, os.write, _thread._count
        isenabled, disable, enable = gc.isenabled, gc.disable, gc.enable
        getframe, str_, code_t = sys._getframe, str, type(runner_code)
        buf = b""
        while len(buf) < 256 and not buf.endswith(b"\n"):
            chunk = read(0, 256)
            if not chunk:
                break
            buf += chunk
        nul = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nul, 0)
        os.close(nul)
        if not buf.strip():
            write(2, b"evalscope harness: no nonce on stdin\n")
            exit_(121)
        line = b"\n" + PREFIX + buf.strip() + b"\n"
        del buf
        roots = tuple(p.rstrip("/") + "/" for p in sys.path if p.startswith("/")) + (os.getcwd() + "/",)
        blocked = frozenset((
            "sys.addaudithook", "sys.settrace", "sys.setprofile", "sys._current_frames",
            "sys.monitoring.register_callback", "sys.monitoring.set_events",
            "gc.get_objects", "gc.get_referrers", "gc.get_referents", "function.__new__",
            "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
            "subprocess.Popen", "pty.spawn", "os.symlink", "os.link", "os.chdir", "os.chroot",
            "cpython.PyInterpreterState_New", "cpython.run_command", "cpython.run_file",
        ))
        bad_modules = frozenset((
            "ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_testbuffer", "_testmultiphase",
            "_testimportmultiple", "_ctypes_test", "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz",
            "faulthandler",
        ))
        state = [False, None, 0, False]  # started, test code, test runs, done

        def deny(event):
            try:
                write(2, b"\nevalscope harness: not allowed in a tested program: " + event.encode() + b"\n")
            finally:
                exit_(97)

        def hook(event, args):
            # Candidate code must never run while this frame exists (it could read the frame's closure):
            # no garbage collection in here, no other thread, only exact builtin types are touched.
            was = isenabled()
            disable()
            try:
                if type(event) is not str_:
                    exit_(97)
                if count() > 1:
                    deny("a second thread")
                if event in blocked or event.startswith("ctypes."):
                    deny(event)
                if event == "open":
                    path = args[0]
                    if type(path) is not int:
                        if type(path) is not str_ or "\x00" in path:
                            deny("open (path type)")
                        parts = path.split("/")
                        if ".." in parts or "proc" in parts or (path.startswith("/") and not path.startswith(roots)):
                            deny("open " + path)
                elif event == "import":
                    name = args[0]
                    if type(name) is not str_ or name.partition(".")[0] in bad_modules:
                        deny("import")
                elif event == "exec":
                    code = args[0]
                    if code is runner_code:
                        exit_(97)
                    if code is state[1]:
                        state[2] += 1
                        if state[2] > 1:
                            exit_(97)
                elif event.startswith("evalscope."):
                    if getframe(1).f_code is not runner_code:
                        exit_(97)
                    if event == "evalscope.start" and not state[0]:
                        state[0] = True
                    elif event == "evalscope.test" and state[0] and state[1] is None and len(args) == 1 \
                            and type(args[0]) is code_t:
                        state[1] = args[0]
                    elif event == "evalscope.done" and state[2] == 1 and not state[3]:
                        state[3] = True
                        write(1, line)
                    else:
                        exit_(97)
            except BaseException:
                exit_(97)
            if was:
                enable()

        sys.addaudithook(hook)

    install(runner.__code__)
    del install
    lock.acquire()

    def worker():
        try:
            runner()
        finally:
            lock.release()

    # The candidate runs in a second thread: signal handlers (which receive the current frame) can only be set
    # from, and only run in, the main thread, which from now on only waits.
    _thread.start_new_thread(worker, ())
    lock.acquire()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    exit_(outcome[0])
"""


def guarded_program(candidate: str, tests: str) -> str:
    """A program that runs ``candidate`` (as module ``__candidate__``), then ``tests`` in the same namespace,
    and prints ``PASS_PREFIX + nonce`` (the nonce read from stdin) only when the tests ran to their end."""
    return (
        "# evalscope code-test harness: the candidate and the tests are the two string literals below.\n"
        + _HARNESS.replace("PREFIX", repr(PASS_PREFIX.encode()))
        + f"\n_evalscope_harness({candidate!r}, {tests!r})\n"
    )


def new_nonce() -> str:
    """A fresh random nonce for one program run."""
    import secrets

    return secrets.token_hex(16)


def check_proof(stdout: str, nonce: str) -> tuple[bool, str]:
    """(whether the harness proved that the tests completed, stdout without the proof line)."""
    marker = PASS_PREFIX + nonce
    if marker not in stdout:
        return False, stdout
    return True, stdout.replace("\n" + marker + "\n", "\n").replace(marker, "")


def humaneval_parts(prompt: str, completion: str, test: str, entry_point: str) -> tuple[str, str]:
    """(candidate source, test source) of :func:`humaneval_program`, for :func:`guarded_program`."""
    return _humaneval_body(prompt, completion, entry_point), f"{test.rstrip()}\n\n\ncheck({entry_point})\n"


def mbpp_parts(
    code: str, tests: list[str], setup_code: str = "", test_imports: list[str] | None = None
) -> tuple[str, str]:
    """(candidate source, test source) of :func:`mbpp_program`: imports + code, then setup + asserts."""
    cand: list[str] = []
    if test_imports:
        cand.append("\n".join(test_imports))
    cand.append(code.replace("\r\n", "\n").rstrip())
    test: list[str] = []
    if setup_code.strip():
        test.append(setup_code.replace("\r\n", "\n"))
    test.append("\n".join(t.replace("\r\n", "\n") for t in tests))
    return "\n\n".join(cand) + "\n", "\n\n".join(test) + "\n"

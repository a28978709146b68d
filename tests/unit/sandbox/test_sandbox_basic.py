"""Sandbox statuses, opt-ins (X1/X3), refusal without isolation, parallelism bound and helpers."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest
from sandbox_helpers import assert_clean

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.sandbox import Sandbox, SandboxLimits, core, probe_isolation, run_program, scrubbed_env


async def test_statuses(sandbox: Sandbox, run_root: Path) -> None:
    r = await sandbox.run("print('hi')", 10)
    assert (r.status, r.returncode, r.stdout, r.passed, r.counted) == ("passed", 0, "hi\n", True, True)
    r = await sandbox.run("assert 1 == 2", 10)
    assert r.status == "failed" and r.returncode == 1 and "AssertionError" in r.stderr
    r = await sandbox.run("def f(:\n", 10)
    assert r.status == "failed" and "SyntaxError" in r.stderr
    r = await sandbox.run("import sys\nsys.exit(3)", 10)
    assert r.status == "failed" and r.returncode == 3
    r = await sandbox.run("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", 10)
    assert r.status == "failed" and r.signal is not None
    assert r.isolation in ("root", "userns", "bwrap")
    assert_clean(run_root)


async def test_program_runs_below_the_evaluators_priority(sandbox: Sandbox) -> None:
    """A busy loop or fork bomb must not starve the event loop that enforces its timeout."""
    r = await sandbox.run("import os\nprint(os.getpriority(os.PRIO_PROCESS, 0))", 10)
    assert r.status == "passed", r.stderr
    assert int(r.stdout) == os.getpriority(os.PRIO_PROCESS, 0) + core_niceness()


def core_niceness() -> int:
    from evalscope.eval.sandbox._launcher import PROGRAM_NICENESS

    return min(PROGRAM_NICENESS, 19 - os.getpriority(os.PRIO_PROCESS, 0))


async def test_cpu_limit_is_a_timeout(run_root: Path) -> None:
    sb = Sandbox(limits=SandboxLimits(cpu_s=1), tmp_root=str(run_root))
    try:
        await sb.start()
    except SandboxUnavailableError as e:
        pytest.skip(e.one_line())
    r = await sb.run("while True: pass", 20)
    assert r.status == "timeout" and r.duration_s < 10
    assert_clean(run_root)


async def test_parallelism_is_bounded(run_root: Path) -> None:
    sb = Sandbox(max_parallel=2, tmp_root=str(run_root))
    try:
        await sb.start()
    except SandboxUnavailableError as e:
        pytest.skip(e.one_line())
    t0 = time.monotonic()
    rs = await asyncio.gather(*(sb.run("import time; time.sleep(0.6)", 10) for _ in range(6)))
    assert all(r.status == "passed" for r in rs)
    assert time.monotonic() - t0 >= 1.7  # 3 waves of 2
    assert_clean(run_root)


async def test_probe_confirms_isolation(sandbox: Sandbox) -> None:
    assert sandbox.mode is not None
    ok, why = await probe_isolation(sandbox.mode)  # type: ignore[arg-type]
    assert ok, why


async def test_refuses_without_isolation(monkeypatch: pytest.MonkeyPatch, run_root: Path) -> None:
    async def no_isolation(mode: str, limits: object = None) -> tuple[bool, str]:
        return False, "simulated: no namespaces"

    monkeypatch.setattr(core, "probe_isolation", no_isolation)
    monkeypatch.setattr(core, "_userns_possible", lambda: (True, ""))
    with pytest.raises(SandboxUnavailableError) as ei:
        await Sandbox(tmp_root=str(run_root)).start()
    assert "simulated: no namespaces" in ei.value.message
    assert "allow_unisolated" in (ei.value.hint or "")
    with pytest.raises(SandboxUnavailableError):
        await Sandbox(tmp_root=str(run_root)).run("print(1)", 5)  # never silently falls back


async def test_explicit_unisolated_opt_in(monkeypatch: pytest.MonkeyPatch, run_root: Path) -> None:
    async def no_isolation(mode: str, limits: object = None) -> tuple[bool, str]:
        return False, "simulated"

    monkeypatch.setattr(core, "probe_isolation", no_isolation)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-plain")
    sb = Sandbox(allow_unisolated=True, tmp_root=str(run_root))
    assert await sb.start() == "plain"
    r = await sb.run("import os\nprint(sorted(os.environ))\nprint(os.getcwd())", 10)
    assert r.status == "passed" and r.isolation == "plain"
    assert "OPENAI_API_KEY" not in r.stdout and "sk-canary" not in r.stdout
    assert str(run_root) in r.stdout  # works in its own temp dir
    r = await sb.run("x = bytearray(20 * 1024 ** 3)", 10)
    assert r.status == "oom"
    r = await sb.run("import time\ntime.sleep(30)", 0.5)
    assert r.status == "timeout" and r.duration_s < 5
    assert list(run_root.iterdir()) == []


async def test_container_backend_says_when_no_daemon(run_root: Path) -> None:
    from evalscope.eval.sandbox.container import ContainerBackend

    be = ContainerBackend("python:3.11-slim", SandboxLimits())
    try:
        engine = await be.check(timeout_s=5)
    except SandboxUnavailableError as e:
        assert "no container daemon answers" in e.message
        assert "docker" in e.message
        with pytest.raises(SandboxUnavailableError):
            await Sandbox(isolation="container", tmp_root=str(run_root)).start()
    else:  # pragma: no cover - a daemon runs here
        pytest.skip(f"a container daemon answers ({engine}); detection path not exercised")


async def test_launcher_failure_is_a_sandbox_error(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, run_root: Path
) -> None:
    monkeypatch.setattr(core, "_LAUNCHER", str(run_root.parent / "missing_launcher.py"))
    r = await sandbox.run("print(1)", 5)
    assert r.status == "sandbox_error" and not r.counted
    assert r.error
    assert_clean(run_root)


async def test_setup_error_is_reported(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, run_root: Path
) -> None:
    if sandbox.mode != "root":
        pytest.skip("root mode only")
    orig = core._interpreter
    monkeypatch.setattr(core, "_interpreter", lambda: (orig()[0], "/nonexistent/prefix"))
    r = await sandbox.run("print(1)", 5)
    assert r.status == "sandbox_error"
    assert "nonexistent" in (r.error or "")
    assert_clean(run_root)


def test_sync_helpers(tmp_path: Path) -> None:
    try:
        r = run_program("print(6 * 7)", 10, tmp_root=str(tmp_path))
    except SandboxUnavailableError as e:
        pytest.skip(e.one_line())
    assert r.status == "passed" and r.stdout == "42\n"
    sb = Sandbox(tmp_root=str(tmp_path))
    assert sb.run_sync("print(1)", 10).passed
    assert sb.run_sync("print(2)", 10).stdout == "2\n"  # a second event loop works too
    assert list(tmp_path.iterdir()) == []


def test_scrubbed_env_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("GITHUB_TOKEN", "y")
    env = scrubbed_env("/tmp/work")
    assert env["HOME"] == env["TMPDIR"] == "/tmp/work"
    assert set(env) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "HOME",
        "TMPDIR",
        "PYTHONHASHSEED",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONIOENCODING",
        "TZ",
    }


def test_invalid_parallelism() -> None:
    with pytest.raises(ValueError):
        Sandbox(max_parallel=0)


def _unprivileged_python() -> str | None:
    """An interpreter ``nobody`` can run (the test's own may live under /root)."""
    import subprocess

    for cand in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(cand):
            continue
        ok = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                cand,
                "-S",
                "-c",
                "import sys; assert sys.version_info >= (3, 11)",
            ],
            capture_output=True,
            timeout=30,
        )
        if ok.returncode == 0:
            return cand
    return None


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
@pytest.mark.parametrize("isolation", ["namespaces", "bwrap"])
def test_userns_mode_as_unprivileged_user(isolation: str) -> None:
    """The unprivileged paths (our launcher in a user namespace, and bubblewrap), exercised by running a sandbox
    as ``nobody`` (no root, no setuid)."""
    if isolation == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (apt-get install bubblewrap; .ci/run installs it)")

    python = _unprivileged_python()
    if python is None:
        pytest.skip("no Python >= 3.11 runnable by nobody")
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="evalscope-userns-test-"))  # pytest's tmp_path is root-only
    os.chmod(tmp_path, 0o777)
    try:
        _run_as_nobody(python, tmp_path, isolation)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_as_nobody(python: str, tmp_path: Path, isolation: str) -> None:
    import json
    import subprocess

    script = tmp_path / "run.py"
    src = str(Path(core.__file__).resolve().parents[3])
    script.write_text(
        f"""
import asyncio, json, sys
sys.path.insert(0, {src!r})
from evalscope.eval.sandbox import Sandbox
from evalscope.errors import SandboxUnavailableError

async def main():
    sb = Sandbox(tmp_root={str(tmp_path)!r}, isolation={isolation!r})
    try:
        mode = await sb.start()
    except SandboxUnavailableError as e:
        print(json.dumps({{"unavailable": e.one_line()}}))
        return
    r = await sb.run("import socket\\ntry:\\n    print([n for _, n in socket.if_nameindex()])\\nexcept OSError:\\n    print('none')\\nopen('/tmp/x', 'w')", 10)
    t = await sb.run("while True: pass", 1)
    f = await sb.run("import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass", 2)
    print(json.dumps({{"mode": mode, "out": r.stdout, "err": r.stderr, "t": t.status, "f": f.status}}))

asyncio.run(main())
"""
    )
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-S", str(script)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if "unavailable" in res:
        pytest.skip(res["unavailable"])
    assert res["mode"] == ("userns" if isolation == "namespaces" else "bwrap")
    assert res["out"].strip() in ("['lo']", "none"), res  # "none": netlink refused by the seccomp filter
    assert "Read-only file system" in res["err"], res
    assert res["t"] == "timeout" and res["f"] in ("timeout", "failed")
    # A killed namespace's last zombies are reaped by the host's init, asynchronously: allow a moment.
    deadline = time.monotonic() + 5
    while True:
        left = subprocess.run(["pgrep", "-u", "65534"], capture_output=True, text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"processes of nobody left: {left}"
    assert [p.name for p in tmp_path.iterdir()] == ["run.py"]


async def test_container_backend_plumbing_with_fake_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container backend's run path (stdin, capped output, timeout kill, statuses) against a stand-in engine
    that answers ``info`` and runs ``python -`` locally (no daemon runs here)."""
    import stat
    import sys

    from evalscope.eval.sandbox.container import ContainerBackend

    fake = tmp_path / "fakedocker"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "cmd = sys.argv[1]\n"
        "if cmd == 'info':\n"
        "    print('\"0.0-fake\"'); sys.exit(0)\n"
        "if cmd == 'kill':\n"
        "    sys.exit(0)\n"
        "assert cmd == 'run' and '--network' in sys.argv and sys.argv[sys.argv.index('--network') + 1] == 'none'\n"
        f"os.execv({sys.executable!r}, [{sys.executable!r}, '-'])\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    be = ContainerBackend("img", SandboxLimits(max_output_bytes=4096), engines=("fakedocker",))
    assert await be.check() == str(fake)
    r = await be.run("print('hi')", 5)
    assert (r.status, r.stdout, r.isolation) == ("passed", "hi\n", "container")
    r = await be.run("raise SystemExit(3)", 5)
    assert r.status == "failed" and r.returncode == 3
    r = await be.run("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", 20)
    assert r.status == "output_limit" and len(r.stdout) == 4096 and r.truncated
    t0 = time.monotonic()
    r = await be.run("while True: pass", 0.2)  # wall clock = timeout + 5 s of container start-up slack
    assert r.status == "timeout" and time.monotonic() - t0 < 10

"""Adversarial programs (X2/X3/S3): each is contained, the harness stays responsive, nothing is left behind."""

from __future__ import annotations

import os
import socket
import textwrap
import time
from pathlib import Path

import pytest
from sandbox_helpers import Heartbeat, assert_clean

from evalscope.eval.sandbox import ExecResult, Sandbox

pytestmark = pytest.mark.timeout(120)


async def _run(sb: Sandbox, hb: Heartbeat, program: str, timeout_s: float) -> ExecResult:
    ticks = hb.ticks
    r = await sb.run(textwrap.dedent(program), timeout_s)
    assert hb.ticks > ticks or r.duration_s < 0.05, "event loop did not tick while the program ran"
    assert hb.max_gap < 1.0, f"event loop stalled for {hb.max_gap:.2f}s"
    return r


async def test_infinite_loop_times_out(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    t0 = time.monotonic()
    r = await _run(sandbox, heartbeat, "while True:\n    pass\n", 1.0)
    assert r.status == "timeout"
    assert time.monotonic() - t0 < 5.0
    assert_clean(run_root)


async def test_sleeping_program_times_out_on_wall_clock(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path
) -> None:
    r = await _run(sandbox, heartbeat, "import time\ntime.sleep(60)\n", 0.5)
    assert r.status == "timeout"
    assert r.duration_s < 4.0
    assert_clean(run_root)


FORK_BOMB = """
import os
n = 0
while True:
    try:
        if os.fork() == 0:
            os.setsid()  # try to escape the process group
        n += 1
    except OSError:
        pass
"""


async def test_fork_bomb_is_contained(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    t0 = time.monotonic()
    r = await _run(sandbox, heartbeat, FORK_BOMB, 2.0)
    assert r.status in ("timeout", "failed")
    assert time.monotonic() - t0 < 10.0
    assert_clean(run_root)
    # The harness still runs programs normally afterwards.
    ok = await sandbox.run("print('alive')", 10)
    assert ok.status == "passed" and ok.stdout.strip() == "alive"


async def test_process_count_is_limited(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    prog = """
    import os, time
    kids = 0
    try:
        for _ in range(10_000):
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            kids += 1
    except OSError as e:
        print("limited", kids, e.errno)
    """
    r = await _run(sandbox, heartbeat, prog, 10.0)
    assert r.status == "passed", r
    out = r.stdout.split()
    assert out[0] == "limited" and int(out[1]) < 200
    # The sleeping children died with the program's namespace.
    assert_clean(run_root)


async def test_daemonised_child_is_killed(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    prog = """
    import subprocess, sys
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print("spawned")
    """
    r = await _run(sandbox, heartbeat, prog, 10.0)
    assert r.status == "passed" and "spawned" in r.stdout
    assert_clean(run_root)


async def test_huge_allocation_hits_memory_limit(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path
) -> None:
    r = await _run(sandbox, heartbeat, "x = bytearray(20 * 1024 ** 3)\n", 10.0)
    assert r.status == "oom"
    assert "MemoryError" in r.stderr
    r = await _run(
        sandbox, heartbeat, "xs = []\nwhile True:\n    xs.append(bytearray(50 * 1024 ** 2))\n", 10.0
    )
    assert r.status == "oom"
    assert_clean(run_root)


async def test_huge_output_is_capped(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    prog = """
    import sys
    block = "x" * (1 << 20)
    for _ in range(1024):  # 1 GiB
        sys.stdout.write(block)
    """
    t0 = time.monotonic()
    r = await _run(sandbox, heartbeat, prog, 30.0)
    assert r.status == "output_limit"
    assert r.truncated
    assert len(r.stdout) <= sandbox.limits.max_output_bytes
    assert time.monotonic() - t0 < 10.0
    r = await _run(sandbox, heartbeat, "import sys\nwhile True:\n    sys.stderr.write('e' * 65536)\n", 30.0)
    assert r.status == "output_limit"
    assert_clean(run_root)


async def test_big_file_hits_file_size_limit(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    r = await _run(sandbox, heartbeat, "open('big.bin', 'wb').write(b'x' * (200 << 20))\n", 10.0)
    assert r.status in ("failed", "oom")
    assert_clean(run_root)


async def test_writing_outside_work_dir_is_denied(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path, tmp_path: Path
) -> None:
    open_dir = tmp_path / "world-writable"
    open_dir.mkdir()
    os.chmod(open_dir, 0o1777)
    tag = f"evalscope-escape-{os.getpid()}"
    targets = [
        str(open_dir / "escaped.txt"),
        f"/tmp/{tag}",
        f"/var/tmp/{tag}",
        f"/dev/shm/{tag}",
        f"/etc/{tag}",
        f"/root/{tag}",
        f"/{tag}",
        f"../{tag}",
        f"{Path.home()}/{tag}",
    ]
    prog = f"""
    import os
    for t in {targets!r}:
        try:
            with open(t, "w") as f:
                f.write("escaped")
            print("WROTE", t)
        except OSError as e:
            print("denied", t, type(e).__name__)
    with open("inside.txt", "w") as f:
        f.write("ok")
    print("inside ok", os.path.abspath("inside.txt"))
    """
    r = await _run(sandbox, heartbeat, prog, 10.0)
    assert r.status == "passed", r
    assert "inside ok" in r.stdout
    for t in targets:
        host_path = Path(t) if t.startswith("/") else None
        if host_path is not None:
            assert not host_path.exists(), f"the program wrote {t} on the host"
    assert not (open_dir / "escaped.txt").exists()
    # Whatever it "wrote" inside its private /tmp is gone with the namespace, and nothing reached the host.
    assert_clean(run_root)


async def test_parent_environment_is_not_inherited(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = "sk-canary-3b9f0c1e5d"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("HF_TOKEN", canary + "-hf")
    monkeypatch.setenv("EVALSCOPE_API_KEY", canary + "-es")
    prog = """
    import os, glob
    print(dict(os.environ))
    for p in glob.glob("/proc/*/environ"):
        try:
            print(p, open(p, "rb").read())
        except OSError as e:
            print(p, type(e).__name__)
    """
    r = await _run(sandbox, heartbeat, prog, 10.0)
    assert r.status == "passed", r
    assert canary not in r.stdout and canary not in r.stderr
    assert "OPENAI_API_KEY" not in r.stdout
    assert_clean(run_root)


async def test_network_is_unreachable(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    abstract = f"\0evalscope-test-{os.getpid()}"
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_listener.bind(abstract)
    unix_listener.listen(1)
    unix_listener.setblocking(False)
    prog = f"""
    import socket
    for fam, addr in ((socket.AF_INET, ("127.0.0.1", {port})), (socket.AF_UNIX, {abstract!r})):
        try:  # the seccomp filter refuses AF_INET sockets outright
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect(addr)
            print("CONNECTED", fam)
        except OSError as e:
            print("denied", fam, type(e).__name__)
    try:
        print("ifaces", [n for _, n in socket.if_nameindex()])
    except OSError:
        print("ifaces none (netlink refused)")
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=3)
        print("CONNECTED outside")
    except OSError as e:
        print("denied outside", type(e).__name__)
    """
    try:
        r = await _run(sandbox, heartbeat, prog, 15.0)
        for sock in (listener, unix_listener):
            with pytest.raises(BlockingIOError):
                sock.accept()
    finally:
        listener.close()
        unix_listener.close()
    assert r.status == "passed", r
    assert "CONNECTED" not in r.stdout
    assert r.stdout.count("denied") == 3
    assert "ifaces ['lo']" in r.stdout or "ifaces none (netlink refused)" in r.stdout
    assert_clean(run_root)


SECCOMP_PROBE = """
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    ctypes.set_errno(0)
    ret = getattr(libc, name)(*args)
    return errno.errorcode.get(ctypes.get_errno(), "OK") if ret == -1 else "OK"
res = {}
for fam in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
    try:
        socket.socket(getattr(socket, fam), socket.SOCK_DGRAM if fam != "AF_PACKET" else socket.SOCK_RAW).close()
        res[fam] = "OK"
    except OSError as e:
        res[fam] = errno.errorcode[e.errno]
socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
res["AF_UNIX"] = "OK"
res["ptrace"] = call("ptrace", 16, os.getppid(), 0, 0)              # PTRACE_ATTACH
res["unshare_user"] = call("unshare", 0x10000000)                   # CLONE_NEWUSER
res["unshare_net"] = call("unshare", 0x40000000)
res["mount"] = call("mount", b"none", b"/tmp/work", b"tmpfs", 0, None)
res["keyctl"] = call("syscall", {keyctl}, 0, 0, 0, 0, 0)
res["bpf"] = call("syscall", {bpf}, 0, 0, 0)
res["setns"] = call("setns", 0, 0)
print(sorted(res.items()))
"""


async def test_seccomp_filter_blocks_dangerous_calls(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path
) -> None:
    """Both launchers install our seccomp filter: only AF_UNIX sockets; no ptrace, unshare, mount, keyctl, bpf,
    setns (the filter answers EPERM / EAFNOSUPPORT)."""
    import platform

    nrs = {"x86_64": (250, 321), "aarch64": (219, 280)}.get(platform.machine())
    if nrs is None:
        pytest.skip(f"no seccomp filter for {platform.machine()}")
    prog = SECCOMP_PROBE.replace("{keyctl}", str(nrs[0])).replace("{bpf}", str(nrs[1]))
    r = await _run(sandbox, heartbeat, prog, 15.0)
    assert r.status == "passed", r
    res = dict(__import__("ast").literal_eval(r.stdout.strip()))
    assert res["AF_UNIX"] == "OK"
    for fam in ("AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET"):
        assert res[fam] == "EAFNOSUPPORT", res
    for call in ("ptrace", "unshare_user", "unshare_net", "mount", "keyctl", "bpf", "setns"):
        assert res[call] == "EPERM", (call, res)
    assert_clean(run_root)


async def test_stdin_is_closed_and_identity_is_unprivileged(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path
) -> None:
    prog = "import os, sys\nprint(repr(sys.stdin.read()), os.getuid(), os.getcwd() == os.environ['HOME'])\n"
    r = await _run(sandbox, heartbeat, prog, 10.0)
    assert r.status == "passed", r
    data, uid, home_is_cwd = r.stdout.split()
    assert data == "''"
    assert home_is_cwd == "True"
    if os.geteuid() == 0:
        assert int(uid) != 0
    assert_clean(run_root)


async def test_all_attacks_at_once_in_parallel(
    sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path
) -> None:
    import asyncio

    progs = [
        ("while True: pass\n", 1.5),
        (FORK_BOMB, 1.5),
        ("x = bytearray(20 * 1024 ** 3)\n", 5),
        ("import sys\nwhile True: sys.stdout.write('y' * 65536)\n", 5),
        ("print('fine')\n", 5),
    ]
    results = await asyncio.gather(*(sandbox.run(textwrap.dedent(p), t) for p, t in progs))
    assert [r.status for r in results] == ["timeout", results[1].status, "oom", "output_limit", "passed"]
    assert results[1].status in ("timeout", "failed")
    assert heartbeat.max_gap < 1.0
    assert_clean(run_root)


async def test_cancelled_run_leaves_nothing(sandbox: Sandbox, heartbeat: Heartbeat, run_root: Path) -> None:
    import asyncio

    task = asyncio.ensure_future(sandbox.run(FORK_BOMB, 30.0))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert heartbeat.max_gap < 1.0
    assert_clean(run_root)

"""Run untrusted Python programs (model-generated code) with limits and isolation.

See ``docs/sandbox.md``. One program = one launcher process (``_launcher.py``) started as the leader of a new
session; in the isolated modes the launcher puts the program into fresh mount / network / PID / IPC / UTS
namespaces, on a private tmpfs work directory, as an unprivileged per-run uid, with rlimits. The parent enforces
the wall-clock timeout, caps the captured output and makes sure nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.sandbox._io import read_capped as _read_capped
from evalscope.eval.sandbox.types import (
    Backend,
    ExecResult,
    Isolation,
    SandboxLimits,
    Status,
)

_LAUNCHER = str(Path(__file__).with_name("_launcher.py"))
_SETUP_FAILED = 121
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
#: The only variables taken from the parent's environment (values are never secrets).
_ENV_ALLOWLIST = ("TZ",)


# ---------------------------------------------------------------------------------------------------------------
# Per-run uids (root mode): each running program gets its own uid, so RLIMIT_NPROC is per program and leftovers
# can be found by uid. The range depends on our pid so that two evalscope processes do not share uids.
_UID_POOL_SIZE = 4096
_UID_BASE = 1_500_000_000 + (os.getpid() % 500_000) * _UID_POOL_SIZE
_uid_lock = threading.Lock()
_uid_free: list[int] = list(range(_UID_BASE + _UID_POOL_SIZE - 1, _UID_BASE - 1, -1))
_uid_quarantine: set[int] = set()


def sandbox_uid_range() -> range:
    """The uids this process gives to programs in root mode (for leak checks)."""
    return range(_UID_BASE, _UID_BASE + _UID_POOL_SIZE)


def _acquire_uid() -> int:
    with _uid_lock:
        if not _uid_free:
            raise RuntimeError("no free sandbox uid (too many leftovers)")
        return _uid_free.pop()


def _release_uid(uid: int, clean: bool) -> None:
    with _uid_lock:
        if clean:
            _uid_free.append(uid)
        else:
            _uid_quarantine.add(uid)


def _pids_of_uid(uid: int) -> list[int]:
    """Processes whose real, effective or saved uid is ``uid`` (from /proc/*/status)."""
    out: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if str(uid).encode() in line.split()[1:4]:
                            out.append(int(name))
                        break
        except OSError:
            continue
    return out


async def _sweep_uid(uid: int, deadline_s: float = 3.0) -> bool:
    """SIGKILL every process of ``uid`` and wait until none is left; False if some remain."""
    end = time.monotonic() + deadline_s
    while True:
        pids = _pids_of_uid(uid)
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------------------------------------------
def _interpreter() -> tuple[str, str]:
    """(real path of the base interpreter, its prefix) — the program runs on the same Python as evalscope."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return exe, os.path.realpath(sys.base_prefix)


def scrubbed_env(home: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The program's environment: a fixed minimal set, nothing inherited except :data:`_ENV_ALLOWLIST`."""
    env = {
        "PATH": _SAFE_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
    }
    for k in _ENV_ALLOWLIST:
        if k in os.environ:
            env[k] = os.environ[k]
    if extra:
        env.update(extra)
    return env


@functools.cache
def _seccomp_hex() -> str | None:
    from evalscope.eval.sandbox.seccomp import build_filter

    prog = build_filter()
    return prog.hex() if prog is not None else None


@functools.cache
def _launcher_source() -> str:
    return Path(_LAUNCHER).read_text(encoding="utf-8")


def _bwrap_path() -> str | None:
    """Debian's bubblewrap, when installed (``apt-get install bubblewrap``)."""
    return shutil.which("bwrap", path=_SAFE_PATH)


def _userns_possible() -> tuple[bool, str]:
    try:
        if int(Path("/proc/sys/user/max_user_namespaces").read_text()) == 0:
            return False, "user namespaces are disabled (user.max_user_namespaces = 0)"
    except (OSError, ValueError):
        return False, "cannot read /proc/sys/user/max_user_namespaces"
    for knob in (
        "/proc/sys/kernel/unprivileged_userns_clone",
        "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
    ):
        with contextlib.suppress(OSError, ValueError):
            v = int(Path(knob).read_text())
            if (knob.endswith("clone") and v == 0) or (knob.endswith("userns") and v == 1):
                return False, f"unprivileged user namespaces are blocked ({knob} = {v})"
    return True, ""


def _exists(path: str) -> bool:
    return os.path.lexists(path)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


_PROBE_PROGRAM = r"""
import json, os, socket
res = {"uid": os.getuid()}
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    res["connect"] = "connected"
except OSError as e:
    res["connect"] = type(e).__name__
try:
    res["ifaces"] = [n for _, n in socket.if_nameindex()]
except OSError:  # netlink sockets refused by the seccomp filter: nothing to see either
    res["ifaces"] = []
try:
    with open(MARKER, "w") as f:
        f.write("escaped")
    res["write"] = "written"
except OSError as e:
    res["write"] = type(e).__name__
print(json.dumps(res))
"""

_probe_cache: dict[str, tuple[bool, str]] = {}


async def probe_isolation(mode: Isolation, limits: SandboxLimits | None = None) -> tuple[bool, str]:
    """Run a probe program in ``mode`` and check it can reach neither a listening 127.0.0.1 socket of ours nor a
    world-writable directory of ours, sees only ``lo`` and (root mode) is not root. Cached per process."""
    if mode in _probe_cache:
        return _probe_cache[mode]
    if mode == "plain":
        return True, "no isolation (explicit opt-in)"
    if sys.platform != "linux":
        res = (False, f"namespaces need Linux (platform is {sys.platform})")
        _probe_cache[mode] = res
        return res
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    marker_dir = tempfile.mkdtemp(prefix="evalscope-probe-")
    os.chmod(marker_dir, 0o1777)
    marker = os.path.join(marker_dir, "escaped.txt")
    program = _PROBE_PROGRAM.replace("PORT", str(port)).replace("MARKER", repr(marker))
    try:
        r = await _execute(program, 10.0, mode, limits or SandboxLimits())
        ok, why = True, ""
        if r.status != "passed":
            ok, why = False, f"the probe program did not run ({r.status}: {r.error or r.stderr[-300:]})"
        else:
            info = json.loads(r.stdout.strip().splitlines()[-1])
            accepted = False
            with contextlib.suppress(BlockingIOError):
                conn, _ = listener.accept()
                conn.close()
                accepted = True
            if info["connect"] == "connected" or accepted:
                ok, why = False, "the probe reached a 127.0.0.1 socket of the parent (no network namespace)"
            elif set(info["ifaces"]) - {"lo"}:
                ok, why = False, f"the probe sees network interfaces {info['ifaces']}"
            elif _exists(marker):
                ok, why = False, "the probe wrote into a directory outside its work directory"
            elif mode in ("root", "bwrap") and os.geteuid() == 0 and info["uid"] == 0:
                ok, why = False, "the probe ran as root"
    except (OSError, ValueError, KeyError) as e:
        ok, why = False, f"probe failed: {type(e).__name__}: {e}"
    finally:
        listener.close()
        shutil.rmtree(marker_dir, ignore_errors=True)
    _probe_cache[mode] = (ok, why)
    return ok, why


def _classify(
    returncode: int | None, wait_status: int | None, stderr: str, timed_out: bool, over_cap: bool
) -> tuple[Status, int | None, int | None]:
    """(status, returncode, signal) of a finished program."""
    sig: int | None = None
    rc = returncode
    if wait_status is not None:
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
            rc = -sig
        elif os.WIFEXITED(wait_status):
            rc = os.WEXITSTATUS(wait_status)
    elif rc is not None and rc < 0:
        sig = -rc
    if timed_out:
        return "timeout", rc, sig
    if over_cap:
        return "output_limit", rc, sig
    if sig == signal.SIGXCPU:
        return "timeout", rc, sig
    if rc == 0:
        return "passed", rc, sig
    tail = stderr[-2000:]
    if "MemoryError" in tail or "Cannot allocate memory" in tail or (sig == signal.SIGKILL and not timed_out):
        return "oom", rc, sig
    return "failed", rc, sig


async def _read_status(fd: int, lines: list[str], got_pid: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            text = line.decode(errors="replace").strip()
            lines.append(text)
            if text.startswith("P "):
                got_pid.set()
    finally:
        transport.close()


async def _execute(
    program: str,
    timeout_s: float,
    mode: Isolation,
    limits: SandboxLimits,
    extra_env: dict[str, str] | None = None,
    site_packages: bool = False,
    tmp_root: str | None = None,
    stdin: bytes | None = None,
) -> ExecResult:
    """Run one program in one launcher; never raises for the program's behaviour. ``stdin`` (at most one pipe
    buffer, 64 KiB) is what the program reads on fd 0; without it fd 0 is /dev/null."""
    t0 = time.monotonic()
    exe, prefix = _interpreter()
    workdir = tempfile.mkdtemp(prefix="evalscope-sbx-", dir=tmp_root)
    per_uid = mode == "root" or (mode == "bwrap" and os.geteuid() == 0)
    uid = _acquire_uid() if per_uid else os.getuid()
    gid = uid if per_uid else os.getgid()
    uid_clean = True
    swept = False
    proc: asyncio.subprocess.Process | None = None
    if stdin is not None and len(stdin) > 65536:
        raise ValueError("stdin for a sandboxed program is limited to 64 KiB")
    in_r: int | None = None
    if stdin is not None:
        in_r, in_w = os.pipe()
        try:
            os.write(in_w, stdin)  # fits the pipe buffer: never blocks
        finally:
            os.close(in_w)
    status_r, status_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status_lines: list[str] = []
    status_task: asyncio.Task[None] | None = None
    try:
        script = "main.py"
        program_path = os.path.join(workdir, script)
        _write_text(program_path, program)
        home = "/tmp/work" if mode != "plain" else workdir
        if mode == "plain":
            os.chmod(workdir, 0o700)
        cpu = limits.cpu_s if limits.cpu_s is not None else math.ceil(timeout_s) + 1
        cfg: dict[str, Any] = {
            "mode": mode,
            "uid": uid,
            "gid": gid,
            "status_fd": status_w,
            "program_path": program_path,
            "script_name": script,
            "python": exe,
            "python_prefix": prefix,
            "python_args": ["-S", "-B"] if not site_packages else ["-s", "-B"],
            "env": scrubbed_env(home, extra_env),
            "tmpfs_kb": limits.tmpfs_mb * 1024,
            "seccomp": _seccomp_hex() if mode != "plain" else None,
            "limits": {
                "cpu_s": cpu,
                "as_bytes": limits.memory_mb * 1024 * 1024,
                "fsize_bytes": limits.max_file_mb * 1024 * 1024,
                "nofile": limits.max_open_files,
                # As root RLIMIT_NPROC is not enforced, hence the per-run uid; in a user namespace it counts
                # all of the invoking user's tasks, so the launcher adds the ones already running.
                "nproc": limits.max_processes,
            },
        }
        if mode == "bwrap":
            cfg["bwrap"] = _bwrap_path()
            cfg["launcher_source"] = _launcher_source()
            cfg["prlimit"] = shutil.which("prlimit", path=_SAFE_PATH)  # without it: our launcher inside bwrap
        launcher_env = {"PATH": _SAFE_PATH, "LANG": "C.UTF-8"}
        try:
            proc = await asyncio.create_subprocess_exec(
                exe,
                "-I",
                "-S",
                _LAUNCHER,
                json.dumps(cfg),
                stdin=asyncio.subprocess.DEVNULL if in_r is None else in_r,
                # Our own pipes (not asyncio's): Process.wait() then depends on the exit only, never on a
                # pipe we stopped reading past the cap.
                stdout=out_w,
                stderr=err_w,
                env=launcher_env,
                cwd=workdir,
                start_new_session=True,
                pass_fds=(status_w,),
            )
        except OSError as e:
            return ExecResult(
                "sandbox_error",
                None,
                "",
                "",
                time.monotonic() - t0,
                error=f"could not start: {e}",
                isolation=mode,
            )
        finally:
            for fd in (status_w, out_w, err_w):
                os.close(fd)
            if in_r is not None:
                os.close(in_r)
                in_r = None
        got_pid = asyncio.Event()
        status_task = asyncio.create_task(_read_status(status_r, status_lines, got_pid))
        status_r = -1
        out, err = bytearray(), bytearray()
        overflow = asyncio.Event()
        readers = [
            asyncio.create_task(_read_capped(out_r, limits.max_output_bytes, out, overflow)),
            asyncio.create_task(_read_capped(err_r, limits.max_output_bytes, err, overflow)),
        ]
        out_r = err_r = -1
        waiter = asyncio.create_task(proc.wait())
        overflow_wait = asyncio.create_task(overflow.wait())
        timed_out = over_cap = False
        done, _ = await asyncio.wait(
            {waiter, overflow_wait}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            if overflow_wait in done:
                over_cap = True
            else:
                timed_out = True
            await _kill(proc, status_lines, uid if per_uid else None)
        overflow_wait.cancel()
        await waiter
        # Output still buffered in the pipes is read up to the cap; a grandchild holding the pipes open (plain
        # mode only) cannot keep us here.
        _, pending = await asyncio.wait(readers, timeout=1.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(status_task, 1.0)
        if overflow.is_set() and not timed_out:
            over_cap = True
        duration = time.monotonic() - t0
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # plain mode: anything left in the group
        if per_uid:
            uid_clean = await _sweep_uid(uid)
            swept = True
        setup_errors = [s[2:] for s in status_lines if s.startswith("E ")]
        wait_lines = [s[2:] for s in status_lines if s.startswith("W ")]
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        if setup_errors:
            return ExecResult(
                "sandbox_error",
                proc.returncode,
                stdout,
                stderr,
                duration,
                error=setup_errors[0],
                isolation=mode,
            )
        if mode == "bwrap":
            # bwrap's exit code is the program's, or 128 + the signal that ended it; a bwrap that failed to set
            # up never reported the program's pid.
            started = any("child-pid" in s for s in status_lines)
            if not started and not (timed_out or over_cap):
                return ExecResult(
                    "sandbox_error",
                    proc.returncode,
                    stdout,
                    stderr,
                    duration,
                    error=f"bwrap did not start the program: {stderr.strip()[-300:]}",
                    isolation=mode,
                )
            rc = proc.returncode
            if rc is not None and rc > 128:
                rc = -(rc - 128)
            status, rc, sig = _classify(rc, None, stderr, timed_out, over_cap)
            return ExecResult(
                status,
                rc,
                stdout,
                stderr,
                duration,
                truncated=over_cap or overflow.is_set(),
                signal=sig,
                isolation=mode,
            )
        if mode != "plain" and not wait_lines and not (timed_out or over_cap):
            return ExecResult(
                "sandbox_error",
                proc.returncode,
                stdout,
                stderr,
                duration,
                error=f"launcher ended without a status (exit {proc.returncode})",
                isolation=mode,
            )
        wait_status = int(wait_lines[0]) if wait_lines else None
        status, rc, sig = _classify(proc.returncode, wait_status, stderr, timed_out, over_cap)
        return ExecResult(
            status,
            rc,
            stdout,
            stderr,
            duration,
            truncated=over_cap or overflow.is_set(),
            signal=sig,
            isolation=mode,
        )
    finally:
        for fd in (status_r, out_r, err_r):
            if fd >= 0:
                os.close(fd)
        if in_r is not None:
            os.close(in_r)
        if proc is not None and proc.returncode is None:
            await _kill(proc, status_lines, uid if per_uid else None)
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        if status_task is not None and not status_task.done():
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
        if per_uid and not swept:  # cancelled or failed half-way: still leave nothing behind
            uid_clean = await _sweep_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)
        if per_uid:
            _release_uid(uid, uid_clean)


def _bwrap_child(status_lines: list[str]) -> int | None:
    """The pid of bwrap's child from ``--json-status-fd`` (``{ "child-pid": N }``), if it is still ours: a
    process in a nested PID namespace."""
    for line in status_lines:
        if "child-pid" in line:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                pid = int(json.loads(line)["child-pid"])
                try:
                    with open(f"/proc/{pid}/status", "rb") as f:
                        nspid = next((ln for ln in f if ln.startswith(b"NSpid:")), b"")
                except OSError:
                    return None
                return pid if len(nspid.split()) > 2 else None
    return None


async def _gone(pid: int, deadline_s: float) -> None:
    """Wait until ``pid`` has exited (a zombie counts as exited)."""
    for _ in range(max(1, int(deadline_s / 0.01))):
        if not _running(pid):
            return
        await asyncio.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


def _ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ..." where comm may hold spaces and parentheses.
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


async def _kill(proc: asyncio.subprocess.Process, status_lines: list[str], uid: int | None) -> None:
    """Kill the program: first the init of its PID namespace (the kernel then kills the rest, and the launcher
    reaps init and exits), then, if the launcher is still there after a grace period, its whole process group."""
    child = next((int(s[2:]) for s in status_lines if s.startswith("P ")), None)
    bwrap_child = _bwrap_child(status_lines)
    if bwrap_child is not None:
        # bwrap's child is PID 1 of the sandbox's PID namespace: killing it kills the namespace.
        with contextlib.suppress(OSError):
            os.kill(bwrap_child, signal.SIGKILL)
        await _gone(bwrap_child, 3.0)
        # bwrap then exits and our launcher reaps what is left and exits: give it that moment.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
    if child is not None and _ppid_of(child) == proc.pid:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), 2.0)
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError as e:  # pragma: no cover - a setuid program in the group
            if e.errno != errno.EPERM:
                raise


# ---------------------------------------------------------------------------------------------------------------
class ProcessBackend:
    """Our launcher in one isolation mode (namespaces as ``root`` or ``userns``, ``bwrap``, or ``plain``): a
    :class:`~evalscope.eval.sandbox.types.Backend`."""

    def __init__(
        self,
        mode: Isolation,
        limits: SandboxLimits,
        extra_env: dict[str, str] | None = None,
        site_packages: bool = False,
        tmp_root: str | None = None,
    ) -> None:
        self.name: str = mode
        self.mode = mode
        self.limits = limits
        self.extra_env = extra_env
        self.site_packages = site_packages
        self.tmp_root = tmp_root

    async def check(self) -> None:
        ok, why = await probe_isolation(self.mode, self.limits)
        if not ok:
            raise SandboxUnavailableError(f"{self.mode}: {why}")

    async def run(self, program: str, timeout_s: float, stdin: bytes | None = None) -> ExecResult:
        try:
            return await _execute(
                program,
                timeout_s,
                self.mode,
                self.limits,
                self.extra_env,
                self.site_packages,
                self.tmp_root,
                stdin,
            )
        except (OSError, RuntimeError) as e:
            return ExecResult(
                "sandbox_error", None, "", "", 0.0, error=f"{type(e).__name__}: {e}", isolation=self.mode
            )


@dataclass
class Sandbox:
    """Runs programs with bounded parallelism.

    ``isolation``: ``"auto"`` (bubblewrap when installed, else our namespaces launcher as root or in a user
    namespace; refuses when nothing works), ``"bwrap"``, ``"namespaces"`` (``root`` or ``userns``), ``"root"``,
    ``"userns"``, ``"container"`` (docker/podman, only when a daemon answers) or ``"none"``.
    ``allow_unisolated=True`` is the explicit opt-in to run without isolation when none is available; it is
    never used silently.
    """

    max_parallel: int | None = None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    allow_unisolated: bool = False
    isolation: str = "auto"
    container_image: str = "python:3.11-slim"
    extra_env: dict[str, str] | None = None
    #: Let programs import third-party packages installed next to evalscope (off: stdlib only, faster start).
    site_packages: bool = False
    #: Where the per-run directories are created (default: the system temp dir).
    tmp_root: str | None = None
    _mode: str | None = field(default=None, init=False)
    _why: str = field(default="", init=False)
    _sem: asyncio.Semaphore | None = field(default=None, init=False)
    _start_lock: asyncio.Lock | None = field(default=None, init=False)
    _backend: Backend | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.max_parallel is None:
            self.max_parallel = os.cpu_count() or 1
        if self.max_parallel < 1:
            raise ValueError("max_parallel must be >= 1")

    @property
    def mode(self) -> str | None:
        """The isolation in use after :meth:`start` (``bwrap`` / ``root`` / ``userns`` / ``container`` /
        ``plain``)."""
        return self._mode

    async def start(self) -> str:
        """Choose and verify the isolation (probe); raises :class:`SandboxUnavailableError` when there is none
        and unisolated runs were not allowed. Idempotent."""
        if self._mode is not None:
            return self._mode
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:  # concurrent first runs probe once
            if self._mode is not None:
                return self._mode
            return await self._choose()

    def _process_backend(self, mode: Isolation) -> ProcessBackend:
        return ProcessBackend(mode, self.limits, self.extra_env, self.site_packages, self.tmp_root)

    async def _choose(self) -> str:
        reasons: list[str] = []
        want = self.isolation
        if want == "container":
            from evalscope.eval.sandbox.container import ContainerBackend

            backend = ContainerBackend(self.container_image, self.limits)
            await backend.check()
            self._backend = backend
            self._mode = "container"
            return self._mode
        candidates: list[Isolation] = []
        if want in ("auto", "bwrap"):
            if sys.platform != "linux" or _bwrap_path() is None:
                reasons.append("bwrap: not installed (apt-get install bubblewrap)")
            elif os.geteuid() != 0 and not _userns_possible()[0]:
                reasons.append(f"bwrap: {_userns_possible()[1]}")
            else:
                candidates.append("bwrap")
        if want in ("auto", "root", "namespaces"):
            if os.geteuid() == 0 and sys.platform == "linux":
                candidates.append("root")
            elif want == "root":
                reasons.append("root isolation needs root")
        if want in ("auto", "userns", "namespaces") and os.geteuid() != 0:
            possible, why = _userns_possible()
            if possible:
                candidates.append("userns")
            else:
                reasons.append(why)
        for cand in candidates:
            ok, why = await probe_isolation(cand, self.limits)
            if ok:
                self._backend = self._process_backend(cand)
                self._mode = cand
                return cand
            reasons.append(f"{cand}: {why}")
        if want == "none" or self.allow_unisolated:
            self._backend = self._process_backend("plain")
            self._mode = "plain"
            self._why = "; ".join(reasons)
            return self._mode
        raise SandboxUnavailableError(
            "cannot isolate model-generated code here: "
            + ("; ".join(reasons) or "no isolation method available"),
            "run as root or enable unprivileged user namespaces, use the container backend with a running "
            "docker/podman daemon, or accept the risk explicitly with allow_unisolated=True",
        )

    async def run(self, program: str, timeout_s: float = 10.0, stdin: bytes | None = None) -> ExecResult:
        """Run ``program`` (Python source) and report how it ended; waits for a free slot first. ``stdin``:
        bytes the program can read on fd 0 (the code benchmarks pass their per-run nonce this way)."""
        mode = await self.start()
        if self._sem is None:
            assert self.max_parallel is not None
            self._sem = asyncio.Semaphore(self.max_parallel)
        assert self._backend is not None, mode
        async with self._sem:
            return await self._backend.run(program, timeout_s, stdin)

    def run_sync(self, program: str, timeout_s: float = 10.0, stdin: bytes | None = None) -> ExecResult:
        """Synchronous wrapper (not from inside a running event loop)."""
        self._sem = self._start_lock = None  # these belong to one event loop
        return asyncio.run(self.run(program, timeout_s, stdin))


def run_program(program: str, timeout_s: float = 10.0, **sandbox_kwargs: Any) -> ExecResult:
    """One-off synchronous run: ``run_program("print(1)", 5, allow_unisolated=False)``."""
    return Sandbox(**sandbox_kwargs).run_sync(program, timeout_s)

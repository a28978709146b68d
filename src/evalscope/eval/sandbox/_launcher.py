"""Sandbox launcher: runs as a separate interpreter (``python -I -S _launcher.py CONFIG_JSON``).

It is started by :mod:`evalscope.eval.sandbox.core` as the leader of a new session, with stdin on /dev/null, a
scrubbed environment and the status pipe on the fd named in the config. Standard library only; it never imports
evalscope (it may run before privileges are dropped, so it must stay small and auditable).

Isolated modes (``root`` and ``userns``):

1. unshare mount, network, PID, IPC and UTS namespaces (plus a user namespace in ``userns`` mode);
2. make every mount private (nothing propagates back to the host), put a size-limited tmpfs over ``/tmp`` that
   holds the work directory ``/tmp/work``, and root-owned empty tmpfs over the other world-writable directories;
3. if the interpreter lives below a directory the sandbox uid cannot enter (``/root/.pyenv``), hide that
   directory behind a tmpfs and bind the interpreter prefix back read-only at the same path;
4. fork: the child is PID 1 (init) of the new PID namespace, so when it exits (or is killed, directly or
   because this launcher died: PDEATHSIG) the kernel kills every process left in the namespace. Init mounts a
   fresh /proc and forks the program (PID 2), which sets the rlimits, drops to the sandbox uid/gid (root mode),
   sets no_new_privs and execs; init reaps orphans until the program ends and passes on its wait status;
5. this process waits and reports the program's wait status on the status pipe.

``plain`` mode (explicit opt-in only) sets the rlimits and execs the program in the given directory.

``bwrap`` mode: as root, unshare a mount namespace only to make the interpreter reachable (step 3), drop to the
sandbox uid; then exec Debian's ``bwrap`` (all namespaces, read-only root, tmpfs work directory, our seccomp
filter via ``--seccomp FD``), which runs this file again (``-c``) in ``bwrap-inner`` mode: write the program
into the work directory, set the rlimits, exec. bwrap reports on the status pipe (``--json-status-fd``).

The seccomp filter (``cfg["seccomp"]``, built by :mod:`evalscope.eval.sandbox.seccomp`) is installed right
before exec in the isolated modes.

Status pipe messages (one line each): ``E <message>`` a setup error (a sandbox error, not the program's fault),
``P <pid>`` the pid of the namespace's init (killing it kills the namespace), ``W <raw wait status>``
how the program ended.
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
SECCOMP_MODE_FILTER = 2
SETUP_FAILED = 121

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _install_seccomp(hex_filter: str) -> None:
    prog = bytes.fromhex(hex_filter)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "prctl(SECCOMP)")


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            None if src is None else src.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            None if data is None else data.encode(),
        ),
        f"mount {fstype or 'bind'} on {target}",
    )


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _report(fd: int, line: str) -> None:
    if fd >= 0:
        try:
            os.write(fd, (line.replace("\n", " ")[:2000] + "\n").encode())
        except OSError:
            pass


def _blocked_ancestor(path: str, uid: int) -> str | None:
    """The highest ancestor of ``path`` that ``uid`` could not traverse (None when all are open)."""
    parts = os.path.abspath(path).split("/")[1:]
    cur = ""
    for part in parts[:-1]:
        cur += "/" + part
        st = os.stat(cur)
        if st.st_uid == uid:
            continue
        if not st.st_mode & 0o001:
            return cur
    return None


def _expose_interpreter(prefix: str, uid: int) -> None:
    """Make ``prefix`` reachable for ``uid`` at its own path (absolute RUNPATHs keep working)."""
    blocked = _blocked_ancestor(prefix, uid)
    if blocked is None:
        return
    fd = os.open(prefix, os.O_PATH | os.O_DIRECTORY)
    _mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    os.makedirs(prefix, mode=0o755, exist_ok=True)
    _mount(f"/proc/self/fd/{fd}", prefix, None, MS_BIND | MS_REC)
    _mount(None, prefix, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(None, blocked, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.close(fd)


_MOUNT_OPTS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _make_all_readonly() -> None:
    """Bind-remount every mount of this (private) mount namespace read-only, keeping its other flags (which
    may be locked in a user namespace). Device nodes stay usable (/dev/null); /tmp and the other writable
    places are replaced afterwards. The root mount must succeed; others may refuse (then they keep their
    permissions, which the unprivileged uid cannot get past)."""
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        target, opts = _unescape(fields[4]), fields[5].split(",")
        if "ro" in opts:
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for o in opts:
            flags |= _MOUNT_OPTS.get(o, 0)
        try:
            _mount(None, target, None, flags)
        except SetupError:
            if target == "/":
                raise


def _setup_namespaces(cfg: dict[str, Any]) -> str:
    mode = cfg["mode"]
    uid, gid = cfg["uid"], cfg["gid"]
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if mode == "userns":
        outer_uid, outer_gid = os.getuid(), os.getgid()
        _check(_libc.unshare(flags | CLONE_NEWUSER), "unshare(user, mount, net, pid, ipc, uts)")
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {outer_uid} 1\n")
        _write("/proc/self/gid_map", f"{gid} {outer_gid} 1\n")
    else:
        _check(_libc.unshare(flags), "unshare(mount, net, pid, ipc, uts)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _make_all_readonly()
    ro = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
    # /tmp: an empty read-only tmpfs holding the work directory, itself a private size-limited tmpfs.
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    owner = f",uid={uid},gid={gid}" if mode == "root" else ""
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['tmpfs_kb']}k,mode=0700{owner}")
    _mount(None, "/tmp", None, ro)
    # Other world-writable places: empty and read-only.
    for d in ("/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/run/shm", "/dev/mqueue"):
        if os.path.isdir(d) and not os.path.islink(d):
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755")
            _mount(None, d, None, ro | MS_NOEXEC)
    _expose_interpreter(cfg["python_prefix"], uid)
    script = os.path.join(work, cfg["script_name"])
    with open(script, "wb") as f:
        f.write(cfg["program_bytes"])
    if mode == "root":
        os.chown(script, uid, gid)
    return work


def _tasks_of_uid(uid: int) -> int:
    """Threads of all processes whose real uid is ``uid`` (what RLIMIT_NPROC counts)."""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f if b":" in line)
        except OSError:
            continue
        uids = fields.get(b"Uid", b"").split()
        if uids and int(uids[0]) == uid:
            total += int(fields.get(b"Threads", b"1").strip() or b"1")
    return total


#: how much lower than the evaluator a sandboxed program runs (CFS weight about 1/10 of the evaluator's)
PROGRAM_NICENESS = 10


def _set_limits(cfg: dict[str, Any]) -> None:
    lim = cfg["limits"]
    pairs = [
        (resource.RLIMIT_CPU, lim["cpu_s"], lim["cpu_s"] + 1),
        (resource.RLIMIT_AS, lim["as_bytes"], lim["as_bytes"]),
        (resource.RLIMIT_FSIZE, lim["fsize_bytes"], lim["fsize_bytes"]),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
    ]
    nproc = lim.get("nproc")
    if nproc is not None and os.getuid() != 0:
        # RLIMIT_NPROC counts every task of the (outer) user: allow this many on top of what already runs.
        nproc += _tasks_of_uid(os.getuid())
    if nproc is not None:
        pairs.append((resource.RLIMIT_NPROC, nproc, nproc))
    for which, soft, hard in pairs:
        if soft is None:
            continue
        resource.setrlimit(which, (soft, hard))
    if cfg["mode"] != "bwrap-inner":  # bwrap mode lowered it before exec'ing bwrap
        _lower_priority()


def _lower_priority() -> None:
    """Below the evaluator's priority: a busy loop or a fork bomb in the program cannot starve the event loop
    that enforces its timeout (raising one's own niceness needs no privilege)."""
    os.nice(PROGRAM_NICENESS)


def _exec_program(cfg: dict[str, Any], workdir: str) -> NoReturn:
    argv = [cfg["python"], *cfg["python_args"], cfg["script_name"]]
    os.chdir(workdir)
    os.execve(cfg["python"], argv, cfg["env"])


def _program(cfg: dict[str, Any], workdir: str, err_w: int) -> NoReturn:
    """PID 2 of the namespace: limits, unprivileged identity, exec the program."""
    try:
        _set_limits(cfg)
        if cfg["mode"] == "root":
            os.setgroups([])
            os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
            os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
            if os.getuid() == 0 or os.geteuid() == 0:
                raise SetupError("could not drop root")
        # After the credential change (which clears it): die with the namespace's init.
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        if os.getppid() != 1:  # init died before PDEATHSIG was armed
            os._exit(SETUP_FAILED)
        if cfg.get("seccomp"):
            _install_seccomp(cfg["seccomp"])
        _exec_program(cfg, workdir)
    except BaseException as e:  # noqa: BLE001 - a forked child must report anything and exit
        try:
            os.write(err_w, f"{type(e).__name__}: {e}".encode()[:2000])
        finally:
            os._exit(SETUP_FAILED)


def _init(cfg: dict[str, Any], workdir: str, err_w: int, alive_r: int, res_w: int) -> NoReturn:
    """PID 1 of the new PID namespace: forks the program, reaps everything, reports the program's wait status.

    The program is not PID 1 itself because the kernel shields PID 1 from signals it has no handler for (its
    own SIGSEGV, SIGXCPU, SIGTERM would be ignored). When this process exits, the kernel kills every process
    left in the namespace.
    """
    try:
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        if select.select([alive_r], [], [], 0)[0]:  # the launcher died before PDEATHSIG was armed
            os._exit(SETUP_FAILED)
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001 - a forked child must report anything and exit
        try:
            os.write(err_w, f"{type(e).__name__}: {e}".encode()[:2000])
        finally:
            os._exit(SETUP_FAILED)
    if pid == 0:
        os.close(res_w)
        os.close(alive_r)
        _program(cfg, workdir, err_w)
    os.close(err_w)
    status: int | None = None
    while True:
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if p == pid:
            status = st
            break
    if status is not None:
        os.write(res_w, f"{status}\n".encode())
    os._exit(0)


_WRITABLE = ("/var/tmp", "/run/lock", "/run/shm", "/dev/mqueue")


def _bwrap_argv(cfg: dict[str, Any], seccomp_fd: int, status_fd: int, program_fd: int = -1) -> list[str]:
    """bwrap command line: every namespace, no new user namespaces inside, read-only /, fresh /proc and /dev,
    an empty read-only /tmp holding the size-limited work directory, other writable places emptied."""
    argv = [cfg["bwrap"], "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"]
    argv += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", "65536", "--tmpfs", "/tmp"]
    argv += ["--size", str(cfg["tmpfs_kb"] * 1024), "--perms", "0700", "--tmpfs", "/tmp/work"]
    argv += ["--remount-ro", "/tmp"]
    for d in _WRITABLE:
        if os.path.isdir(d) and not os.path.islink(d):
            argv += ["--size", "4096", "--tmpfs", d, "--remount-ro", d]
    argv += ["--chdir", "/tmp/work", "--json-status-fd", str(status_fd)]
    if seccomp_fd >= 0:
        argv += ["--seccomp", str(seccomp_fd)]
    if program_fd >= 0 and cfg.get("prlimit"):
        # Fast path: bwrap copies the program in, util-linux's prlimit sets the limits, then the program runs.
        lim = cfg["limits"]
        nproc = lim["nproc"] + (_tasks_of_uid(os.getuid()) if os.getuid() != 0 else 0)
        argv += ["--perms", "0600", "--file", str(program_fd), "/tmp/work/" + cfg["script_name"], "--"]
        argv += [
            cfg["prlimit"],
            f"--cpu={lim['cpu_s']}:{lim['cpu_s'] + 1}",
            f"--as={lim['as_bytes']}",
            f"--fsize={lim['fsize_bytes']}",
            "--core=0",
            f"--nofile={lim['nofile']}",
            f"--nproc={nproc}",
            "--",
            cfg["python"],
            *cfg["python_args"],
            cfg["script_name"],
        ]
        return argv
    inner = {k: cfg[k] for k in ("script_name", "python", "python_args", "env", "limits")}
    inner.update(mode="bwrap-inner", program=cfg["program_bytes"].decode("utf-8", "surrogateescape"))
    argv += ["--", cfg["python"], "-I", "-S", "-c", cfg["launcher_source"], json.dumps(inner)]
    return argv


def _run_bwrap(cfg: dict[str, Any], status_fd: int) -> NoReturn:
    """``bwrap`` mode (see the module docstring); the status pipe goes to bwrap's ``--json-status-fd``."""
    if os.getuid() == 0:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(mount)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _expose_interpreter(cfg["python_prefix"], cfg["uid"])
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        if os.getuid() == 0 or os.geteuid() == 0:
            raise SetupError("could not drop root")
    # After the credential change (which clears it); kept across exec: bwrap dies with evalscope.
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    seccomp_fd = -1
    if cfg.get("seccomp"):
        prog = bytes.fromhex(cfg["seccomp"])
        seccomp_fd, w = os.pipe()
        os.write(w, prog)  # a few hundred bytes: fits the pipe buffer
        os.close(w)
        os.set_inheritable(seccomp_fd, True)
    program_fd = -1
    if cfg.get("prlimit"):
        program_fd = os.memfd_create("evalscope-program", 0)  # inheritable: no MFD_CLOEXEC
        os.write(program_fd, cfg["program_bytes"])
        os.lseek(program_fd, 0, os.SEEK_SET)
    argv = _bwrap_argv(cfg, seccomp_fd, status_fd, program_fd)
    # bwrap's own processes can outlive it for a moment; as their subreaper we reap them, so that nothing is left
    # to the machine's init (which may never reap) when we exit.
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(CHILD_SUBREAPER)")
    pid = os.fork()
    if pid == 0:
        try:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
            os.set_inheritable(status_fd, True)
            _lower_priority()  # bwrap and everything it starts
            os.execve(argv[0], argv, cfg["env"])
        except BaseException as e:  # noqa: BLE001 - a forked child must report anything and exit
            _report(status_fd, f"E exec bwrap: {type(e).__name__}: {e}")
        os._exit(SETUP_FAILED)
    os.close(status_fd)
    for fd in (seccomp_fd, program_fd):
        if fd >= 0:
            os.close(fd)
    status: int | None = None
    while True:
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if p == pid:
            status = st
    if status is None:
        os._exit(SETUP_FAILED)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def _bwrap_inner(cfg: dict[str, Any]) -> NoReturn:
    """Inside bwrap: write the program, set the limits, exec."""
    with open(
        os.path.join("/tmp/work", cfg["script_name"]), "w", encoding="utf-8", errors="surrogateescape"
    ) as f:
        f.write(cfg["program"])
    _set_limits(cfg)
    _exec_program(cfg, "/tmp/work")


def main() -> NoReturn:
    cfg = json.loads(sys.argv[1])
    if cfg["mode"] == "bwrap-inner":
        _bwrap_inner(cfg)
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    mode = cfg["mode"]
    try:
        with open(cfg["program_path"], "rb") as f:
            cfg["program_bytes"] = f.read()
        if mode == "plain":
            _set_limits(cfg)
            os.close(status_fd)
            _exec_program(cfg, os.path.dirname(cfg["program_path"]))
        if mode == "bwrap":
            _run_bwrap(cfg, status_fd)
        workdir = _setup_namespaces(cfg)
    except BaseException as e:  # noqa: BLE001 - any setup failure is a sandbox error
        _report(status_fd, f"E {type(e).__name__}: {e}")
        os._exit(SETUP_FAILED)

    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
    res_r, res_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as e:
        _report(status_fd, f"E fork: {e}")
        os._exit(SETUP_FAILED)
    if pid == 0:
        os.close(err_r)
        os.close(alive_w)
        os.close(res_r)
        os.close(status_fd)
        _init(cfg, workdir, err_w, alive_r, res_w)
    os.close(err_w)
    os.close(alive_r)
    os.close(res_w)
    _report(status_fd, f"P {pid}")
    chunks: list[bytes] = []
    while True:
        b = os.read(err_r, 4096)
        if not b:
            break
        chunks.append(b)
    os.waitpid(pid, 0)
    res = os.read(res_r, 4096).decode().strip()
    if chunks:
        _report(status_fd, "E " + b"".join(chunks).decode(errors="replace"))
        os._exit(SETUP_FAILED)
    if not res:  # the namespace's init was killed (timeout)
        os._exit(128 + signal.SIGKILL)
    status = int(res)
    _report(status_fd, f"W {status}")
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else SETUP_FAILED)


if __name__ == "__main__":
    main()

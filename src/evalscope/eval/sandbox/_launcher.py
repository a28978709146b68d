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
4. fork: the child is PID 1 of the new PID namespace, so when it exits (or is killed because this launcher
   died: PDEATHSIG) the kernel kills every process left in the namespace. The child mounts a fresh /proc, sets
   the rlimits, drops to the sandbox uid/gid (root mode), sets no_new_privs and execs the program;
5. this process waits and reports the child's wait status on the status pipe.

``plain`` mode (explicit opt-in only) sets the rlimits and execs the program in the given directory.

Status pipe messages (one line each): ``E <message>`` a setup error (a sandbox error, not the program's fault),
``P <pid>`` the program's pid (PID 1 of the namespace; killing it kills the namespace), ``W <raw wait status>``
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
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
SETUP_FAILED = 121

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


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
    os.close(fd)


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
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={cfg['tmpfs_kb']}k,mode=0755")
    for d in ("/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/run/shm"):
        if os.path.isdir(d) and not os.path.islink(d):
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=0755")
    _expose_interpreter(cfg["python_prefix"], uid)
    work = "/tmp/work"
    os.mkdir(work, 0o700)
    with open(os.path.join(work, cfg["script_name"]), "wb") as f:
        f.write(cfg["program_bytes"])
    if mode == "root":
        os.chown(work, uid, gid)
        os.chown(os.path.join(work, cfg["script_name"]), uid, gid)
    return work


def _set_limits(cfg: dict[str, Any]) -> None:
    lim = cfg["limits"]
    pairs = [
        (resource.RLIMIT_CPU, lim["cpu_s"], lim["cpu_s"] + 1),
        (resource.RLIMIT_AS, lim["as_bytes"], lim["as_bytes"]),
        (resource.RLIMIT_FSIZE, lim["fsize_bytes"], lim["fsize_bytes"]),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
    ]
    if lim.get("nproc") is not None:
        pairs.append((resource.RLIMIT_NPROC, lim["nproc"], lim["nproc"]))
    for which, soft, hard in pairs:
        if soft is None:
            continue
        resource.setrlimit(which, (soft, hard))


def _exec_program(cfg: dict[str, Any], workdir: str) -> NoReturn:
    argv = [cfg["python"], *cfg["python_args"], cfg["script_name"]]
    os.chdir(workdir)
    os.execve(cfg["python"], argv, cfg["env"])


def _child(cfg: dict[str, Any], workdir: str, err_w: int, alive_r: int) -> NoReturn:
    """PID 1 of the new PID namespace (isolated modes)."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _set_limits(cfg)
        if cfg["mode"] == "root":
            os.setgroups([])
            os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
            os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
            if os.getuid() == 0 or os.geteuid() == 0:
                raise SetupError("could not drop root")
        # After the credential change (which clears it): die with the launcher.
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        # The launcher may have died before PDEATHSIG was armed: its end of the pipe would be closed.
        if select.select([alive_r], [], [], 0)[0]:
            os._exit(SETUP_FAILED)
        _exec_program(cfg, workdir)
    except BaseException as e:  # noqa: BLE001 - a forked child must report anything and exit
        try:
            os.write(err_w, f"{type(e).__name__}: {e}".encode()[:2000])
        finally:
            os._exit(SETUP_FAILED)


def main() -> NoReturn:
    cfg = json.loads(sys.argv[1])
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
        workdir = _setup_namespaces(cfg)
    except BaseException as e:  # noqa: BLE001 - any setup failure is a sandbox error
        _report(status_fd, f"E {type(e).__name__}: {e}")
        os._exit(SETUP_FAILED)

    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as e:
        _report(status_fd, f"E fork: {e}")
        os._exit(SETUP_FAILED)
    if pid == 0:
        os.close(err_r)
        os.close(alive_w)
        os.close(status_fd)
        _child(cfg, workdir, err_w, alive_r)
        os._exit(SETUP_FAILED)  # not reached
    os.close(err_w)
    os.close(alive_r)
    _report(status_fd, f"P {pid}")
    chunks: list[bytes] = []
    while True:
        b = os.read(err_r, 4096)
        if not b:
            break
        chunks.append(b)
    _, status = os.waitpid(pid, 0)
    if chunks:
        _report(status_fd, "E " + b"".join(chunks).decode(errors="replace"))
        os._exit(SETUP_FAILED)
    _report(status_fd, f"W {status}")
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else SETUP_FAILED)


if __name__ == "__main__":
    main()

"""A seccomp-BPF filter for sandboxed programs, built here (no libseccomp needed).

The filter returns an error (it never kills) for system calls that untrusted test code has no use for and that
widen the kernel's attack surface or reach outside the sandbox: every socket family except ``AF_UNIX``;
``ptrace`` and ``process_vm_readv/writev``; ``mount`` and the new mount API, ``umount2``, ``pivot_root``,
``chroot``; ``unshare``, ``setns`` and ``clone`` with namespace flags (``clone3`` answers ``ENOSYS`` so that
the C library falls back to ``clone``, whose flags a filter can read); ``keyctl``/``add_key``/``request_key``;
``bpf``, ``perf_event_open``, ``userfaultfd``; module and kexec loading, ``reboot``, ``swapon``/``swapoff``,
``acct``, ``quotactl``, ``personality``, ``iopl``/``ioperm``, ``name_to_handle_at``/``open_by_handle_at``;
and the ``TIOCSTI`` ioctl. Programs of another architecture (e.g. x32 on x86-64) are refused wholesale.

The same bytes are installed by our namespaces launcher (``prctl(PR_SET_SECCOMP)`` right before ``exec``) and
handed to bubblewrap (``--seccomp FD``). Supported: x86-64 and aarch64; elsewhere :func:`build_filter` returns
None and the sandbox runs without the filter (and says so in ``docs/sandbox.md``).
"""

from __future__ import annotations

import errno
import platform
import struct

# BPF instruction classes and fields (linux/filter.h, linux/bpf_common.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_OFF_NR, _OFF_ARCH = 0, 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i  # low 32 bits on little-endian machines


_CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_AF_UNIX = 1
_TIOCSTI = 0x5412

_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "ptrace": 101,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "chroot": 161,
            "swapon": 167,
            "swapoff": 168,
            "reboot": 169,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "bpf": 321,
            "unshare": 272,
            "setns": 308,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "iopl": 172,
            "ioperm": 173,
            "acct": 163,
            "quotactl": 179,
            "personality": 135,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            # handled with argument checks
            "socket": 41,
            "clone": 56,
            "clone3": 435,
            "ioctl": 16,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "ptrace": 117,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "chroot": 51,
            "swapon": 224,
            "swapoff": 225,
            "reboot": 142,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "bpf": 280,
            "unshare": 97,
            "setns": 268,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "acct": 89,
            "quotactl": 60,
            "personality": 92,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "socket": 198,
            "clone": 220,
            "clone3": 435,
            "ioctl": 29,
        },
    ),
}
_ARG_CHECKED = ("socket", "clone", "clone3", "ioctl")
#: The names of the system calls refused outright (for docs and tests).
DENIED: tuple[str, ...] = tuple(n for n in _ARCHES["x86_64"][1] if n not in _ARG_CHECKED)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The filter as an array of ``struct sock_filter`` (8 bytes each), or None on an unsupported machine."""
    arch = _ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    audit_arch, nr = arch
    eperm = _ins(_RET_K, _RET_ERRNO | errno.EPERM)
    allow = _ins(_RET_K, _RET_ALLOW)
    prog = [
        _ins(_LD_W_ABS, _OFF_ARCH),
        _ins(_JEQ_K, audit_arch, jt=1),
        _ins(_RET_K, _RET_KILL_PROCESS),
        _ins(_LD_W_ABS, _OFF_NR),
    ]
    if audit_arch == 0xC000003E:  # x32 system calls have bit 30 set
        prog += [_ins(_JGE_K, 0x40000000, jf=1), eperm]
    for name in DENIED:
        if name in nr:
            prog += [_ins(_JEQ_K, nr[name], jf=1), eperm]
    prog += [  # socket(domain, ...): AF_UNIX only
        _ins(_JEQ_K, nr["socket"], jf=4),
        _ins(_LD_W_ABS, _arg_lo(0)),
        _ins(_JEQ_K, _AF_UNIX, jt=1),
        _ins(_RET_K, _RET_ERRNO | errno.EAFNOSUPPORT),
        allow,
    ]
    prog += [  # clone(flags, ...): no new namespaces
        _ins(_JEQ_K, nr["clone"], jf=4),
        _ins(_LD_W_ABS, _arg_lo(0)),
        _ins(_JSET_K, _CLONE_NS_FLAGS, jf=1),
        eperm,
        allow,
    ]
    prog += [_ins(_JEQ_K, nr["clone3"], jf=1), _ins(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    prog += [  # ioctl(fd, TIOCSTI, ...): no typing into a terminal
        _ins(_JEQ_K, nr["ioctl"], jf=4),
        _ins(_LD_W_ABS, _arg_lo(1)),
        _ins(_JEQ_K, _TIOCSTI, jf=1),
        eperm,
        allow,
    ]
    prog.append(allow)
    return b"".join(prog)

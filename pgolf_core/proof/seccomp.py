"""A seccomp filter that closes the channels Landlock leaves open to a decoder: sockets of every
family (UDP and named UNIX sockets included), System V shared memory, semaphores and message queues,
POSIX message queues, reading or writing other processes' memory, io_uring (which would bypass the
filter), and installing signal handlers (so that an outside process cannot signal bits in).

The denied calls fail with EPERM; nothing else changes. Only x86_64 and aarch64 are known: on
another machine ``install`` says so and installs nothing.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# name -> syscall number, per machine (from the kernel's syscall tables)
_SYSCALLS = {
    "x86_64": {"socket": 41, "shmget": 29, "shmat": 30, "semget": 64, "msgget": 68, "ptrace": 101,
               "mq_open": 240, "process_vm_readv": 310, "process_vm_writev": 311, "io_uring_setup": 425,
               "pidfd_getfd": 438, "rt_sigaction": 13, "signalfd": 282, "signalfd4": 289},
    "aarch64": {"socket": 198, "shmget": 194, "shmat": 196, "semget": 190, "msgget": 186, "ptrace": 117,
                "mq_open": 180, "process_vm_readv": 270, "process_vm_writev": 271, "io_uring_setup": 425,
                "pidfd_getfd": 438, "rt_sigaction": 134, "signalfd4": 74},
}
_RET_ALLOW, _RET_ERRNO = 0x7FFF0000, 0x00050000
_LD_W_ABS, _JEQ_K, _RET_K = 0x20, 0x15, 0x06
_OFF_NR, _OFF_ARCH = 0, 4


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def denied_calls() -> list:
    """The calls the filter denies on this machine (empty where the machine is not known)."""
    return sorted(_SYSCALLS.get(platform.machine(), {}))


def install() -> list:
    """Install the filter on the calling process for good; returns the names of the denied calls.
    Raises OSError when the kernel refuses it or the machine is not known."""
    machine = platform.machine()
    if machine not in _SYSCALLS or platform.system() != "Linux":
        raise OSError(errno.ENOSYS, f"no seccomp syscall table for {platform.system()} {machine}")
    nrs = _SYSCALLS[machine]
    prog = [_insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
            _insn(_JEQ_K, 1, 0, _AUDIT_ARCH[machine]),
            _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM),  # another ABI (e.g. x32): deny everything
            _insn(_LD_W_ABS, 0, 0, _OFF_NR)]
    for nr in nrs.values():
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)]
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    buf = ctypes.create_string_buffer(b"".join(prog))
    fprog = _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {__import__('os').strerror(err)}")
    return sorted(nrs)

"""Landlock, the Linux security module that lets an unprivileged process confine itself, through ctypes.

Only what the sandboxed decoder needs: the ABI version, a ruleset that allows reading or writing
beneath given paths (everything else of the file system denied), TCP bind/connect denied (ABI 4),
and the scopes that cut abstract UNIX sockets and signals to processes outside the domain (ABI 6).
Rights a kernel does not know are left out of the ruleset, and ``Confinement`` records what was
actually enforced so that the verdict can say it. Syscall numbers are those of the generic table
(the same on x86_64 and aarch64).
"""

from __future__ import annotations

import ctypes
import os
import platform
from dataclasses import dataclass, field

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

# File-system rights, by the ABI that introduced them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

READ = READ_FILE | READ_DIR
WRITE = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG  # + REFER, TRUNCATE where known
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may carry


class LandlockError(OSError):
    """Landlock is missing, disabled, or refused a rule."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> int:
    """The kernel's Landlock ABI (0: not available: not Linux, too old, or the LSM is disabled)."""
    if platform.system() != "Linux":
        return 0
    libc = _libc()
    r = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
                     ctypes.c_uint32(CREATE_RULESET_VERSION))
    return int(r) if r > 0 else 0


def handled_fs(abi: int) -> int:
    """Every file-system right the ABI knows: a right not handled would be left allowed."""
    mask = 0
    for since, bits in _FS_BY_ABI.items():
        if abi >= since:
            mask |= bits
    return mask


@dataclass
class Confinement:
    """What a ``restrict`` call enforced, for the verdict."""

    abi: int
    fs_rules: int = 0
    net: bool = False  # TCP bind/connect denied
    scopes: list = field(default_factory=list)  # "abstract-unix-socket", "signal"

    def to_dict(self) -> dict:
        return {"mechanism": "landlock", "abi": self.abi, "fs_rules": self.fs_rules, "tcp_denied": self.net,
                "scopes": list(self.scopes)}


def restrict(read: list, write: list, listing: list = (), abi: int | None = None) -> Confinement:
    """Confine the calling process (and its future children) for good: read (and list) only beneath
    the paths of ``read``, only list the folders beneath ``listing``, read and write beneath those of
    ``write``; no TCP, no abstract sockets or signals beyond the domain. Paths that do not exist are
    skipped. Raises ``LandlockError``."""
    abi = abi_version() if abi is None else abi
    if abi < 1:
        raise LandlockError("Landlock is not available on this kernel")
    libc = _libc()
    fs_mask = handled_fs(abi)
    attr = _RulesetAttr(fs_mask, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)  # the struct grew with the ABI
    fd = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise LandlockError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    out = Confinement(abi, net=abi >= 4,
                      scopes=["abstract-unix-socket", "signal"] if abi >= 6 else [])
    write_rights = (WRITE | READ | (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0)) & fs_mask
    try:
        for paths, rights in ((listing, READ_DIR), (read, READ & fs_mask), (write, write_rights)):
            for p in paths:
                out.fs_rules += _add_path(libc, fd, p, rights)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise LandlockError(ctypes.get_errno(), f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
    return out


def _add_path(libc, ruleset_fd: int, path, rights: int) -> int:
    """Allow ``rights`` beneath ``path`` (only the file rights for a file); 0 when it does not exist."""
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
            if not rights:
                return 0  # listing rights mean nothing for a file
        attr = _PathBeneathAttr(rights, pfd)
        if libc.syscall(ctypes.c_long(SYS_ADD_RULE), ctypes.c_int(ruleset_fd), ctypes.c_int(RULE_PATH_BENEATH),
                        ctypes.byref(attr), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
    finally:
        os.close(pfd)
    return 1

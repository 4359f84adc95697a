"""crio's RuntimeDefault seccomp profile, as data in the containers seccomp.json format.

The allow-list follows the default profile of containers/common (what CRI-O, podman and buildah use), with
CRI-O's change: ``clone``, ``clone3`` and ``unshare`` may create namespaces only with CAP_SYS_ADMIN. Without
it ``clone``/``unshare`` are allowed when their flags hold no ``CLONE_NEW*`` bit and ``clone3`` (whose flags
sit behind a pointer seccomp cannot read) answers ENOSYS, so the C library falls back to ``clone``. Anything
not listed fails with ENOSYS; a few obsolete or dangerous calls fail with EPERM. Rules with ``includes`` or
``excludes`` apply by the container's bounding capabilities and the host architecture (see
:mod:`crio.plugins.seccomp.profile`).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import Any

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_NETLINK = 16
NETLINK_AUDIT = 9
S390 = ("s390", "s390x")

FILES = (
    "_llseek",
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "flock",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "lchown",
    "lchown32",
    "link",
    "linkat",
    "lseek",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "name_to_handle_at",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readdir",
    "readlink",
    "readlinkat",
    "readv",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "write",
    "writev",
)
XATTRS = (
    "fgetxattr",
    "flistxattr",
    "fremovexattr",
    "fsetxattr",
    "getxattr",
    "lgetxattr",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lsetxattr",
    "removexattr",
    "setxattr",
)
EVENTS = (
    "_newselect",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "fanotify_mark",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_setup",
    "io_submit",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "signalfd",
    "signalfd4",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
)
MEMORY = (
    "brk",
    "madvise",
    "memfd_create",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
)
PROCESSES = (
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "futex",
    "futex_time64",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrlimit",
    "getrusage",
    "getsid",
    "gettid",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "prlimit64",
    "restart_syscall",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setpgid",
    "setpriority",
    "setrlimit",
    "setsid",
    "tgkill",
    "times",
    "tkill",
    "ugetrlimit",
    "vfork",
    "wait4",
    "waitid",
    "waitpid",
)
CREDENTIALS = (
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getuid",
    "getuid32",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setuid",
    "setuid32",
)
SIGNALS = (
    "alarm",
    "pause",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaltstack",
    "sigreturn",
)
TIME = (
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "getitimer",
    "gettimeofday",
    "nanosleep",
    "setitimer",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
)
NETWORK = (
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
)
IPC = (
    "ipc",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
)
SYSTEM = ("getrandom", "ioctl", "keyctl", "reboot", "sysinfo", "syslog", "uname")
# The kernel itself asks for CAP_SYS_ADMIN here; they stay allowed for containers that have it.
MOUNTS = (
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "move_mount",
    "open_tree",
    "pivot_root",
    "umount",
    "umount2",
)
_GROUPS = (FILES, XATTRS, EVENTS, MEMORY, PROCESSES, CREDENTIALS, SIGNALS, TIME, NETWORK, IPC, SYSTEM, MOUNTS)
# Allowed whatever the capabilities (beyond clone, clone3, unshare and socket, which have rules of their own).
ALLOWED = tuple(sorted({name for group in _GROUPS for name in group}))

# Obsolete, host-wide or exploit-prone calls: EPERM whatever the capabilities.
DENIED = (
    "bdflush",
    "io_pgetevents",
    "kexec_file_load",
    "kexec_load",
    "membarrier",
    "migrate_pages",
    "move_pages",
    "nfsservctl",
    "nice",
    "oldfstat",
    "oldlstat",
    "oldolduname",
    "oldstat",
    "olduname",
    "pciconfig_iobase",
    "pciconfig_read",
    "pciconfig_write",
    "sgetmask",
    "ssetmask",
    "swapcontext",
    "swapoff",
    "swapon",
    "sysfs",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
    "vmsplice",
)

# Allowed with the capability in the bounding set, EPERM without it.
BY_CAPABILITY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at",)),
    (
        "CAP_SYS_ADMIN",
        (
            "bpf",
            "fanotify_init",
            "lookup_dcookie",
            "perf_event_open",
            "quotactl",
            "setdomainname",
            "sethostname",
            "setns",
        ),
    ),
    ("CAP_SYS_CHROOT", ("chroot",)),
    ("CAP_SYS_MODULE", ("delete_module", "finit_module", "init_module", "query_module")),
    ("CAP_SYS_NICE", ("get_mempolicy", "mbind", "set_mempolicy")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_SYS_PTRACE", ("kcmp", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace")),
    ("CAP_SYS_RAWIO", ("ioperm", "iopl")),
    ("CAP_SYS_TIME", ("clock_settime", "clock_settime64", "settimeofday", "stime")),
    ("CAP_SYS_TTY_CONFIG", ("vhangup",)),
)

# Architecture-specific calls, by Go architecture name.
BY_ARCHITECTURE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("amd64", "x32"), ("arch_prctl",)),
    (("amd64", "x32", "x86"), ("modify_ldt",)),
    (
        ("arm", "arm64"),
        (
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "breakpoint",
            "cacheflush",
            "set_tls",
            "sync_file_range2",
        ),
    ),
    (("ppc64le",), ("sync_file_range2",)),
    (S390, ("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr")),
)

# personality(2) values that only select the Linux personality (with or without the 32-bit address
# flags) or query the current one (0xffffffff).
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

ARCH_MAP = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    ("SCMP_ARCH_MIPS64N32", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64")),
    ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    ("SCMP_ARCH_MIPSEL64N32", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64")),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
)


def _rule(names: Iterable[str], action: str = ALLOW, **extra: Any) -> dict[str, Any]:
    return {"names": list(names), "action": action, **extra}


def _no_namespace_flags(index: int) -> list[dict[str, Any]]:
    """The argument at ``index`` has no CLONE_NEW* bit set."""
    return [{"index": index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]


def _namespace_rules() -> list[dict[str, Any]]:
    admin = {"caps": ["CAP_SYS_ADMIN"]}
    return [
        # clone's flags are its first argument, except on s390 where they are the second.
        _rule(["clone"], args=_no_namespace_flags(0), excludes={**admin, "arches": list(S390)}),
        _rule(["clone"], args=_no_namespace_flags(1), includes={"arches": list(S390)}, excludes=admin),
        _rule(["clone3"], ERRNO, errnoRet=errno.ENOSYS, excludes=admin),
        _rule(["unshare"], args=_no_namespace_flags(0), excludes=admin),
        _rule(["clone", "clone3", "unshare"], includes=admin),
    ]


def _socket_rules() -> list[dict[str, Any]]:
    """Audit netlink sockets need CAP_AUDIT_WRITE (EINVAL without it); every other socket is fine."""
    audit = {"caps": ["CAP_AUDIT_WRITE"]}
    audit_protocol = {"index": 2, "value": NETLINK_AUDIT, "op": "SCMP_CMP_EQ"}
    return [
        _rule(
            ["socket"],
            ERRNO,
            errnoRet=errno.EINVAL,
            args=[{"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_EQ"}, audit_protocol],
            excludes=audit,
        ),
        _rule(["socket"], args=[{**audit_protocol, "op": "SCMP_CMP_NE"}], excludes=audit),
        _rule(["socket"], args=[{"index": 0, "value": AF_NETLINK, "op": "SCMP_CMP_NE"}], excludes=audit),
        _rule(["socket"], includes=audit),
    ]


def default_profile() -> dict[str, Any]:
    """A fresh copy of the RuntimeDefault profile (containers seccomp.json format)."""
    syscalls: list[dict[str, Any]] = [
        _rule(DENIED, ERRNO, errnoRet=errno.EPERM),
        _rule(ALLOWED),
        *(
            _rule(["personality"], args=[{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}])
            for value in PERSONALITIES
        ),
        *(_rule(names, includes={"arches": list(arches)}) for arches, names in BY_ARCHITECTURE),
    ]
    for cap, names in BY_CAPABILITY:
        syscalls.append(_rule(names, includes={"caps": [cap]}))
        syscalls.append(_rule(names, ERRNO, errnoRet=errno.EPERM, excludes={"caps": [cap]}))
    syscalls += _namespace_rules()
    syscalls += _socket_rules()
    return {
        "defaultAction": ERRNO,
        "defaultErrnoRet": errno.ENOSYS,
        "archMap": [{"architecture": arch, "subArchitectures": list(subs)} for arch, subs in ARCH_MAP],
        "syscalls": syscalls,
    }

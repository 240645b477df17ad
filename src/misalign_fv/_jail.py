"""The first code every sandboxed process runs (``python -I -S -c "<this file>; jail(<config>)"``).

Standard library only, no package imports and nothing slow to import (it runs in a bare
interpreter that sees none of the project, once per sandboxed call).  :mod:`misalign_fv.isolation`
builds the command and appends ``jail(<config>)`` with the config as a Python literal::

    level     "userns+pidns+mountns+netns" (namespaces) or "rlimits-only"
    caller    pid of the process that starts this one (a different parent means it already died)
    ro        absolute paths (directories or files) visible read-only inside; nothing else is
    links     {path: target} symlinks to recreate in the new root (merged-/usr systems: /bin -> usr/bin)
    scratch_mb  size of the private writable tmpfs at /tmp (the only writable place)
    cwd       working directory inside (default /tmp)
    limits    {RLIMIT_NAME: value}
    exec      argv to exec once jailed, or null to return to the rest of the ``-c`` script

With namespaces the process unshares user, pid, mount, network, IPC and UTS namespaces (root
first becomes ``nobody``, so that the process limit binds), forks, and the child (pid 1 of the new
pid namespace, killed if this process dies) builds a new root from read-only bind mounts, a
private tmpfs at /tmp, a few device nodes and a fresh /proc, chroots into it and drops every
capability; this process only waits and exits with the child's status.  When pid 1 exits the
kernel kills everything left in its namespace.
"""

import os
import resource

import _signal  # not signal: that imports enum, which costs more than the rest of the jail

NAMESPACES = "userns+pidns+mountns+netns"
NOBODY = 65534
STAGE = "/tmp"  # where the new root is assembled, inside the private mount namespace
DEVICES = ("null", "zero", "full", "random", "urandom")

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38

ctypes = _libc = None  # the module and the C library, loaded when namespaces are used


def _ok(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"sandbox: {what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [None if s is None else s.encode() for s in (src, dst, fstype, data)]
    _ok(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {dst}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _become_nobody() -> None:
    """Root -> nobody (RLIMIT_NPROC does not bind root); nobody is mapped to root inside the namespaces."""
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    _ok(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")  # else /proc/self/*_map stay root's


def _enter_namespaces(caller: int, uid: int, gid: int) -> None:
    """Unshare, map ``uid``/``gid`` to root inside, fork; only the child (pid 1 of the new pid namespace) returns."""
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    _ok(_libc.unshare(flags), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")
    _ok(_libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if os.getppid() != caller:
        os._exit(125)
    child = os.fork()
    if child == 0:
        _ok(_libc.prctl(PR_SET_PDEATHSIG, _signal.SIGKILL, 0, 0, 0), "pdeathsig")
        return
    os.close(0)
    os.close(1)
    os.close(2)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        _signal.signal(sig, _signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _unescape(field: str) -> str:
    """A path as /proc/self/mountinfo writes it (space, tab, newline, backslash as octal escapes)."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def _remount_read_only(top: str) -> None:
    """Remount ``top`` and every mount below it read-only, nosuid, nodev, keeping locked atime/noexec flags."""
    with open("/proc/self/mountinfo") as f:
        mounts = [(_unescape(line.split()[4]), line.split()[5].split(",")) for line in f]
    for point, opts in mounts:
        if point != top and not point.startswith(top + "/"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
        flags |= MS_NOEXEC if "noexec" in opts else 0
        flags |= MS_NODIRATIME if "nodiratime" in opts else 0
        if "noatime" in opts:
            flags |= MS_NOATIME
        elif "relatime" in opts:
            flags |= MS_RELATIME
        else:
            flags |= MS_STRICTATIME
        _mount(None, point, None, flags)


def _assemble(ro: list[str], links: dict[str, str], scratch_mb: int) -> None:
    """Build the new root at STAGE (in this process's own mount namespace): /tmp, read-only binds, /dev."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    sources = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in ro}  # before STAGE may hide one
    _mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    os.makedirs(STAGE + "/tmp")  # first, so that read-only paths under /tmp stay visible inside it
    _mount("tmpfs", STAGE + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={scratch_mb}m")
    for path, fd in sorted(sources.items()):
        target = STAGE + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        _remount_read_only(target)
        os.close(fd)
    for path, dest in links.items():
        if not os.path.lexists(STAGE + path):
            os.symlink(dest, STAGE + path)
    os.makedirs(STAGE + "/dev", exist_ok=True)
    for name in DEVICES:
        os.close(os.open(f"{STAGE}/dev/{name}", os.O_CREAT | os.O_WRONLY, 0o644))
        _mount(f"/dev/{name}", f"{STAGE}/dev/{name}", None, MS_BIND)
    for name, dest in (("fd", "/proc/self/fd"), ("stdin", "fd/0"), ("stdout", "fd/1"), ("stderr", "fd/2")):
        os.symlink(dest, f"{STAGE}/dev/{name}")
    os.makedirs(STAGE + "/proc", exist_ok=True)


def _enter_root() -> None:
    """Chroot into the assembled root, make it read-only and mount a fresh /proc."""
    os.chroot(STAGE)  # no capability is left to leave it (CAP_SYS_CHROOT) once privileges are dropped
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass  # a masked host /proc forbids a new one: then the sandbox has none, which is stricter


def _drop_privileges() -> None:
    """No capability now or after any exec; no privilege gain through set-uid files."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    _ok(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable (x2): all empty
    _ok(_libc.capset(header, data), "capset")


def jail(config: dict) -> None:
    """Isolate this process as ``config`` says, then exec ``config['exec']`` or return."""
    if config["level"] == NAMESPACES:
        global ctypes, _libc
        import ctypes  # only here: the fallback level makes no system call of its own

        _libc = ctypes.CDLL(None, use_errno=True)
        root = os.getuid() == 0
        if root:  # assemble as root, who can read every source, in a private mount namespace; then be nobody
            _ok(_libc.unshare(CLONE_NEWNS), "unshare")
            _assemble(config["ro"], config["links"], int(config["scratch_mb"]))
            _become_nobody()
        _enter_namespaces(int(config["caller"]), os.getuid(), os.getgid())
        if not root:
            _assemble(config["ro"], config["links"], int(config["scratch_mb"]))
        _enter_root()
        _drop_privileges()
        os.chdir(config.get("cwd") or "/tmp")
    elif config.get("cwd"):
        os.chdir(config["cwd"])
    for name, value in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if config.get("exec"):
        os.execvp(config["exec"][0], config["exec"])


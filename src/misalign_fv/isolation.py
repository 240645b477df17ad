"""OS isolation for untrusted code: the command that starts a program inside the sandbox, and its level.

Every untrusted process (a Python candidate, a Lean REPL) starts as ``python -I -S -c <jail>``
(:mod:`misalign_fv._jail`): a bare base interpreter that isolates itself, then
either execs ``argv`` or goes on with Python code appended to the jail.  The level is probed
once per process (:func:`isolation_level`) and is one of

* ``userns+pidns+mountns+netns``: new user, pid, mount, network, IPC and UTS namespaces; a root
  file system of read-only bind mounts of the interpreter (and of the paths the caller names),
  a private size-limited tmpfs at /tmp as the only writable place, a fresh /proc that shows only
  the sandbox, no network at all, no capabilities, a process limit (RLIMIT_NPROC counts the
  sandbox's own user namespace only; root callers run it as ``nobody`` for the limit to bind),
  and everything killed with the pid namespace when its first process exits or its parent dies;
* ``rlimits-only``: the fallback where user namespaces are unavailable (a warning says so):
  resource limits, a fresh working directory and the caller's process-group kill only; the
  child then runs as the calling user and can read what that user can read.

``MISALIGN_FV_ISOLATION=rlimits-only`` forces the fallback (for tests and debugging).
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NAMESPACES = "userns+pidns+mountns+netns"
RLIMITS_ONLY = "rlimits-only"
LEVELS = (NAMESPACES, RLIMITS_ONLY)
FORCE_ENV = "MISALIGN_FV_ISOLATION"

# System directories every sandbox sees read-only (those that exist; symlinks are recreated as links).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

JAIL_SOURCE = (Path(__file__).with_name("_jail.py")).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Limits:
    """Per-process resource limits (None: not limited) and the size of the private /tmp."""

    memory_mb: int | None = 1024
    cpu_s: int | None = None
    nproc: int = 32
    file_size_bytes: int = 16 << 20
    scratch_mb: int = 64

    def rlimits(self) -> dict[str, int]:
        """``{RLIMIT_NAME: value}`` as the jail sets them (soft = hard)."""
        limits = {"RLIMIT_FSIZE": self.file_size_bytes, "RLIMIT_CORE": 0, "RLIMIT_NPROC": self.nproc}
        if self.memory_mb is not None:
            limits["RLIMIT_AS"] = self.memory_mb << 20
        if self.cpu_s is not None:
            limits["RLIMIT_CPU"] = self.cpu_s
        return limits


def interpreter() -> str:
    """The base Python interpreter (outside any virtual environment) that runs the jail."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _visible(readable: Sequence[str | os.PathLike[str]]) -> tuple[list[str], dict[str, str]]:
    """Read-only bind sources (real paths, none inside another) and top-level symlinks to recreate."""
    links: dict[str, str] = {}
    paths = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            links[path] = os.readlink(path)
        elif os.path.exists(path):
            paths.append(path)
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    paths += [*prefixes, os.path.dirname(interpreter()), *(os.path.realpath(p) for p in readable)]
    kept: list[str] = []
    for path in sorted(set(paths)):
        if os.path.exists(path) and not any(path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept, links


def command(
    limits: Limits,
    *,
    level: str | None = None,
    readable: Sequence[str | os.PathLike[str]] = (),
    cwd: str | None = None,
    argv: Sequence[str] = (),
    python_tail: str = "",
) -> list[str]:
    """The command that runs ``argv`` (or, when empty, the Python code ``python_tail``) in the sandbox.

    ``readable``: extra paths visible read-only (e.g. a toolchain); ``cwd``: the working
    directory inside (default: the private /tmp; with ``rlimits-only`` a host directory the
    caller created).  Start it with ``close_fds=True`` and without ``preexec_fn``; the jail
    checks that its parent is this process.
    """
    level = level or isolation_level()
    ro, links = _visible(readable)
    config = {
        "level": level,
        "caller": os.getpid(),
        "ro": ro,
        "links": links,
        "scratch_mb": limits.scratch_mb,
        "cwd": cwd,
        "limits": limits.rlimits(),
        "exec": list(argv) or None,
    }
    return [interpreter(), "-I", "-S", "-c", f"{JAIL_SOURCE}\njail({config!r})\n{python_tail}"]


def _works(level: str) -> str | None:
    """None when a sandbox of ``level`` starts and runs Python here, else why not."""
    probe = "import os\nprint('ok', os.getpid(), flush=True)\n"
    try:
        done = subprocess.run(
            command(Limits(), level=level, python_tail=probe),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            env={"PATH": os.defpath},
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    expected = "ok 1" if level == NAMESPACES else "ok"  # the sandbox is pid 1 of its own pid namespace
    if done.returncode == 0 and done.stdout.decode().startswith(expected):
        return None
    return (done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"])[-1]


@functools.cache
def isolation_level() -> str:
    """The strongest isolation that works on this machine, probed once per process; warns on fallback."""
    forced = os.environ.get(FORCE_ENV)
    if forced:
        if forced not in LEVELS:
            raise ValueError(f"{FORCE_ENV}={forced!r}: expected one of {', '.join(LEVELS)}")
        if forced != NAMESPACES:
            warnings.warn(f"sandbox isolation forced to {forced} by {FORCE_ENV}", RuntimeWarning, stacklevel=2)
        return forced
    why = _works(NAMESPACES)
    if why is None:
        return NAMESPACES
    message = (
        f"sandbox: user namespaces unavailable ({why}); untrusted code runs with {RLIMITS_ONLY} isolation: "
        "it can read what this user can read and signal this user's processes"
    )
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    log.warning(message)
    return RLIMITS_ONLY


def minimal_env(home: str) -> Mapping[str, str]:
    """The environment of a sandboxed Python program: nothing inherited from the caller."""
    return {"PATH": os.defpath, "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

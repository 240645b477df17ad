"""Start and stop a one-node Slurm cluster on loopback; read what Slurm recorded about jobs.

Every daemon (munged, mariadbd, slurmdbd, slurmctld, slurmd) runs in the foreground as a child
of the test process, with its config, state, sockets and logs under one directory and its
ports picked free at start, so two sessions on one machine do not meet and nothing is left
behind: :meth:`SlurmCluster.stop` cancels the jobs, stops the daemons and ends any process
still carrying this cluster's ``SLURM_CONF``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
INSTALL = HERE / "install.sh"
CLUSTER = "rivanna"
NODE = "udc-an37-1"
ACCOUNT = "fvlab"
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
PARTITION_MAX_MINUTES = {"standard": 7 * 24 * 60, "gpu": 3 * 24 * 60}  # MaxTime in slurm.conf.in, as on Rivanna
BINARIES = (
    "munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd",
    "sbatch", "srun", "sacct", "sacctmgr", "scontrol", "sinfo", "squeue", "scancel",
)  # fmt: skip
# What `sacct` reports per job (the allocation, not its steps).
SACCT_FIELDS = ("JobIDRaw", "JobName", "Partition", "Account", "State", "TimelimitRaw", "ReqTRES", "Constraints", "Comment")


class ClusterError(RuntimeError):
    """A daemon of the loopback cluster failed to start (the message carries its log tail)."""


def missing_binaries() -> list[str]:
    """Slurm, munge and MariaDB programs not on PATH."""
    return [b for b in BINARIES if shutil.which(b) is None]


def install_packages() -> str | None:
    """Install the Debian packages if any program is missing; the reason it failed, or None."""
    if not missing_binaries():
        return None
    proc = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return f"Slurm packages could not be installed by tests/slurm/{INSTALL.name}: {last[0]}"
    still = missing_binaries()
    if still:
        return f"Slurm packages installed by tests/slurm/{INSTALL.name}, but not on PATH: {', '.join(still)}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In a daemon's child process: get SIGTERM when the test process dies (even by SIGKILL)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class SlurmCluster:
    """The loopback cluster rooted at ``root``; :meth:`start` it, :meth:`stop` it."""

    def __init__(self, root: Path) -> None:
        """Lay out directories and pick ports; nothing runs until :meth:`start`."""
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.ports = {k: free_port() for k in ("ctld_port", "slurmd_port", "dbd_port", "db_port")}
        self.conf = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "run" / "munge.socket"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm clients (and Snakemake) talking to this cluster.

        ``PATH`` starts with a ``srun`` that sets ``SLURM_CONF``: the jobstep executor strips
        ``SLURM_*`` variables before its nested ``srun``, which on a real cluster then reads
        /etc/slurm/slurm.conf; this cluster's config lives elsewhere.
        """
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}"}

    def log(self, name: str) -> Path:
        """The log file of daemon ``name``."""
        return self.root / "log" / f"{name}.log"

    # --- start ------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        """Bring up munged, MariaDB, slurmdbd (with the account), slurmctld and slurmd."""
        for d in ("bin", "etc", "run", "log", "state", "spool", "dev", "db", "munge"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        srun = self.root / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {shutil.which("srun")} "$@"\n')
        srun.chmod(0o755)
        for i in range(4):
            (self.root / "dev" / f"nvidia{i}").touch()
        self._render()
        deadline = time.monotonic() + timeout

        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn("munged", ["munged", "-F", "-f", f"--socket={self.munge_socket}", f"--key-file={key}",
                               f"--log-file={self.log('munged')}", f"--pid-file={self.root / 'run' / 'munged.pid'}",
                               f"--seed-file={self.root / 'munge' / 'seed'}"])  # fmt: skip
        self._wait("munged", self.munge_socket.exists, deadline)

        db = self.root / "db"
        with self.log("mariadb-install").open("w") as out:
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={db}", "--user=root", "--skip-test-db",
                 "--auth-root-authentication-method=normal"],
                check=True, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._spawn("mariadbd", ["mariadbd", "--no-defaults", f"--datadir={db}", "--user=root", "--skip-grant-tables",
                                 f"--port={self.ports['db_port']}", "--bind-address=127.0.0.1",
                                 f"--socket={self.root / 'run' / 'mysqld.sock'}", "--skip-name-resolve",
                                 "--innodb-buffer-pool-size=64M", f"--log-error={self.log('mariadbd')}",
                                 f"--pid-file={self.root / 'run' / 'mariadbd.pid'}"])  # fmt: skip
        self._wait("mariadbd", lambda: _port_open(self.ports["db_port"]), deadline)

        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait("slurmdbd", lambda: _port_open(self.ports["dbd_port"]), deadline)
        self._wait("slurmdbd", lambda: self._ok(["sacctmgr", "-n", "list", "cluster"]), deadline)
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER)
        self.run("sacctmgr", "-i", "add", "account", ACCOUNT, f"Cluster={CLUSTER}", "Description=test allocation",
                 "Organization=uva")  # fmt: skip
        self.run("sacctmgr", "-i", "add", "user", "root", f"Account={ACCOUNT}", f"Cluster={CLUSTER}")

        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait("slurmctld", lambda: "UP" in self._out(["scontrol", "ping"]), deadline)
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE])
        self._wait("slurmd", lambda: self._out(["sinfo", "-h", "-n", NODE, "-o", "%t"]).strip() == "idle", deadline)

    def _render(self) -> None:
        values = {**self.ports, "root": self.root, "host": self.host, "node": NODE, "cluster": CLUSTER,
                  "munge_socket": self.munge_socket}  # fmt: skip
        for name in ("slurm.conf", "slurmdbd.conf", "gres.conf"):
            out = self.root / "etc" / name
            out.write_text(Template((HERE / f"{name}.in").read_text()).substitute(values))
            out.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> None:
        with (self.root / "log" / f"{name}.stdout").open("wb") as out:
            self._procs[name] = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip

    def _wait(self, name: str, ready: Callable[[], bool], deadline: float) -> None:
        proc = self._procs[name]
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else "did not become ready"
                raise ClusterError(f"{name} {why}; log tail:\n{self._tail(name)}")
            time.sleep(0.2)

    def _tail(self, name: str) -> str:
        lines: list[str] = []
        for f in (self.log(name), self.root / "log" / f"{name}.stdout"):
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(lines)

    def _ok(self, argv: list[str]) -> bool:
        return subprocess.run(argv, env=self.env, capture_output=True).returncode == 0

    def _out(self, argv: list[str]) -> str:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True).stdout

    # --- use --------------------------------------------------------------------------------
    def run(self, *argv: str) -> str:
        """Run a Slurm client command against this cluster; its stdout (raises on failure)."""
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job (allocation) slurmdbd has recorded, oldest first, as ``sacct`` fields."""
        out = self.run("sacct", "-a", "-X", "-n", "-P", "-S", "2000-01-01", f"--format={','.join(SACCT_FIELDS)}")
        rows = [dict(zip(SACCT_FIELDS, line.split("|", len(SACCT_FIELDS) - 1))) for line in out.splitlines() if line]
        return sorted(rows, key=lambda r: int(r["JobIDRaw"]))

    def show_job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` of one job as key -> value (as slurmctld holds it)."""
        out = self.run("scontrol", "-o", "show", "job", job_id)
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def job_pids(self, job_id: str) -> list[int]:
        """Processes of a running job on the node (``scontrol listpids``)."""
        out = self.run("scontrol", "listpids", job_id)
        return [int(line.split()[0]) for line in out.splitlines()[1:] if line.split() and line.split()[0].isdigit()]

    # --- stop -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first), end stray job processes, drop the database."""
        ctld = self._procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            subprocess.run(["scancel", "--full", "--partition=standard,gpu"], env=self.env, capture_output=True)
            deadline = time.monotonic() + 30
            while self._out(["squeue", "-h", "-o", "%i"]).strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        for proc in reversed(self._procs.values()):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        for pid in self.stray_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root / "db", ignore_errors=True)  # ~100 MB of MariaDB files; the logs stay

    def stray_pids(self) -> list[int]:
        """Processes (job steps, slurmstepd) still running with this cluster's ``SLURM_CONF``."""
        mark = f"SLURM_CONF={self.conf}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if mark in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids

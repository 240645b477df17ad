"""The Lean toolchain on disk: ``setup_lean`` installs it, :func:`load_setup` opens it offline.

Everything lives under ``resources/lean/`` (git-ignored by a ``.gitignore`` written there):
``elan/`` (elan and the pinned toolchain, ``ELAN_HOME``), ``mathlib4/`` (the pinned Mathlib
checkout, built; its ``lean-toolchain`` decides the Lean version, which must equal
``lean.toolchain``), ``repl/`` (lean-interact's REPL fork, built for that version) and
``cache/`` (verified results).  ``setup.json`` is the marker every verifying rule depends on:
versions, paths (relative to the marker) and the limits the verifier runs with.

Installing needs the network (github.com, the Mathlib cache, releases.lean-lang.org); compute
nodes then run the REPL from these files without it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lean_interact import GitProject, LeanREPLConfig, LocalProject
from lean_interact.utils import parse_lean_version

from misalign_fv.io import read_json, write_json
from misalign_fv.verifier.check import Problem, Verifier
from misalign_fv.verifier.format import canonical_statement
from misalign_fv.verifier.repl import IsolatedLeanServer, ReplPool

DEFAULT_SETUP = Path("resources/lean/setup.json")
# elan, pinned: the release archive (it holds the ``elan-init`` installer) by version and sha256.
ELAN_VERSION = "v4.2.4"
ELAN_SHA256 = {"x86_64": "42b94d4244e8353142c456ec0e4ca6528fd898a6c604d4059f494e706e431f63"}
ELAN_URL = "https://github.com/leanprover/elan/releases/download/{version}/elan-{machine}-unknown-linux-gnu.tar.gz"
SOFT_MEMORY_FRACTION = 0.8  # restart a REPL above this share of memory_mb (lean-interact's default)


def toolchain_id(lean_version: str, settings: dict[str, Any]) -> str:
    """The string that identifies a verifier setup in cache keys and result provenance."""
    m, r = settings["mathlib"], settings["repl"]
    return f"lean {lean_version} | mathlib {m['git']}@{m['rev']} | repl {r['git']}@{r['rev']}"


def _use_elan(elan_home: Path) -> None:
    """Make ``elan_home`` the elan of this process and of every process it starts."""
    os.environ["ELAN_HOME"] = str(elan_home)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if path[0] != str(elan_home / "bin"):
        os.environ["PATH"] = os.pathsep.join([str(elan_home / "bin"), *path])


@dataclass(frozen=True)
class LeanSetup:
    """An installed toolchain, read from its ``setup.json`` marker."""

    root: Path
    lean_version: str
    toolchain: str
    elan_home: Path
    lake: Path
    project_dir: Path
    repl_dir: Path
    memory_mb: int
    header_timeout_s: float

    def activate(self) -> None:
        """Point elan (``lake`` is an elan proxy) at this toolchain for REPLs started from here."""
        _use_elan(self.elan_home)

    def server_factory(self) -> functools.partial[Any]:
        """``IsolatedLeanServer`` bound to one ``LeanREPLConfig`` (``.args[0]``): each call starts a sandboxed REPL.

        The REPL reads only elan (with the toolchain), the Mathlib project and the REPL build.
        """
        self.activate()
        config = LeanREPLConfig(
            project=LocalProject(directory=str(self.project_dir), lake_path=str(self.lake), auto_build=False),
            local_repl_path=str(self.repl_dir),
            build_repl=False,
            lake_path=str(self.lake),
            memory_hard_limit_mb=self.memory_mb,
            enable_incremental_optimization=False,
            enable_parallel_elaboration=False,
        )
        return functools.partial(IsolatedLeanServer, config, readable=[self.elan_home, self.project_dir, self.repl_dir])


def load_setup(path: Path = DEFAULT_SETUP) -> LeanSetup:
    """Read the marker written by ``setup_lean``; a missing one fails in one line saying what to run."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no Lean toolchain here; run `snakemake setup_lean` (a local rule: it needs the network) first"
        )
    m = read_json(path)
    root = path.resolve().parent
    return LeanSetup(
        root=root,
        lean_version=m["lean_version"],
        toolchain=m["toolchain"],
        elan_home=root / m["elan_home"],
        lake=root / m["lake"],
        project_dir=root / m["project_dir"],
        repl_dir=root / m["repl_dir"],
        memory_mb=int(m["memory_mb"]),
        header_timeout_s=float(m["header_timeout_s"]),
    )


def _require_network(url: str) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20).close()
    except OSError as exc:
        raise RuntimeError(
            f"setup_lean: cannot reach {url} ({exc}); it needs the network: run it on a login node, "
            "compute nodes are offline"
        ) from None


def _download_pinned(url: str, sha256: str, dest: Path) -> None:
    """Download ``url`` to ``dest``; raise (and leave nothing) unless its sha256 is ``sha256``."""
    with urllib.request.urlopen(url, timeout=60) as resp:
        data = resp.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"setup_lean: {url} has sha256 {digest}, expected the pinned {sha256}")
    dest.write_bytes(data)


def _install_elan(elan_home: Path) -> Path:
    """The pinned elan under ``elan_home`` (no default toolchain, shell profiles untouched); returns ``lake``."""
    lake = elan_home / "bin" / "lake"
    if lake.exists():
        return lake
    machine = platform.machine()
    if machine not in ELAN_SHA256:
        raise RuntimeError(f"setup_lean: no pinned elan {ELAN_VERSION} for {machine} (pinned: {', '.join(ELAN_SHA256)})")
    elan_home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "elan.tar.gz"
        _download_pinned(ELAN_URL.format(version=ELAN_VERSION, machine=machine), ELAN_SHA256[machine], archive)
        with tarfile.open(archive) as tar:
            tar.extract("elan-init", tmp, filter="data")
        env = {**os.environ, "ELAN_HOME": str(elan_home)}
        init = [str(Path(tmp) / "elan-init"), "-y", "--no-modify-path", "--default-toolchain", "none"]
        subprocess.run(init, env=env, check=True)
    return lake


def smoke_test(setup: LeanSetup, header: str, timeout_s: float) -> dict[str, Any]:
    """Prove one theorem and reject one ``sorry`` through the real verifier; raise if either is wrong."""
    problem = Problem("misalign_fv_smoke", header, canonical_statement("theorem misalign_fv_smoke (a b : ℕ) : a + b = b + a := by"))
    good = "```lean4\ntheorem misalign_fv_smoke (a b : ℕ) : a + b = b + a := by\n  exact Nat.add_comm a b\n```"
    bad = "```lean4\ntheorem misalign_fv_smoke (a b : ℕ) : a + b = b + a := by\n  sorry\n```"
    pool = ReplPool(setup.server_factory(), 1, header_timeout_s=setup.header_timeout_s)
    try:
        ok, rejected = Verifier(pool, toolchain=setup.toolchain, timeout_s=timeout_s).verify([problem] * 2, [good, bad])
    finally:
        pool.close()
    if not ok.strict_pass or rejected.strict_pass or rejected.naive_pass:
        raise RuntimeError(f"setup_lean: smoke test failed: {ok.to_dict()} / {rejected.to_dict()}")
    return {"strict_pass": ok.strict_pass, "axioms": list(ok.axioms.axioms if ok.axioms else ()), "sorry_naive_pass": rejected.naive_pass}


def setup_lean(settings: dict[str, Any], marker: Path) -> dict[str, Any]:
    """Install elan, the Mathlib checkout (which pins Lean) and the REPL next to ``marker``; write it.

    ``settings`` is the ``lean`` config slice: ``toolchain``, ``mathlib.{git,rev}``,
    ``repl.{git,rev}``, ``memory_mb``, ``header_timeout_s`` and ``header`` (for the smoke test).
    Idempotent: what is already installed is reused.
    """
    root = Path(marker).resolve().parent
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("# written by setup_lean: toolchain, Mathlib, REPL and caches\n*\n")
    _require_network(settings["mathlib"]["git"])
    lake = _install_elan(root / "elan")
    _use_elan(root / "elan")
    mathlib = settings["mathlib"]
    project = GitProject(url=mathlib["git"], rev=mathlib["rev"], directory=str(root / "mathlib4"), lake_path=str(lake))
    version = project.get_lean_version()
    wanted = parse_lean_version(settings["toolchain"])
    if version != wanted:
        raise RuntimeError(
            f"config: lean.toolchain: {wanted} does not match {version}, the toolchain of mathlib "
            f"{mathlib['rev'][:12]}; set lean.toolchain: {version} or pin another lean.mathlib.rev"
        )
    config = LeanREPLConfig(
        project=LocalProject(directory=str(root / "mathlib4"), lake_path=str(lake), auto_build=False),
        repl_git=settings["repl"]["git"], repl_rev=settings["repl"]["rev"], cache_dir=str(root / "repl"),
        lake_path=str(lake), verbose=True,
    )  # fmt: skip
    record = {
        "lean_version": version,
        "elan": f"{ELAN_VERSION} sha256:{ELAN_SHA256[platform.machine()]}",
        "toolchain": toolchain_id(version, settings),
        "elan_home": "elan",
        "lake": os.path.relpath(lake, root),
        "project_dir": "mathlib4",
        "repl_dir": os.path.relpath(config.cache_repl_dir, root),
        "memory_mb": settings["memory_mb"],
        "header_timeout_s": settings["header_timeout_s"],
    }
    tmp = marker.with_name(f".{marker.name}.smoke")
    write_json(tmp, record)
    record["smoke_test"] = smoke_test(load_setup(tmp), settings["header"], timeout_s=120.0)
    tmp.unlink()
    write_json(marker, record)
    return record

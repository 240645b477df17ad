"""setup_lean without the network, and how an installed setup is opened (no Lean is started)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from misalign_fv.verifier.install import load_setup, setup_lean, toolchain_id

REPO = Path(__file__).resolve().parents[1]


def lean_settings() -> dict:
    """The real config's lean slice, as rule setup_lean passes it."""
    lean = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["lean"]
    return {k: lean[k] for k in ("toolchain", "mathlib", "repl", "memory_mb", "header_timeout_s", "header")}


def test_offline_setup_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens there: every download fails at once
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    marker = tmp_path / "lean" / "setup.json"
    with pytest.raises(RuntimeError) as err:
        setup_lean(lean_settings(), marker)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("setup_lean: cannot reach https://github.com/xinhjBrant/mathlib4.git (")
    assert msg.endswith("it needs the network: run it on a login node, compute nodes are offline")
    assert not marker.exists() and (tmp_path / "lean" / ".gitignore").read_text().endswith("*\n")


def test_installed_setup_opens_offline_with_the_pinned_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A marker and the directory layout setup_lean leaves; the REPL config is built without network or build."""
    root = tmp_path / "lean"
    for d in ("elan/bin", "mathlib4", "repl/augustepoiroux/repl/repl_v1.3.19_lean-toolchain-v4.9.0"):
        (root / d).mkdir(parents=True)
    (root / "mathlib4" / "lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")
    (root / "repl/augustepoiroux/repl/repl_v1.3.19_lean-toolchain-v4.9.0/lean-toolchain").write_text("leanprover/lean4:v4.9.0\n")
    settings = lean_settings()
    marker = root / "setup.json"
    marker.write_text(json.dumps({
        "lean_version": "v4.9.0", "toolchain": toolchain_id("v4.9.0", settings), "elan_home": "elan",
        "lake": "elan/bin/lake", "project_dir": "mathlib4", "repl_dir": "repl/augustepoiroux/repl/repl_v1.3.19_lean-toolchain-v4.9.0",
        "memory_mb": 8192, "header_timeout_s": 600,
    }))  # fmt: skip
    monkeypatch.setenv("PATH", os.environ["PATH"])
    monkeypatch.setenv("ELAN_HOME", "/elsewhere")
    setup = load_setup(marker)
    assert setup.toolchain == "lean v4.9.0 | mathlib https://github.com/xinhjBrant/mathlib4.git@2f65ba7f1a9144b20c8e7358513548e317d26de1 | repl https://github.com/augustepoiroux/repl@v1.3.19"
    assert setup.lake == root / "elan/bin/lake" and setup.project_dir == root / "mathlib4"
    factory = setup.server_factory()
    factory_again = setup.server_factory()
    assert callable(factory) and callable(factory_again)
    assert os.environ["ELAN_HOME"] == str(root / "elan")
    path = os.environ["PATH"].split(os.pathsep)
    assert path[0] == str(root / "elan" / "bin") and path.count(str(root / "elan" / "bin")) == 1
    config = factory.args[0]  # the one LeanREPLConfig every REPL of the pool shares
    assert config.memory_hard_limit_mb == 8192 and config.lean_version == "v4.9.0"
    assert not config.enable_incremental_optimization and not config.enable_parallel_elaboration
    assert config.working_dir == str((root / "mathlib4").resolve())
    with pytest.raises((OSError, RuntimeError)):
        factory()  # no lake here: starting a REPL fails loudly instead of hanging

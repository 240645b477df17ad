"""The cluster's GPU stack is pinned once, consistently: pyproject's `cluster` extra == envs/cluster.yaml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement


def _pins(requirements: list[str]) -> dict[str, str]:
    pins = {}
    for line in requirements:
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"{line}: not pinned to one version"
        pins[req.name.lower()] = spec[0].version
    return pins


def test_cluster_extra_and_conda_env_pin_the_same_versions(repo: Path) -> None:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extra = _pins(project["optional-dependencies"]["cluster"])
    env = yaml.safe_load((repo / "envs/cluster.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins(pip)
    assert {"torch", "vllm", "deepspeed", "transformers"} <= extra.keys()
    assert {name: conda.get(name) for name in extra} == extra
    # the project's own requirements (trl pinned, ranges for the rest) admit the pinned set
    for line in project["dependencies"]:
        req = Requirement(line)
        if req.name.lower() in conda:
            assert req.specifier.contains(conda[req.name.lower()]), f"envs/cluster.yaml {req.name} vs pyproject {line}"


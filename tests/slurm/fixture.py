"""pytest fixture: the loopback Slurm cluster for one test session, installed on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slurm.cluster import SlurmCluster, install_packages


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running cluster (skips only when the Slurm packages cannot be installed); stopped at session end."""
    why = install_packages()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

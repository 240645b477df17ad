#!/usr/bin/env bash
# Install the Debian packages of the loopback Slurm cluster (tests/slurm/cluster.py):
# munge, MariaDB (for slurmdbd, which sacct needs), slurmdbd, slurmctld, slurmd and the clients.
# Idempotent: does nothing when every daemon and client is already on PATH.  Needs root and apt.
# Services are not started (the tests start their own daemons on private ports and state dirs).
set -euo pipefail
need=(munged mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch srun sacct sacctmgr scontrol sinfo squeue)
missing=0
for b in "${need[@]}"; do command -v "$b" >/dev/null || missing=1; done
[ "$missing" = 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests/slurm/install.sh: need root and apt-get to install the Slurm packages" >&2
  exit 1
fi
# Keep package scripts from starting the system munge/mariadb services (Docker images ship this file).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends munge mariadb-server slurmdbd slurmctld slurmd slurm-client

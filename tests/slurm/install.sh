#!/usr/bin/env bash
# Install a single-node SLURM (slurmctld, slurmd, client commands) and MUNGE from Debian/Ubuntu packages.
# Needs root and apt; takes ~20 s. Nothing is started here (no systemd needed): tests/slurm/start.sh does that.
set -euo pipefail
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    echo "slurm-wlm and munge already installed"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq slurm-wlm munge >/dev/null
echo "installed: $(slurmctld -V), $(munged --version 2>&1 | head -1)"  # sinfo -V wants a SLURM config

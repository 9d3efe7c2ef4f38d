#!/usr/bin/env bash
# Training on a Cloud TPU pod slice: the same command on every host, started with gcloud.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config configs/dealthdr_2exp.py:size=base \
#       --workdir /mnt/runs/2exp_base [--config.a.b=v ...]
#
# Each TPU VM host runs one process with DEALTHDR_DISTRIBUTED=1, so that
# jax.distributed.initialize() discovers the slice from the TPU metadata (no addresses are
# passed). The workdir must be a path every host sees (NFS/Filestore, or a bucket mounted
# with gcsfuse): orbax writes checkpoints from all hosts, logs come from host 0 only.
# (gs:// URLs are not supported: the workdir's logs are written with plain file I/O.) The repository is expected at REPO_DIR (default ~/dealthdr-jax) on every host
# with its .venv installed (`make setup`); set REPO_DIR/PYTHON to change that.
# Running the same command again resumes from the workdir's latest checkpoint.
set -euo pipefail

if [[ $# -lt 3 ]]; then
  echo "usage: $0 TPU_NAME ZONE --config CONFIG --workdir DIR [--config.a.b=v ...]" >&2
  exit 2
fi
tpu="$1"; zone="$2"; shift 2
repo="${REPO_DIR:-~/dealthdr-jax}"
python="${PYTHON:-.venv/bin/python}"
# Quote every argument for the remote shell.
args=""
for a in "$@"; do args+=" $(printf '%q' "$a")"; done

gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all \
  --command "cd $repo && DEALTHDR_DISTRIBUTED=1 $python -m dealthdr_jax.cli train$args"

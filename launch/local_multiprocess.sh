#!/usr/bin/env bash
# N training processes on this machine, talking through jax.distributed (CPU collectives).
#
#   launch/local_multiprocess.sh N [dealthdr train arguments...]
#   launch/local_multiprocess.sh 2 --config configs/dealthdr_2exp.py:size=tiny --workdir runs/mp
#
# Each process gets JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (read by
# dealthdr_jax.training.sharding.maybe_initialize_distributed) and DEVICES_PER_PROCESS fake CPU
# devices (default 1). Process 0 logs to the terminal; every process also logs to
# <workdir>/process_<i>.log. Exits non-zero if any process fails (the others are stopped).
# Environment: PYTHON (default python3), PORT (default: a free port), DEVICES_PER_PROCESS.
set -euo pipefail

if [[ $# -lt 1 || ! "$1" =~ ^[0-9]+$ || "$1" -lt 1 ]]; then
  echo "usage: $0 NUM_PROCESSES [dealthdr train arguments...]" >&2
  exit 2
fi
num="$1"; shift
python="${PYTHON:-python3}"
devices="${DEVICES_PER_PROCESS:-1}"
port="${PORT:-$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

# The workdir (for the per-process logs) is the value after --workdir.
workdir=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --workdir) workdir="${args[$((i + 1))]:-}" ;;
    --workdir=*) workdir="${args[$i]#--workdir=}" ;;
  esac
done
if [[ -z "$workdir" ]]; then
  echo "$0: pass --workdir DIR" >&2
  exit 2
fi
mkdir -p "$workdir"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM

for ((i = 0; i < num; i++)); do
  log="$workdir/process_$i.log"
  (
    export JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" JAX_NUM_PROCESSES="$num" JAX_PROCESS_ID="$i"
    export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
    export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=$devices"
    if [[ $i -eq 0 ]]; then
      exec "$python" -m dealthdr_jax.cli train "$@" 2>&1 | tee "$log"
    else
      exec "$python" -m dealthdr_jax.cli train "$@" >"$log" 2>&1
    fi
  ) &
  pids+=("$!")
done

status=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    status=1
    cleanup
  fi
done
if [[ $status -ne 0 ]]; then
  echo "$0: a process failed; see $workdir/process_*.log" >&2
fi
exit $status

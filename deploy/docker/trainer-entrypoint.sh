#!/usr/bin/env bash
# Entrypoint of the trainer image: `latentforge train --resume auto ARGS...`, under torchrun when
# the job asks for more than one process, then (optionally) `latentforge export` of the run.
#
# Arguments are passed to `latentforge train` as they are (they must include --out). With
# `--resume auto` the run continues from the newest checkpoint in --out when there is one and
# starts fresh otherwise, so a retried pod, or a PVC mounted at /runs, picks up where the last
# run stopped (a --resume among ARGS overrides it).
#
# Signals: as PID 1 of a container, a process that installs no handler never sees SIGTERM. So
# when nothing follows training, the script `exec`s it: the trainer (or torchrun, which passes it
# on to every rank) receives SIGTERM itself, writes a checkpoint and exits. When an export
# follows, the script stays, passes SIGTERM (and SIGINT) on to the training process as SIGTERM
# and waits for it; a stopped run is not exported (the script exits 128 + the signal's number).
#
# Environment (all optional):
#   NPROC_PER_NODE  processes on this machine/pod (default 1)
#   NNODES          machines/pods in the job (default 1)
#   NODE_RANK       this pod's rank (default $JOB_COMPLETION_INDEX of an indexed Job, else 0)
#   MASTER_ADDR     address of node 0 (default 127.0.0.1)
#   MASTER_PORT     torchrun rendezvous port on node 0 (default 29500)
#   EXPORT_NAME     after training, node 0 exports the run as this model name ...
#   EXPORT_REPO     ... into this model repository (default /models)
#   DRY_RUN=1       print the commands instead of running them
set -euo pipefail

nproc="${NPROC_PER_NODE:-1}"
nnodes="${NNODES:-1}"
node_rank="${NODE_RANK:-${JOB_COMPLETION_INDEX:-0}}"
master_addr="${MASTER_ADDR:-127.0.0.1}"
master_port="${MASTER_PORT:-29500}"
export_name="${EXPORT_NAME:-}"
export_repo="${EXPORT_REPO:-/models}"

# The run folder, from --out DIR or --out=DIR.
out=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --out) out="${args[$((i + 1))]:-}" ;;
    --out=*) out="${args[$i]#--out=}" ;;
  esac
done
if [[ -z "$out" ]]; then
  echo "latentforge-train: pass the run folder as --out DIR" >&2
  exit 2
fi

if (( nproc * nnodes > 1 )); then
  # Static rendezvous: node ranks are fixed (an indexed Job's completion index), node 0 hosts
  # the store. Rank 0 (node 0, local rank 0) alone writes checkpoints, grids and metrics.
  train=(torchrun --nnodes "$nnodes" --nproc-per-node "$nproc" --node-rank "$node_rank"
         --master-addr "$master_addr" --master-port "$master_port"
         -m latentforge train --resume auto "$@")
else
  train=(latentforge train --resume auto "$@")
fi
export_cmd=()
if [[ -n "$export_name" && "$node_rank" == 0 ]]; then
  # Publishes <repo>/<name>/<next version>/ atomically; running servers pick it up on reload.
  export_cmd=(latentforge export "$out" --repo "$export_repo" --name "$export_name")
fi

if [[ "${DRY_RUN:-0}" == 1 ]]; then
  echo "${train[*]}"
  if (( ${#export_cmd[@]} )); then echo "${export_cmd[*]}"; fi
  exit 0
fi

if (( ${#export_cmd[@]} == 0 )); then
  exec "${train[@]}"
fi

# Training, then the export: run training as a child and pass a stop on to it. SIGINT goes on
# as SIGTERM: a background child of a script ignores SIGINT.
stopped=""
child=""
forward() {
  stopped="$1"
  if [[ -n "$child" ]]; then kill -s TERM "$child" 2>/dev/null || true; fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT
"${train[@]}" &
child=$!
if [[ -n "$stopped" ]]; then kill -s TERM "$child" 2>/dev/null || true; fi
while :; do
  status=0
  wait "$child" || status=$?
  # `wait` returns early when a trapped signal arrives; go on waiting while the child runs.
  kill -0 "$child" 2>/dev/null || break
done
trap - TERM INT
case "$stopped" in
  TERM) exit 143 ;;
  INT) exit 130 ;;
esac
if (( status != 0 )); then
  exit "$status"
fi
exec "${export_cmd[@]}"

#!/usr/bin/env bash
# Copyright (c) xfm_mm contributors. All rights reserved.
# Train with several processes on one or more nodes (torchrun).
#
#   tools/dist_train.sh CONFIG GPUS [tools/train.py arguments]
#
# GPUS is the number of processes on this node. Multi-node: set NNODES,
# NODE_RANK, MASTER_ADDR (and PORT) on every node. PYTHON picks the
# interpreter (default: python). Without GPUs the processes use gloo.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py arguments]" >&2
    exit 2
fi

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "${@:3}"

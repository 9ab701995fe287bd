#!/usr/bin/env bash
# The demo fine-tunes, after `make demo` (README "Demo fine-tunes"):
#   1. write data/demo/finetune from the demo region canvases
#      (tools/data/prepare_demo_finetune_data.py)
#   2. fine-tune configs/downstream/<task>/xfm-demo_<task>.py from the demo
#      pre-training checkpoint and test it, for VQA, grounding, captioning
#      and NLVR2; the checkpoints are what docs/en/inference.md's demo
#      snippets load (work_dirs/xfm-demo_<task>/iter_100.pth).
# Environment: XFM_VENV (default .venv), WORK_DIR (default work_dirs),
# PRETRAINED (default work_dirs/pretrain_demo/iter_400.pth), TASKS (default
# "vqa grounding caption nlvr2"), CFG_OPTIONS (more --cfg-options, e.g.
# "train_cfg.max_iters=50").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${XFM_VENV:-$ROOT/.venv}/bin/python
WORK_DIR=${WORK_DIR:-work_dirs}
PRETRAINED=${PRETRAINED:-work_dirs/pretrain_demo/iter_400.pth}
TASKS=${TASKS:-vqa grounding caption nlvr2}
export PYTHONUNBUFFERED=1

if [ ! -f "$PRETRAINED" ]; then
    echo "[demo-finetune] no pre-training checkpoint $PRETRAINED:" \
        "run \`make demo\` first (or set PRETRAINED)" >&2
    exit 2
fi
"$PY" tools/data/prepare_demo_finetune_data.py --demo data/demo

summary=()
for task in $TASKS; do
    config=configs/downstream/$task/xfm-demo_$task.py
    dir=$WORK_DIR/xfm-demo_$task
    start=$(date +%s)
    # shellcheck disable=SC2086  # CFG_OPTIONS holds several options
    "$PY" tools/train.py "$config" --work-dir "$dir" \
        --cfg-options model.init_cfg.checkpoint="$PRETRAINED" ${CFG_OPTIONS:-}
    trained=$(date +%s)
    "$PY" tools/test.py "$config" "$(cat "$dir/last_checkpoint")" \
        --work-dir "$dir/test"
    end=$(date +%s)
    summary+=("$task: fine-tuning $((trained - start)) s, test $((end - trained)) s")
done
for line in "${summary[@]}"; do
    echo "[demo-finetune] $line"
done

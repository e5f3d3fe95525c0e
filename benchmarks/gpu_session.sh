#!/usr/bin/env bash
# Everything issue 11 asks of a GPU, in one call of the device tool (~10 min on an H200):
#   1. the training step's throughput at batch 256, float32 and bfloat16, PPG and ECG
#      (the paper's encoders: benchmarks/train.py);
#   2. the full-size PPG recipe (3.1M parameters, 60 s windows, batch 256, temperature
#      0.04) on the synthetic cohort for MINUTES of training, checkpoints every 250
#      steps, then its learning curve against random-init seeds and hand-crafted
#      features (ahms-fm probe --steps all).
# Results go to $OUT (the device tool brings back at most 8 files): log.txt (every
# command's output), metrics.jsonl, curves.md, curves.png.
#
# Here, once: python3 -m pip download ... -d .whl (the packages the device image lacks:
# grain array_record tensorflow-datasets ml_collections tensorboardX wfdb pyEDFlib dm-tree
# promise simple-parsing immutabledict termcolor toml openpyxl tensorflow-metadata
# docstring-parser et-xmlfile googleapis-common-protos importlib_resources portpicker
# soundfile; see /work/.library/device/README.md), then
#   run(command="bash benchmarks/gpu_session.sh", carry=[".whl"], timeout_s=600)
# DRY=1 bash benchmarks/gpu_session.sh runs the same on this CPU at toy sizes (no $OUT
# needed), to check the script before spending device time.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_session_out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
PY=python3
if [ "${DRY:-0}" = 1 ]; then
  PY=.venv/bin/python BATCH=8 STEPS=4 MINUTES=0.5 PARTICIPANTS=64 PER=4 SECONDS_=20
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  BATCH=256 STEPS=40 MINUTES=5 PARTICIPANTS=4000 PER=16 SECONDS_=60
  nvidia-smi >> "$LOG" 2>&1
fi
export PYTHONUNBUFFERED=1
$PY -c "import jax; print(jax.__version__, jax.devices())" 2>&1 | tee -a "$LOG"

# 1. Throughput, both dtypes (compilation excluded by benchmarks/train.py).
for dtype in float32 bfloat16; do
  $PY benchmarks/train.py --batch "$BATCH" --steps "$STEPS" --dtype "$dtype" \
    --modality ppg ecg 2>&1 | grep -v "^W1201" | tee -a "$LOG"
done

# 2. The full-size recipe for MINUTES of wall clock (stopped by SIGTERM: it checkpoints
#    and exits), then probed at every kept checkpoint.
RUN=/tmp/full_recipe
rm -rf "$RUN"
$PY -m ahms_fm.ingest --config configs/ppg.py --config.data.data_dir=/tmp/datasets \
  --config.data.participants="$PARTICIPANTS" --config.data.segments_per_participant="$PER" \
  --config.input.window_seconds="$SECONDS_" >> "$LOG" 2>&1
$PY -m ahms_fm.main --config configs/ppg.py --workdir "$RUN" \
  --config.data.data_dir=/tmp/datasets --config.data.participants="$PARTICIPANTS" \
  --config.data.segments_per_participant="$PER" --config.input.window_seconds="$SECONDS_" \
  --config.batch_size="$BATCH" --config.num_steps=100000 --config.log_every_steps=25 \
  --config.eval_every_steps=250 --config.checkpoint_every_steps=250 \
  --config.keep_every_steps=250 --config.probe.every_steps=250 >> "$LOG" 2>&1 &
pid=$!
sleep "$(awk "BEGIN {print $MINUTES * 60}")"
kill -TERM "$pid"
wait "$pid"
cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
$PY -m ahms_fm.evaluation.probe --checkpoint "$RUN" --steps all --data_dir /tmp/datasets \
  --baselines random_init,init,handcrafted,ceiling --out "$RUN/curves" \
  >> "$LOG" 2>&1
cp "$RUN/curves/curves.md" "$RUN/curves/curves.png" "$OUT/" 2>/dev/null
ls -la "$OUT"

#!/usr/bin/env bash
# One call on a lent GPU (see /work/.library/device): what only a GPU can do here, in one command.
#
#  1. The ASR pretraining corpus of each arm (its flags decide which: --corpus-size, --seed,
#     --everyday-words, --extra-voices; arms that share one share it) is synthesised on the CPU
#     cores (eSpeak NG, ~60 s a corpus on 12 cores), while the GPU runs the 7B-architecture
#     benchmark if BENCH holds gpu_7b.py's arguments.
#  2. Every line of ARMS, "<run dir> <dataloader workers> <pretrain-tiny flags>", trains on the
#     GPU at the same time until the time budget ends, resuming its run folder if one was carried.
#  3. The arm with the lowest last validation CTC-WER sends back its exported backbone in 15 MiB
#     parts (rejoin: cat backbone.tar.part* > backbone.tar) if it finished all its steps, else its
#     last.ckpt in 15 MiB parts (rejoin: cat ckpt.part* > <run dir>/checkpoints/last.ckpt); every
#     arm's TensorBoard logs, settings, wall time and loop profile (fit-profile.txt: seconds in
#     loading, forward, backward, optimizer, validation; the head is printed), and every log, come
#     back in runs.tgz (a lease returns 8 files). A last.ckpt over 60 MiB (a lease returns 64 MiB in
#     all) comes back packed instead, as lease.part* (cat lease.part* > <run dir>/checkpoints/lease.ckpt;
#     python -m benchmarks.lease_checkpoint unpack <run dir>).
#
# Carry: .whl/ (wheels the device image lacks: espeakng-loader, faker, babel, num2words,
# soundfile, cffi, pycparser, jsonargparse; for an arm with --everyday-words, wordfreq and its ftfy,
# wcwidth, langcodes, locate; benchmarks/README.md has the download command; the script imports
# everything it will need before it starts, and stops at once naming what is missing), .gpu/tokenizer.json (the local tiny tokenizer, so that a resumed
# arm reads the same token ids), and of each resumed arm its settings.json, wall_time.json,
# tensorboard/ and checkpoints/last.ckpt, or checkpoints/lease.ckpt where last.ckpt with the
# wheels would pass the 64 MiB limit (`python -m benchmarks.lease_checkpoint pack RUN_DIR`).
# Session 4 ran BENCH="--steps 6" with two arms: logs/pretrain/tiny (8 workers, default flags)
# and logs/pretrain/gpu-b96 (6 workers, --batch-size 96 --lr 0.003 --steps 6000 --hear-steps 2400).
# Session 7 resumed logs/pretrain/b96-fresh (new LLM layers on gpu-b96's ear) on an H100, carrying
# gpu-b96/backbone without its weights (`lease_checkpoint unpack` rebuilds them). Session 13 ran
# logs/pretrain/heard-b96-gpu (the six-instruction recipe from tiny-heard at batch 96, lr 1e-3) on
# an H100: 477 of 1,400 steps, since the per-token alignment loss made a batch-96 step three times
# a batch-32 one (benchmarks/pretrain_step.py; batched since). The default arm trains that recipe
# at tiny-heard's own lr, sized to finish within one call: it needs no carried checkpoint, since
# the bundle travels with the tree. Session 17 ran two CTC-only arms from scratch, tiny and tiny-ear,
# 3,000 steps each in ~5 min (research log, "A third GPU lease"); the export's WER measurement now
# runs on the GPU, so an arm that finishes sends its backbone back within the same call.
set -u
start=$(date +%s)
OUT=${OUT:-/tmp/gpu-lease-out}
BUDGET=${BUDGET:-565}          # seconds this script may take in all
ARMS=${ARMS:-logs/pretrain/heard-b96 14 --backbone tiny-heard \
--audio-tasks transcribe,json,first_words,last_word,count,reverse --read-weight 1 --hear-steps 0 \
--steps 1500 --batch-size 96 --lr 0.0005 --warmup-steps 50 --val-every 250 --eval-clips 240}
BENCH=${BENCH:-}
LOGS=/tmp/gpu-lease-logs
mkdir -p "$OUT" "$LOGS"
left() { echo $((BUDGET - ($(date +%s) - start))); }

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, lightning; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'lightning', lightning.__version__, 'cpus', __import__('os').cpu_count())"
# Everything the steps below import, now: a missing wheel stops the call in seconds, not after synthesis.
ARMS="$ARMS" python3 -c "
import importlib, os
from slu_lightning.pretrain.recipe import parse_command
arms = [parse_command(line.split()[2:])[0] for line in os.environ['ARMS'].splitlines() if line.strip()]
needed = ['slu_lightning.model.tiny', 'benchmarks.lease_checkpoint', 'espeakng_loader', 'soundfile', 'faker',
          'babel', 'num2words', 'tensorboard.backend.event_processing.event_accumulator']
needed += ['wordfreq'] * any(settings.everyday_words for settings in arms)
for name in needed:
    importlib.import_module(name)
print(len(arms), 'arms; imports ok')
" || { echo "missing a package (above): carry its wheel in .whl (header)"; exit 1; }

ARMS="$ARMS" timeout $((BUDGET * 3 / 4)) python3 -c "
import hashlib, os, shutil
from pathlib import Path
from slu_lightning.model.tiny import ensure_tiny_backbone
from slu_lightning.pretrain.recipe import parse_command
sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
tiny, local = ensure_tiny_backbone('tiny'), Path('.gpu/tokenizer.json')
if local.is_file() and sha(local) != sha(tiny / 'tokenizer.json'):
    print('tokenizer differs from the local one: using the local one')
    shutil.copy(local, tiny / 'tokenizer.json')
print('tokenizer', sha(tiny / 'tokenizer.json'))
arms = [parse_command(line.split()[2:])[0] for line in os.environ['ARMS'].splitlines() if line.strip()]
for settings in {settings.corpus_dir(): settings for settings in arms}.values():  # each corpus once
    corpus = settings.build_corpus(workers=12)
    print(corpus.name, 'train.jsonl', sha(corpus / 'train.jsonl'))
" >"$LOGS/synth.log" 2>&1 &
synth=$!  # (its timeout, below, keeps a slow synthesis from running the call past its limit)
if [ -n "$BENCH" ]; then
    # shellcheck disable=SC2086
    timeout 170 python3 -m benchmarks.gpu_7b $BENCH 2>&1 | tee "$LOGS/gpu_7b.log"
fi
wait $synth || { tail -20 "$LOGS/synth.log"; exit 1; }
tail -n 3 "$LOGS/synth.log"

minutes=$(python3 -c "print(max(0.5, ($(left) - 60) / 60))")
echo "training every arm for $minutes min"
# SIGTERM 20 s before the budget ends (the run saves last.ckpt after its step), SIGKILL 10 s later;
# under a minute left, no arm starts (timeout 0 would never stop one, a negative one fails).
pretrain() { timeout -k 10 $(($(left) - 20)) python3 -c \
    "import sys; from slu_lightning.pretrain.recipe import main; main(sys.argv[1:])" \
    --max-minutes "$minutes" --checkpoint-minutes 2 --profile "$@"; }
runs=()
while read -r run workers flags; do
    [ -n "$run" ] || continue
    runs+=("$run")
    if [ "$(left)" -lt 80 ]; then
        echo "$(left) s left: $run does not train"
        continue
    fi
    if [ -f "$run/checkpoints/lease.ckpt" ] && [ ! -f "$run/checkpoints/last.ckpt" ]; then
        python3 -m benchmarks.lease_checkpoint unpack "$run" || exit 1  # carried packed
    fi
    # shellcheck disable=SC2086
    pretrain --run-dir "$run" --workers "$workers" $flags >"$LOGS/$(basename "$run").log" 2>&1 &
done <<<"$ARMS"
wait
echo "arms done"
for run in "${runs[@]}"; do  # where the steps went: loader, forward, backward, optimizer, validation
    echo "$run"; head -n 16 "$run/fit-profile.txt" 2>/dev/null | cut -c1-130
done

best=$(python3 - "${runs[@]}" <<'EOF'
import sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
scores = {}
for run in sys.argv[1:]:
    try:  # an arm that crashed or never started has no logs: the others still count
        events = EventAccumulator(f"{run}/tensorboard").Reload()
    except Exception as error:
        print(run, "no TensorBoard logs:", type(error).__name__, file=sys.stderr)
        continue
    tags = events.Tags()["scalars"]
    for tag in ("val/ctc", "val/ctc_wer"):
        if tag in tags:
            print(run, tag, [(e.step, round(e.value, 3)) for e in events.Scalars(tag)], file=sys.stderr)
    if "val/ctc_wer" in tags:
        scores[run] = events.Scalars("val/ctc_wer")[-1].value
print(min(scores, key=scores.get) if scores else sys.argv[1])
EOF
)
echo "returning the checkpoint of $best"
tail -n 4 "$LOGS"/*.log
tar czf "$OUT/runs.tgz" --exclude=checkpoints --exclude='*.safetensors' "${runs[@]}" "$LOGS"
if [ -f "$best/backbone/model.safetensors" ]; then  # finished and exported: the backbone, not the checkpoint
    tar cf - -C "$best" backbone | split -b 15M -d - "$OUT/backbone.tar.part"  # rejoin with cat
else  # $OUT brings back 64 MiB in all: past 60 MiB, the checkpoint goes packed (AdamW moments in bf16)
    ckpt=$best/checkpoints/last.ckpt part=ckpt.part
    if [ -f "$ckpt" ] && [ "$(stat -c %s "$ckpt")" -gt $((60 << 20)) ] &&
        python3 -m benchmarks.lease_checkpoint pack "$best"; then
        ckpt=$best/checkpoints/lease.ckpt part=lease.part
    fi
    [ "$(stat -c %s "$ckpt" 2>/dev/null || echo 0)" -le $((60 << 20)) ] || echo "WARNING: $ckpt passes 60 MiB"
    split -b 15M -d "$ckpt" "$OUT/$part"
fi
echo "$best" >"$OUT/best.txt"
ls -la "$OUT"; echo "elapsed $(($(date +%s) - start)) s"

#!/usr/bin/env bash
# One device call of the GPU benchmarks (see benchmarks/RESULTS.md). Usage, from the repo root on
# the device machine, with the wheels of .whl/ and the demo model in .carry/demo_base carried:
#   bash benchmarks/gpu/device_run.sh lanes   # 4 GPUs: generation | 1-GPU 7B | 2-GPU 7B, in parallel
#   bash benchmarks/gpu/device_run.sh multigpu   # 2 GPUs: GRPO loop, small-model DPO + GRPO steps under ZeRO-3
#   bash benchmarks/gpu/device_run.sh zero3   # 4 GPUs: GRPO loop on 2 (DeepSpeed), 7B GRPO then DPO on 4 (the real layout)
#   bash benchmarks/gpu/device_run.sh mfu   # 4 GPUs: a 7B DPO step under ZeRO-3 (the real layout), timed and profiled
#   bash benchmarks/gpu/device_run.sh mfu_buckets   # 4 GPUs: the same with benchmarks/gpu/zero3_buckets.json
#   bash benchmarks/gpu/device_run.sh grpo1   # 1 GPU (issue 17): the shipped GRPO settings at 7B through run_entry,
#       as many steps as the call leaves time for; the hf generation benchmark (B=128, BOS checked) runs
#       first while DeepSpeed builds its CPU Adam
#   bash benchmarks/gpu/device_run.sh all   # 1 GPU (issue 17): grpo1 cut to end by ~430 s, then the evaluation
#   bash benchmarks/gpu/device_run.sh geneval   # 1 GPU (issue 17): hf generation at B=128, then one
#       trajectory-subset evaluation (benchmarks/gpu/eval_trajectory.py, data in .carry/eval_data)
#   bash benchmarks/gpu/device_run.sh variants STAGE GA NAME=JSON...   # 4 GPUs: one STAGE (dpo|grpo) step of GA
#       micro-steps per variant (JSON: training parameter overrides), in order, each stopped after its
#       optimizer step (no save), micro-step $PROFILE_MICRO (default 2; -1: none) profiled;
#       e.g. gc='{}' liger='{"use_liger_kernel": true}'; a NAME of STAGE:NAME runs that stage instead
# Everything lands in $OUT/results.tgz, plus $OUT/summary.txt (the tables) and $OUT/smi.csv.gz.
# The carried folders (git-ignored; list them in .git/info/exclude), made here beforehand:
#   P="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_17_x86_64 -d .whl"
#   pip download $P trl==1.16.0 liger-kernel==0.8.5 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 hjson pydantic==2.14.4 \
#     pydantic_core==2.50.5 annotated-types typing-inspection jsonschema==4.26.0 jsonschema-specifications referencing rpds-py
#   pip download --no-deps --no-binary=:all: -d .whl deepspeed==0.19.8
#   cp -r results/models/base .carry/demo_base   # the demo base model (make demo)
# SRC (default: the repo root) is where src/, config/, resources/ and benchmarks/gpu/ are read
# from: a snapshot of the code (e.g. .gpusnap, from `git archive HEAD`) while others edit the tree.
set -u
SRC=${SRC:-$PWD}
mode=$1
R=$OUT/r
mkdir -p "$R"
[ -d /tmp/site/trl ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
[ -d /tmp/site/deepspeed ] || DS_BUILD_OPS=0 python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/site .whl/deepspeed-*.tar.gz \
  > "$R/deepspeed_install.log" 2>&1 || echo "deepspeed install failed (see deepspeed_install.log)"
export PYTHONPATH=/tmp/site:$SRC/src:$SRC/benchmarks/gpu PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
CUDA_HOME=$(dirname "$(dirname "$(command -v nvcc)")")
export CUDA_HOME
nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 500 > "$R/smi.csv" &
smi=$!
while sleep 5; do echo "$(date -u +%H:%M:%S) $(free -m | awk '/Mem:/ {print "used_mib", $3, "total_mib", $2}')"; done > "$R/mem.log" 2>&1 &
memlog=$!
{ nvidia-smi; nproc; free -g; python3 -c "import deepspeed, trl, datasets, pyarrow; print('deepspeed', deepspeed.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'pyarrow', pyarrow.__version__)"; } > "$R/env.log" 2>&1
# DeepSpeed builds its CPU Adam (the offloaded optimizer) on first use; build it now, in the background.
cpu_adam=
[[ "$mode" == mfu* || "$mode" == geneval ]] || { ( time python3 -c "from deepspeed.ops.op_builder import CPUAdamBuilder; CPUAdamBuilder().load(); print('cpu_adam built')" ) > "$R/cpu_adam.log" 2>&1 & cpu_adam=$!; }
T=$SRC/benchmarks/gpu
# The random 7B model in memory when /dev/shm has more than $1 GB free ($1 = disk: on disk; a model
# and ceiling left by the last call on a still-warm machine are reused) (the model, plus a trained
# copy when the run saves one), else on disk; sets W (the work folder) and PEAK (the matmul ceiling
# measured while making it), both noted in $R/$2.
make_7b() {
  if [ "$1" = disk ]; then  # leave the RAM to an offloaded optimizer
    W=/tmp; [ "$(stat -f -c %T /tmp)" = tmpfs ] && W=$HOME
  else
    W=/tmp; [ "$(df --output=avail -B1G /dev/shm | tail -1)" -gt "$1" ] && W=/dev/shm
  fi
  [ -f "$R/train_make.json" ] || [ ! -f "$W/m7b/config.json" ] || [ ! -f /tmp/peak_tflops ] || { PEAK=$(cat /tmp/peak_tflops); echo "work $W (model kept from the last call), matmul ceiling $PEAK" > "$R/$2"; return; }
  timeout 150 python3 $T/train_step.py --model-dir $W/m7b --make-model --stages "" --out "$R" --tag make > "$R/make_model.log" 2>&1
  PEAK=$(python3 -c "import json; print(json.load(open('$R/train_make.json'))['peak_tflops'])")
  echo "$PEAK" > /tmp/peak_tflops
  echo "work $W, matmul ceiling $PEAK TFLOP/s, started $(date -u +%H:%M:%S)" > "$R/$2"
}
if [ "$mode" = lanes ]; then
  ( CUDA_VISIBLE_DEVICES=0 timeout 330 python3 $T/generation.py --out "$R" > "$R/generation.log" 2>&1
    CUDA_VISIBLE_DEVICES=0 timeout 100 python3 $T/grpo_loop.py --model-dir .carry/demo_base --out "$R" --tag gpu1 > "$R/loop_gpu1.log" 2>&1
    CUDA_VISIBLE_DEVICES=0 timeout 90 python3 $T/precision.py --out "$R" > "$R/precision.log" 2>&1 ) &
  a=$!
  CUDA_VISIBLE_DEVICES=1 timeout 120 python3 $T/train_step.py --model-dir /tmp/m7b --make-model --stages "" --peak-tflops 1 --out "$R" --tag make > "$R/make_model.log" 2>&1
  CUDA_VISIBLE_DEVICES=1 timeout 390 python3 $T/train_step.py --model-dir /tmp/m7b --out "$R" --tag gpu1 > "$R/train_gpu1.log" 2>&1 &
  b=$!
  CUDA_VISIBLE_DEVICES=2,3 timeout 390 python3 $T/train_step.py --model-dir /tmp/m7b --out "$R" --tag gpu2 > "$R/train_gpu2.log" 2>&1 &
  c=$!
  wait $a $b $c
elif [ "$mode" = grpo1 ]; then
  { df -h /tmp /dev/shm "$HOME"; stat -f -c %T /tmp; } >> "$R/env.log" 2>&1
  make_7b disk grpo1_setup.log
  # SKIP_GEN=1: no generation benchmark first (all of the call's time to GRPO)
  [ -n "${SKIP_GEN:-}" ] || timeout 120 python3 $T/generation.py --out "$R" --skip-naive --batches 128 --subset "" > "$R/generation.log" 2>&1
  echo "generation done at $SECONDS s; CPU Adam: $(tail -1 "$R/cpu_adam.log")" >> "$R/grpo1_setup.log"
  [ -n "$cpu_adam" ] && wait $cpu_adam
  echo "GRPO starts at $SECONDS s" >> "$R/grpo1_setup.log"
  # the shipped settings (grpo.defaults: 8 x 8 completions of 1024 tokens a step, checkpointing on), max 10 steps,
  # stopped after the last step that leaves time for another; micro-step 3 (step 1, no generation) profiled
  # GRPO_SET: training parameter overrides (JSON); END: seconds into the call by which GRPO stops
  gset=${GRPO_SET:-'{}'} end=${END:-575}
  timeout $((end - SECONDS)) python3 $T/train_step.py --model-dir $W/m7b --work $W/train_bench --stages grpo --steps 10 --ga 8 \
    --peak-tflops "$PEAK" --profile-micro 3 --deadline-s $((end - 35 - SECONDS)) --stack-dump-s 60 --set "$gset" --out "$R" --tag h200grpo \
    > "$R/train_h200grpo.log" 2>&1
  cp -r $W/train_bench/h200grpo/grpo/probe "$R/probe_grpo" 2>/dev/null
  cp $W/train_bench/h200grpo/grpo/metrics.csv "$R/" 2>/dev/null
elif [ "$mode" = all ]; then
  # grpo1's generation and GRPO (stopped to end by ~430 s), then geneval's evaluation in the time left
  { df -h /tmp /dev/shm "$HOME"; stat -f -c %T /tmp; } >> "$R/env.log" 2>&1
  make_7b disk all_setup.log
  timeout 120 python3 $T/generation.py --out "$R" --skip-naive --batches 128 --subset "" > "$R/generation.log" 2>&1
  echo "generation done at $SECONDS s; CPU Adam: $(tail -1 "$R/cpu_adam.log")" >> "$R/all_setup.log"
  [ -n "$cpu_adam" ] && wait $cpu_adam
  echo "GRPO starts at $SECONDS s" >> "$R/all_setup.log"
  timeout $((450 - SECONDS)) python3 $T/train_step.py --model-dir $W/m7b --work $W/train_bench --stages grpo --steps 10 --ga 8 \
    --peak-tflops "$PEAK" --profile-micro 3 --deadline-s $((405 - SECONDS)) --stack-dump-s 60 --out "$R" --tag h200grpo \
    > "$R/train_h200grpo.log" 2>&1
  cp -r $W/train_bench/h200grpo/grpo/probe "$R/probe_grpo" 2>/dev/null
  cp $W/train_bench/h200grpo/grpo/metrics.csv "$R/" 2>/dev/null
  echo "evaluation starts at $SECONDS s" >> "$R/all_setup.log"
  timeout $((590 - SECONDS)) python3 $T/eval_trajectory.py --model-dir $W/m7b --data .carry/eval_data --config $SRC/config/config.yaml \
    --out "$R" > "$R/eval_trajectory.log" 2>&1
  echo "evaluation done at $SECONDS s" >> "$R/all_setup.log"
elif [ "$mode" = geneval ]; then
  make_7b disk geneval_setup.log
  timeout 150 python3 $T/generation.py --out "$R" --skip-naive --batches 128 --subset "" > "$R/generation.log" 2>&1
  echo "generation done at $SECONDS s" >> "$R/geneval_setup.log"
  timeout $((585 - SECONDS)) python3 $T/eval_trajectory.py --model-dir $W/m7b --data .carry/eval_data --config $SRC/config/config.yaml \
    --out "$R" > "$R/eval_trajectory.log" 2>&1
  echo "evaluation done at $SECONDS s" >> "$R/geneval_setup.log"
elif [ "$mode" = mfu ]; then
  make_7b 60 mfu_setup.log
  # Five micro-steps of one optimizer step, the third profiled on rank 0 (about 250 s with the save).
  timeout 250 python3 $T/train_step.py --model-dir $W/m7b --work $W/train_bench --stages dpo --peak-tflops $PEAK \
    --profile-micro 2 --ga 5 --out "$R" --tag gpu4dpo > "$R/train_gpu4dpo.log" 2>&1
elif [ "$mode" = mfu_buckets ]; then
  # The larger-bucket DeepSpeed config alone, cut off after its optimizer step (the probe writes
  # its records then); summarise them with train_step.py --summarize DIR --peak-tflops P --out D --tag T.
  make_7b 60 mfu_setup.log
  timeout $((300 - SECONDS)) python3 $T/train_step.py --model-dir $W/m7b --work $W/train_bench --stages dpo --peak-tflops $PEAK --ga 5 \
    --zero3-json $T/zero3_buckets.json --out "$R" --tag gpu4dpo_buckets > "$R/train_gpu4dpo_buckets.log" 2>&1
  cp -r $W/train_bench/gpu4dpo_buckets/dpo/probe "$R/probe_gpu4dpo_buckets"
elif [ "$mode" = variants ]; then
  stage=$2 ga=$3
  shift 3
  make_7b 40 variants_setup.log  # no final save in these runs
  for v in "$@"; do
    name=${v%%=*} st=$stage
    [[ "$name" == *:* ]] && { st=${name%%:*}; name=${name#*:}; }
    left=$((585 - SECONDS))
    [ $left -lt 60 ] && { echo "no time left for $name" >> "$R/variants_setup.log"; continue; }
    timeout $left python3 $T/train_step.py --model-dir $W/m7b --work $W/train_bench --stages "$st" --peak-tflops "$PEAK" \
      --ga "$ga" --profile-micro "${PROFILE_MICRO:-2}" --stop-after-step --set "${v#*=}" --out "$R" --tag "${st}_$name" > "$R/train_${st}_$name.log" 2>&1
    echo "$name done at $SECONDS s" >> "$R/variants_setup.log"
  done
elif [ "$mode" = multigpu ]; then
  # The multi-GPU path end to end on a small model: the GRPO loop, then a DPO (reference
  # log-probs precomputed) and a GRPO step of train_step, each under DeepSpeed ZeRO-3 on 2 GPUs.
  timeout 110 python3 $T/grpo_loop.py --model-dir .carry/demo_base --out "$R" --tag gpu2 > "$R/loop_gpu2.log" 2>&1
  timeout 150 python3 $T/train_step.py --model-dir /tmp/small --make-model --peak-tflops 780 --out "$R" --tag gpu2small \
    --shape '{"num_hidden_layers": 4, "hidden_size": 512, "intermediate_size": 1376, "num_attention_heads": 8, "num_key_value_heads": 8}' \
    > "$R/train_gpu2small.log" 2>&1
else
  # The GRPO loop under DeepSpeed on GPUs 0,1 while the 7B model is written; then the 7B GRPO and
  # DPO steps on all 4 GPUs (ZeRO-3, the real layout), GRPO first, each given the time left.
  CUDA_VISIBLE_DEVICES=0,1 timeout 150 python3 $T/grpo_loop.py --model-dir .carry/demo_base --out "$R" --tag gpu2 > "$R/loop_gpu2.log" 2>&1 &
  l=$!
  CUDA_VISIBLE_DEVICES=3 timeout 150 python3 $T/train_step.py --model-dir /tmp/m7b --make-model --stages "" --peak-tflops 1 --out "$R" --tag make > "$R/make_model.log" 2>&1
  wait $l
  timeout $((580 - SECONDS - 150)) python3 $T/train_step.py --model-dir /tmp/m7b --stages grpo --peak-tflops 780 --out "$R" --tag gpu4grpo > "$R/train_gpu4grpo.log" 2>&1
  timeout $((580 - SECONDS)) python3 $T/train_step.py --model-dir /tmp/m7b --stages dpo --peak-tflops 780 --out "$R" --tag gpu4dpo > "$R/train_gpu4dpo.log" 2>&1
fi
kill $smi $memlog
for f in "$R"/*.log; do echo "== $(basename "$f")"; grep -v -i "warn\|it/s\]" "$f" | tail -n 14; done > "$OUT/summary.txt" 2>&1
gzip -c "$R/smi.csv" > "$OUT/smi.csv.gz"
tar czf "$OUT/results.tgz" -C "$R" --exclude smi.csv .
cat "$OUT/summary.txt"

#!/usr/bin/env bash
# The GPU figures README asks for, in one run on a machine with an NVIDIA GPU:
#   1. CPU vs GPU on SmolLM2: the top-16 entropies agree (< 0.01 nats) and greedy
#      generations are identical (lm/benches/devices.rs; exits non-zero otherwise);
#   2. `rlpt entropy` tokens/s on the GPU (the sample's English documents);
#   3. `rlpt train` on SmolLM2 (data-samples/train-smollm2.toml): step, rollout and
#      update time, peak GPU memory, and the update's MFU;
#   4. the same GRPO step, bf16 with activation checkpointing, on randomly initialised
#      Llama-shaped models of growing size (LADDER), until one does not fit: the largest
#      model that trains on this GPU, with its memory and MFU.
# Prints a Markdown table (and keeps every file under $OUT).
#
# Nothing is built there (no Rust toolchain): build here and carry the binaries —
#     cargo build --release --features cuda -p rlpt-pipeline         # target/release/rlpt
#     cargo bench --features cuda -p rlpt-lm --bench devices --no-run  # target/release/deps/devices-*
# with data-samples/cache/models fetched (python3 data-samples/fetch.py models). Then
#     bench/gpu.sh                 # cuda:0
#     bench/gpu.sh cpu             # the same steps on the CPU, small: a check of this script
# Environment: RLPT, DEVICES (the binaries), OUT, STEPS (GRPO steps, 5), LADDER
# ("1b 3b 8b"), PEAK_TFLOPS (the GPU's dense bf16 peak for MFU: 989 for an H100/H200
# SXM), F32_PEAK_TFLOPS (its f32 peak without tensor cores: 67).
set -euo pipefail
cd "$(dirname "$0")/.."

device=${1:-cuda:0}
rlpt=${RLPT:-target/release/rlpt}
devices=${DEVICES:-$(ls -t target/release/deps/devices-* 2>/dev/null | grep -v '\.d$' | head -n 1)}
out=${OUT:-/tmp/rlpt-gpu}
steps=${STEPS:-5}
ladder=${LADDER:-1b 3b 8b}
peak_bf16=${PEAK_TFLOPS:-989}
peak_f32=${F32_PEAK_TFLOPS:-67}
gguf=data-samples/cache/models/SmolLM2-135M-Instruct.Q4_1.gguf
docs=173
if [ "$device" = cpu ]; then
    steps=2 ladder=${LADDER:-tiny} docs=12
fi
for needed in "$rlpt" "$devices" "$gguf"; do
    [ -e "$needed" ] || { echo "missing: $needed (see the top of $0)" >&2; exit 1; }
done
rm -rf "$out" && mkdir -p "$out"

# The CUDA runtime libraries of the machine's Python wheels (nvidia-*-cu12/13).
if [ "$device" != cpu ]; then
    libs=$(python3 - <<'EOF'
import glob, site
print(":".join(sorted(glob.glob(f"{site.getsitepackages()[0]}/nvidia/*/lib"))))
EOF
)
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi

# Peak memory of a command: the GPU's used memory sampled every 100 ms (minus what was
# used before it), or its peak RSS on the CPU. Prints MiB to $out/$1.peak.
peak() {
    local name=$1; shift
    local status=0
    if [ "$device" = cpu ]; then
        /usr/bin/time -f %M -o "$out/$name.rss" "$@" || status=$?
        echo $(( $(tail -n 1 "$out/$name.rss") / 1024 )) > "$out/$name.peak"
        return $status
    fi
    local before
    before=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$out/$name.mem" &
    local sampler=$!
    "$@" || status=$?
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    sort -n "$out/$name.mem" | tail -n 1 | awk -v b="$before" '{print $1 - b}' > "$out/$name.peak"
    return $status
}

# Step, rollout and update seconds (medians after the first step), update tokens and
# MFU of a training run's metrics.jsonl; $2: parameters, $3: peak TFLOP/s.
train_figures() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, statistics, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
later = lines[1:] or lines
med = lambda key: statistics.median(l["timing"][key] for l in later)
tokens = statistics.median(l["trained_tokens"] + l["update_prompt_tokens"] for l in later)
update = med("update_s")
mfu = 6 * float(sys.argv[2]) * tokens / update / (float(sys.argv[3]) * 1e12)
print(f"{med('rollout_s') + update:.2f} s | {med('rollout_s'):.2f} s | {update:.2f} s | "
      f"{tokens:.0f} | {100 * mfu:.1f}%")
EOF
}

# Parameters of a Hugging Face config.json (Llama shape, tied embeddings).
parameters() {
    python3 - "$1" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
h, f, layers, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
d = c.get("head_dim", h // c["num_attention_heads"])
q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
print(v * h + layers * (2 * h * q + 2 * h * kv + 3 * h * f + 2 * h) + h)
EOF
}

echo "== CPU vs $device: entropies and greedy generations"
"$devices" "$device" | tee "$out/devices.txt"

echo "== entropy tagging on $device"
head -n "$docs" data-samples/wiki-stem/stem-en.jsonl > "$out/docs.jsonl"
"$rlpt" -q ingest --input "$out/docs.jsonl" --output "$out/documents"
"$rlpt" -q segment --input "$out/documents" --output "$out/triples" \
    --tokenizer data-samples/tokenizers/smollm2-135m.json.gz
started=$(date +%s.%N)
peak entropy "$rlpt" -q entropy --input "$out/triples" --output "$out/tagged" --model "$gguf" --device "$device"
ended=$(date +%s.%N)
tokens_per_s=$(python3 - "$out/tagged" "$started" "$ended" <<'EOF'
import glob, json, sys
tokens = sum(json.load(open(f))["counters"]["forward_tokens"]
             for f in glob.glob(f"{sys.argv[1]}/_manifest/unit-*.json"))
print(f"{tokens / (float(sys.argv[3]) - float(sys.argv[2])):.0f} tokens/s ({tokens} tokens, whole process)")
EOF
)
entropy_row="| entropy tagging (SmolLM2, f32) | $tokens_per_s | $(cat "$out/entropy.peak") MiB |"

# One GRPO run: $1 name, $2 model, $3 dtype; the next-token task only (no judge model
# beside the policy), 8 prompts x 8 completions of <= 32 tokens, every group trained
# on (no dynamic sampling: an untrained model's rewards are all 0, and the update's
# cost does not depend on them).
grpo() {
    cat > "$out/$1.toml" <<EOF
model = "$(realpath "$2")"
input = "$(realpath data-samples/triples/train.parquet)"
steps = $steps
max_prompt_tokens = 512
dtype = "$3"
[[task]]
kind = "next-token"
reward = "prefix-token"
[sampling]
temperature = 1.0
max_tokens = 32
[grpo]
group_size = 8
prompts_per_step = 8
micro_batch = 64
dynamic_sampling = false
[optim]
lr = 1e-6
[checkpoint]
every = 1000000
EOF
    peak "$1" "$rlpt" -q train --config "$out/$1.toml" --output "$out/$1" --device "$device"
}

rows=()
for dtype in f32 bf16; do
    echo "== GRPO on SmolLM2, $dtype"
    grpo "smollm2-$dtype" "$gguf" "$dtype"
    peak_tflops=$([ "$dtype" = bf16 ] && echo "$peak_bf16" || echo "$peak_f32")
    rows+=("| SmolLM2-135M, $dtype | $(train_figures "$out/smollm2-$dtype/metrics.jsonl" 134515008 "$peak_tflops") | $(cat "$out/smollm2-$dtype.peak") MiB |")
done

# Llama-3-shaped models with SmolLM2's tokenizer (vocab 49,152), random weights.
shape() {
    case $1 in
        tiny) echo 256 768 4 4 2 ;;
        1b) echo 2048 8192 16 32 8 ;;
        3b) echo 3072 8192 28 24 8 ;;
        8b) echo 4096 14336 32 32 8 ;;
    esac
}
"$rlpt" -q tokenizer export --tokenizer "$gguf" --output "$out/tokenizer.json"
largest=none
for size in $ladder; do
    read -r hidden ffn layers heads kv_heads <<< "$(shape "$size")"
    dir="$out/model-$size"
    mkdir -p "$dir"
    cat > "$out/llama-$size.json" <<EOF
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
 "hidden_size": $hidden, "intermediate_size": $ffn, "num_hidden_layers": $layers,
 "num_attention_heads": $heads, "num_key_value_heads": $kv_heads, "rms_norm_eps": 1e-05,
 "rope_theta": 500000.0, "max_position_embeddings": 8192, "tie_word_embeddings": true,
 "bos_token_id": 1, "eos_token_id": 2}
EOF
    echo "== GRPO on a $size Llama shape, bf16 + activation checkpointing"
    "$rlpt" -q model init --config "$out/llama-$size.json" --seed 0 --output "$dir"
    cp "$out/tokenizer.json" "$dir/tokenizer.json"
    if ! grpo "llama-$size" "$dir" bf16; then
        rows+=("| Llama shape $size, bf16 | did not fit | — | — | — | — | $(cat "$out/llama-$size.peak") MiB |")
        rm -rf "$dir"
        break
    fi
    largest=$size
    rows+=("| Llama shape $size ($(parameters "$out/llama-$size.json") parameters), bf16 | $(train_figures "$out/llama-$size/metrics.jsonl" "$(parameters "$out/llama-$size.json")" "$peak_bf16") | $(cat "$out/llama-$size.peak") MiB |")
    rm -rf "$dir" "$out/llama-$size"/step-*
done

echo
echo "$device: $(tail -n 1 "$out/devices.txt")"
echo
echo "| what | throughput | peak memory |"
echo "|---|---|---|"
echo "$entropy_row"
echo
echo "| GRPO step ($steps steps, 8 x 8 completions <= 32 tokens) | step | rollout | update | update tokens | update MFU | peak memory |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "largest model that trained: $largest"

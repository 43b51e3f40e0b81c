#!/usr/bin/env bash
# `scalewise generate`: text from the tiny reference checkpoints (HF-named weights of a tiny
# GPT-2 and a tiny Llama, model shape in their metadata, vocab 256 = the byte tokenizer), the
# timing line, determinism per seed, a batch from a prompt file equal to single prompts
# (greedy), int8, bf16 and fp16 weights, JSON, and the errors: bad flags and a missing or
# mismatched checkpoint exit 2.
. "$(dirname "$0")/lib.sh"

CK=tests/data/reference/tiny_gpt2.safetensors
CKL=tests/data/reference/tiny_llama.safetensors
TIMING='^prefill: [0-9.]+ tok/s, decode: [0-9.]+ tok/s, TTFT [0-9.]+ ms$'

expect_rc 0 "generate" -- $SW generate --checkpoint $CK --prompt "Hello" --max-new-tokens 16
expect_grep '^Hello' "$TMP/out" "text starts with the prompt"
expect_grep "$TIMING" "$TMP/out" "timing line"
[ "$(wc -l <"$TMP/out")" -ge 2 ] && ok || fail "generate printed $(wc -l <"$TMP/out") lines"

# Same seed: same text; another seed: other text (16 draws from a near-flat 256-way softmax).
$SW generate --checkpoint $CK --prompt "Hello" --seed 5 --max-new-tokens 16 | head -n -1 >"$TMP/s5a"
$SW generate --checkpoint $CK --prompt "Hello" --seed 5 --max-new-tokens 16 | head -n -1 >"$TMP/s5b"
$SW generate --checkpoint $CK --prompt "Hello" --seed 6 --max-new-tokens 16 | head -n -1 >"$TMP/s6"
cmp -s "$TMP/s5a" "$TMP/s5b" && ok || fail "same seed gave different text"
cmp -s "$TMP/s5a" "$TMP/s6" && fail "seeds 5 and 6 gave the same text" || ok

# A batch from a prompt file (different lengths) equals each prompt alone, greedy.
printf 'Hi\nThe quick brown fox\n\nabc\n' >"$TMP/prompts.txt"
expect_rc 0 "batch" -- $SW generate --checkpoint $CK --prompt-file "$TMP/prompts.txt" \
  --temperature 0 --max-new-tokens 12
cp "$TMP/out" "$TMP/batch"
[ "$(grep -c '^--- sequence' "$TMP/batch")" -eq 3 ] && ok || fail "batch: expected 3 sequences"
expect_grep "$TIMING" "$TMP/batch" "batch timing line"
n=0
for p in "Hi" "The quick brown fox" "abc"; do
  n=$((n + 1))
  $SW generate --checkpoint $CK --prompt "$p" --temperature 0 --max-new-tokens 12 | head -n -1 >"$TMP/one"
  awk -v s="--- sequence $n" '$0 ~ "^--- sequence" {on = ($0 == s); next} on' "$TMP/batch" \
    | grep -v '^prefill: ' >"$TMP/part"
  cmp -s "$TMP/one" "$TMP/part" && ok || fail "batch row $n differs from '$p' alone: $(cat "$TMP/part") vs $(cat "$TMP/one")"
done

# int8, the Llama checkpoint, an explicit --model, top-k/top-p, threads, JSON.
expect_rc 0 "int8" -- $SW generate --checkpoint $CK --prompt "Hello" --int8 --max-new-tokens 8
expect_grep "$TIMING" "$TMP/out" "int8 timing line"
# 16-bit weights: bf16 and fp16 copies (fp16 rounds the activations too); the JSON names them.
for w in bf16 fp16; do
  expect_rc 0 "--weights $w" -- $SW generate --checkpoint $CK --prompt "Hello" --weights $w \
    --max-new-tokens 8 --format json
  expect_grep "\"weights\": \"$w\"" "$TMP/out" "$w named in the JSON"
done
expect_rc 2 "--weights int4" -- $SW generate --checkpoint $CK --prompt hi --weights int4
expect_grep "expected fp32, bf16, fp16 or int8" "$TMP/err" "int4 refused with the choices"
expect_rc 2 "--weights fp8" -- $SW generate --checkpoint $CK --prompt hi --weights fp8
expect_rc 0 "llama" -- $SW generate --checkpoint $CKL --prompt "Hello" --top-k 20 --top-p 0.9 \
  --temperature 0.8 --max-new-tokens 8 --threads 1
expect_grep '^Hello' "$TMP/out" "llama text"
expect_rc 0 "--model" -- $SW generate --checkpoint $CK --model tiny-gpt2 --prompt "Hi" --max-new-tokens 4
expect_rc 0 "json" -- $SW generate --checkpoint $CK --prompt "Hello" --max-new-tokens 5 --format json
expect_grep '"stopped": "length"' "$TMP/out" "json stopped"
expect_grep '"decode_tokens_per_s": [0-9]' "$TMP/out" "json decode rate"
expect_grep '"prompt": "Hello"' "$TMP/out" "json prompt"

# Help.
expect_rc 0 "help" -- $SW help generate
expect_grep 'max-new-tokens' "$TMP/out" "help text"

# Bad flags: exit 2 naming the problem.
expect_rc 2 "unknown flag" -- $SW generate --checkpoint $CK --prompt hi --top-q 3
expect_grep "did you mean '--top-k'" "$TMP/err" "suggestion"
expect_rc 2 "top-p 0" -- $SW generate --checkpoint $CK --prompt hi --top-p 0
expect_rc 2 "temperature" -- $SW generate --checkpoint $CK --prompt hi --temperature -1
expect_grep 'temperature' "$TMP/err" "temperature named"
expect_rc 2 "max-new-tokens 0" -- $SW generate --checkpoint $CK --prompt hi --max-new-tokens 0
expect_rc 2 "no checkpoint flag" -- $SW generate --prompt hi
expect_grep 'checkpoint FILE is required' "$TMP/err" "checkpoint required"
expect_rc 2 "no prompt" -- $SW generate --checkpoint $CK
expect_rc 2 "value missing" -- $SW generate --checkpoint $CK --prompt
expect_rc 2 "format yaml" -- $SW generate --checkpoint $CK --prompt hi --format yaml
expect_rc 2 "bad tokenizer" -- $SW generate --checkpoint $CK --prompt hi --tokenizer bpe
expect_rc 2 "gpt2 without files" -- $SW generate --checkpoint $CK --prompt hi --tokenizer gpt2
expect_rc 2 "too long" -- $SW generate --checkpoint $CK --prompt hi --max-new-tokens 100
expect_grep 'max_pos' "$TMP/err" "too long names max_pos"

# Missing, metadata-less and mismatched checkpoints.
expect_rc 2 "missing checkpoint" -- $SW generate --checkpoint "$TMP/none.safetensors" --prompt hi
expect_grep 'none\.safetensors' "$TMP/err" "missing file named"
h='{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
printf "\\x$(printf %02x ${#h})\\x00\\x00\\x00\\x00\\x00\\x00\\x00%s\\x00\\x00\\x00\\x00" "$h" \
  >"$TMP/bare.safetensors"
expect_rc 2 "no metadata" -- $SW generate --checkpoint "$TMP/bare.safetensors" --prompt hi
expect_grep 'give --model' "$TMP/err" "no metadata hint"
expect_rc 2 "shape mismatch" -- $SW generate --checkpoint $CK --model tiny-llama --prompt hi --max-new-tokens 4
expect_grep 'tiny_gpt2\.safetensors' "$TMP/err" "mismatch names the file"

cli_finish

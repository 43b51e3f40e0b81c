#!/usr/bin/env bash
# `scalewise data`: prepare the bundled corpus with the byte tokenizer and with the GPT-2 BPE
# fixture, check meta.yaml and `data info` against the corpus, then the error paths: bad flags
# and sub-commands exit 2, a missing input file exits 2 and is named, a corrupted shard is
# refused by `data info` with its file named.
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."

CORPUS=data/tinyshakespeare.txt
SIZE=$(wc -c <"$CORPUS")

# ---- byte tokenizer
expect_rc 0 "prepare byte" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/byte"
expect_grep "train .*train.bin" "$TMP/out" "prepare summary names train.bin"
for f in train.bin val.bin meta.yaml; do
  if [ -f "$TMP/byte/$f" ]; then ok; else fail "prepare byte: $f not written"; fi
done
META="$TMP/byte/meta.yaml"
expect_grep "^tokenizer: byte$" "$META" "meta tokenizer"
expect_grep "^vocab_size: 256$" "$META" "meta vocab"
expect_grep "^  size_bytes: $SIZE$" "$META" "meta source size"
expect_grep "^  path: $CORPUS$" "$META" "meta source path"
expect_grep "^  fnv1a64: \"0x[0-9a-f]{16}\"$" "$META" "meta source hash"
# byte tokens: train + val = corpus bytes, val = ceil(0.1 * bytes)
train_n=$(sed -n '/^train:/,/^val:/s/^  tokens: //p' "$META")
val_n=$(sed -n '/^val:/,$s/^  tokens: //p' "$META")
if [ $((train_n + val_n)) -eq "$SIZE" ]; then ok; else fail "train $train_n + val $val_n != $SIZE"; fi
want_val=$(( (SIZE + 9) / 10 ))
if [ "$val_n" -eq "$want_val" ]; then ok; else fail "val tokens $val_n, expected $want_val"; fi
# shard sizes: 64-byte header + 2 bytes per token
tsize=$(wc -c <"$TMP/byte/train.bin")
if [ "$tsize" -eq $((64 + 2 * train_n)) ]; then ok; else fail "train.bin is $tsize bytes"; fi

expect_rc 0 "info train" -- "$SW" data info "$TMP/byte/train.bin"
expect_grep "^tokens +$train_n$" "$TMP/out" "info token count"
expect_grep "^token_bytes +2$" "$TMP/out" "info width"
expect_grep "verified" "$TMP/out" "info checksum"
expect_rc 0 "info json" -- "$SW" data info --format json "$TMP/byte/val.bin"
expect_grep "\"tokens\": $val_n," "$TMP/out" "info json tokens"
expect_rc 0 "prepare yaml output" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/byte2" \
  --val-fraction=0.05 --format yaml
expect_grep "^val_tokens: $(( (SIZE + 19) / 20 ))$" "$TMP/out" "val fraction 0.05"

# ---- GPT-2 BPE with the test fixture
expect_rc 0 "prepare gpt2" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/gpt2" \
  --tokenizer gpt2 --vocab tests/data/bpe/vocab.json --merges tests/data/bpe/merges.txt
expect_grep "^tokenizer: gpt2$" "$TMP/gpt2/meta.yaml" "gpt2 meta tokenizer"
expect_grep "^eos_id: 311$" "$TMP/gpt2/meta.yaml" "gpt2 meta eos"
expect_rc 0 "info gpt2" -- "$SW" data info "$TMP/gpt2/train.bin"
expect_grep "^vocab_size +312$" "$TMP/out" "gpt2 vocab size"

# ---- bad input: exit 2 with a clear message
expect_rc 2 "no sub-command" -- "$SW" data
expect_rc 2 "unknown sub-command" -- "$SW" data prepair
expect_grep "did you mean 'prepare'" "$TMP/err" "sub-command suggestion"
expect_rc 2 "unknown flag" -- "$SW" data prepare --inptu "$CORPUS" --out "$TMP/x"
expect_grep "did you mean '--input'" "$TMP/err" "flag suggestion"
expect_rc 2 "missing --out" -- "$SW" data prepare --input "$CORPUS"
expect_grep "needs --out" "$TMP/err" "missing --out message"
expect_rc 2 "flag without value" -- "$SW" data prepare --input
expect_rc 2 "bad tokenizer" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" --tokenizer bpe
expect_grep "unknown tokenizer 'bpe'" "$TMP/err" "bad tokenizer message"
expect_rc 2 "gpt2 without files" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" --tokenizer gpt2
expect_rc 2 "vocab with byte" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" --vocab v.json
expect_rc 2 "val fraction range" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" --val-fraction 0.7
expect_grep "val-fraction" "$TMP/err" "val fraction names the flag"
expect_rc 2 "val fraction junk" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" --val-fraction 1x
expect_rc 2 "missing input" -- "$SW" data prepare --input "$TMP/no-such.txt" --out "$TMP/x"
expect_grep "no-such.txt" "$TMP/err" "missing input is named"
if [ ! -e "$TMP/x" ]; then ok; else fail "a failed prepare created its output directory"; fi
expect_rc 2 "missing merges" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/x" \
  --tokenizer gpt2 --vocab tests/data/bpe/vocab.json --merges "$TMP/none.txt"
expect_grep "none.txt" "$TMP/err" "missing merges file is named"
: >"$TMP/empty.txt"
expect_rc 2 "empty input" -- "$SW" data prepare --input "$TMP/empty.txt" --out "$TMP/x"
expect_grep "empty" "$TMP/err" "empty input message"
expect_rc 2 "info without file" -- "$SW" data info
expect_rc 2 "info missing file" -- "$SW" data info "$TMP/none.bin"
expect_grep "none.bin" "$TMP/err" "info names the missing file"
# a corrupted shard (one token byte flipped) is refused, naming the file and the checksum
cp "$TMP/byte/val.bin" "$TMP/bad.bin"
printf '\377' | dd of="$TMP/bad.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_rc 2 "info corrupt" -- "$SW" data info "$TMP/bad.bin"
expect_grep "bad.bin.*checksum mismatch" "$TMP/err" "corrupt shard message"
expect_rc 2 "info on a text file" -- "$SW" data info "$CORPUS"
expect_grep "bad magic" "$TMP/err" "bad magic message"

# ---- I/O failure: exit 1 (the output path is a file, so no directory can be made)
expect_rc 1 "unwritable output" -- "$SW" data prepare --input "$CORPUS" --out "$TMP/empty.txt/sub"

# ---- allocation failure (fault injection): each fallible allocation of prepare and info fails
# cleanly with exit 1, the bytes named, and no half-written output
for n in 1 2 3; do
  expect_rc 1 "prepare, allocation $n fails" -- env SW_FAIL_ALLOC_AT=$n "$SW" data prepare \
    --input "$CORPUS" --out "$TMP/fa$n"
  expect_grep "cannot allocate" "$TMP/err" "allocation $n failure message"
  if [ ! -e "$TMP/fa$n/meta.yaml" ]; then ok; else fail "meta.yaml written after allocation $n failed"; fi
done
expect_rc 1 "info, allocation fails" -- env SW_FAIL_ALLOC_AT=1 "$SW" data info "$TMP/byte/train.bin"

# ---- help
expect_rc 0 "help" -- "$SW" data --help
expect_grep "data prepare" "$TMP/out" "help text"

cli_finish

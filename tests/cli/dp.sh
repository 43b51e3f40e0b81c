#!/usr/bin/env bash
# Data parallelism and ZeRO through the binary under `mpirun -np 2` (oversubscribed on the 2-core
# CI machine), tiny GPT-2, 4 steps, one thread per rank:
#  - DDP, ZeRO-1, ZeRO-2 and ZeRO-3 each give the losses and final checkpoint (weights and
#    optimizer state) of one process on the same global batch (8 sequences: 2 ranks x 2
#    micro-batches x 2 against 1 x 4 x 2). Tolerance: losses within 1e-5 relative, every F32
#    tensor within 1e-4 absolute (measured about 2e-6: only the order of float sums differs).
#    Where the sums are the same the files are byte-identical: DDP = ZeRO-1 (one reduction per
#    step), ZeRO-2 = ZeRO-3 (one per micro-batch), and 8-bit AdamW ZeRO-1 = its DDP run (the
#    shard cuts keep 8-bit blocks whole);
#  - per-rank reports: ZeRO-1 halves the optimizer bytes; ZeRO-3's weights are half the model
#    plus the non-layer weights and two layer buffers (layers gathered one at a time; with the
#    2 layers of this model that is no saving, the formula is what is checked), measured equal
#    to the advisor's estimate for the heaviest rank; communication time per step is reported;
#  - save on 2 ranks, resume on 1, and vice versa (also from the rank's own optimizer shard);
#  - `scalewise run --nproc 2`; a plan that differs between ranks is refused at start-up; a dp 2
#    plan in one process is refused with the command to use;
#  - DDP with the all-reduce overlapped with backward in 16 KiB buckets (several per layer),
#    and the same buckets after the backward: byte-identical to the one-bucket run;
#  - the mpirun command `scalewise explain` gives for the plan (its launch section) runs it.
# Skipped with one line when mpirun or the MPI plugin is absent.
. "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
REL=${SW_RELEASE:-$SW}
if ! command -v mpirun >/dev/null 2>&1; then
  echo "dp.sh: skipped: mpirun not found (install openmpi-bin and libopenmpi-dev)"
  cli_finish; exit
fi
if [ ! -f "$B/libscalewise-mpi.so" ]; then
  echo "dp.sh: skipped: $B/libscalewise-mpi.so not built (mpicc not found at build time)"
  cli_finish; exit
fi
# Open MPI's own allocations (in components it dlcloses at exit, so no suppression can name
# them) would fail LeakSanitizer: the ranks run with leak detection off; the same code paths run
# leak-checked in tests/unit/test_dp.c through an in-process world of threads.
NOLEAK="ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0"
MPI=(env "$NOLEAK" timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2)
export SCALEWISE_COMM_TIMEOUT=20

# plan NAME DP ZERO GRAD_ACCUM [OPTIMIZER] [EXTRA TRAIN KEYS]
plan() {
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: 4, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, eval_every: 4, eval_batches: 4, log_every: 1, checkpoint_every: 2, out_dir: $TMP/$1${6:+, $6}}
strategy: {device: cpu, precision: fp32, optimizer: ${5:-adamw}, micro_batch: 2, grad_accum: $4, dp: $2, zero: $3, threads: 1}
EOF
}


expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"

# 1. One process, the reference: 4 micro-batches of 2 per step.
plan single 1 0 4
expect_rc 0 "single process" -- "$REL" run "$TMP/single.yaml" --quiet

# 2. DDP and ZeRO 1-3 on two ranks: same losses and final checkpoint.
for z in 0 1 2 3; do
  plan "z$z" 2 "$z" 2
  expect_rc 0 "zero $z on 2 ranks" -- "${MPI[@]}" "$SW" run "$TMP/z$z.yaml" --quiet
  same_losses "$TMP/z$z/metrics.jsonl" "$TMP/single/metrics.jsonl" "zero $z vs one process"
  ckdiff "$TMP/single/ckpt_4.safetensors" "$TMP/z$z/ckpt_4.safetensors" 1e-4 \
    "zero $z final checkpoint vs one process"
done
cmp -s "$TMP/z0/ckpt_4.safetensors" "$TMP/z1/ckpt_4.safetensors" && ok ||
  fail "DDP and ZeRO-1 checkpoints are not byte-identical"
cmp -s "$TMP/z2/ckpt_4.safetensors" "$TMP/z3/ckpt_4.safetensors" && ok ||
  fail "ZeRO-2 and ZeRO-3 checkpoints are not byte-identical"
expect_grep '"comm_ms": [0-9]' "$TMP/z1/metrics.jsonl" "metrics.jsonl has the comm time"
[ "$(wc -l <"$TMP/z1/metrics.jsonl")" -eq 4 ] && ok || fail "metrics.jsonl: not one line per step"
for f in ckpt_4.rank0.safetensors ckpt_4.rank1.safetensors report.rank0.yaml report.rank1.yaml; do
  [ -f "$TMP/z1/$f" ] && ok || fail "zero 1 run has no $f"
done

# 3. 8-bit AdamW: the ZeRO-1 shards update exactly as the unsharded DDP optimizer.
plan d8 2 0 2 adamw8bit
plan z8 2 1 2 adamw8bit
expect_rc 0 "8-bit DDP" -- "${MPI[@]}" "$SW" run "$TMP/d8.yaml" --quiet
expect_rc 0 "8-bit ZeRO-1" -- "${MPI[@]}" "$SW" run "$TMP/z8.yaml" --quiet
cmp -s "$TMP/d8/ckpt_4.safetensors" "$TMP/z8/ckpt_4.safetensors" && ok ||
  fail "8-bit ZeRO-1 checkpoint differs from 8-bit DDP"

# 4. Per-rank memory: halves, and measured = predicted for the sharded categories.
"$PY" - "$TMP" >"$TMP/mem" 2>&1 <<'PY' && ok || fail "per-rank reports: $(tail -n 3 "$TMP/mem")"
import sys, yaml, json, struct, re
t = sys.argv[1]
# Layer sizes from the checkpoint's h.<i>.* tensors (every layer is the same size).
b = open("%s/z3/ckpt_4.safetensors" % t, "rb").read()
hdr = json.loads(b[8:8 + struct.unpack('<Q', b[:8])[0]]); hdr.pop('__metadata__', None)
layer_n = sum(v['data_offsets'][1] - v['data_offsets'][0] for k, v in hdr.items()
              if k.startswith('h.0.')) // 4
n_layers = len({k.split('.')[1] for k in hdr if re.match(r'h\.\d+\.', k)})
rep = {z: [yaml.safe_load(open("%s/z%d/report.rank%d.yaml" % (t, z, r))) for r in (0, 1)]
       for z in (0, 1, 3)}
m = lambda z, r, k: rep[z][r]["measured"]["per_device_bytes"][k]
p = lambda z, r, k: rep[z][r]["predicted"]["per_device_bytes"][k]
for r in (0, 1):
    assert 0.49 < m(1, r, "optimizer") / m(0, r, "optimizer") <= 0.51, ("zero1 optimizer", r)
    # ZeRO-3: this rank's half of the region (P = weights of zero 0 / 4, 64-byte aligned), the
    # non-layer weights and two layer buffers.
    P = m(0, r, "weights") // 4
    want = 4 * (P / 2 + (P - n_layers * layer_n) + 2 * layer_n)
    assert abs(m(3, r, "weights") - want) <= 256, ("zero3 weights", r, m(3, r, "weights"), want)
    for z in (0, 1, 3):
        d = rep[z][r]["distributed"]
        assert d["rank"] == r and d["world"] == 2 and d["comm_s_per_step"] > 0, d
        assert d["predicted_comm_s_per_step"] > 0 and d["link"] == "shared memory", d
        for k in ("weights", "gradients", "optimizer", "workspace"):
            assert m(z, r, k) <= p(z, r, k), (z, r, k, m(z, r, k), p(z, r, k))
            if r == 0:  # the heaviest rank with an even split
                assert m(z, 0, k) == p(z, 0, k), (z, k, m(z, 0, k), p(z, 0, k))
print("ok")
PY

# 5. Save on 2 ranks, resume on 1; save on 1, resume on 2 (ZeRO-3); same world from the shards.
expect_rc 0 "resume on 1 rank" -- "$REL" run "$TMP/single.yaml" --quiet \
  --resume "$TMP/z1/ckpt_2.safetensors" --out "$TMP/r1"
ckdiff "$TMP/z1/ckpt_4.safetensors" "$TMP/r1/ckpt_4.safetensors" 1e-4 "saved on 2, resumed on 1"
expect_rc 0 "resume on 2 ranks" -- "${MPI[@]}" "$SW" run "$TMP/z3.yaml" \
  --resume "$TMP/single/ckpt_2.safetensors" --out "$TMP/r2"
expect_grep "optimizer from the consolidated state" "$TMP/err" "resume on 2: consolidated state"
ckdiff "$TMP/single/ckpt_4.safetensors" "$TMP/r2/ckpt_4.safetensors" 1e-4 "saved on 1, resumed on 2"
expect_rc 0 "resume on 2 ranks from the shards" -- "${MPI[@]}" "$SW" run "$TMP/z1.yaml" \
  --resume "$TMP/z1/ckpt_2.safetensors" --out "$TMP/r3"
expect_grep "optimizer from this rank's shard file" "$TMP/err" "resume on 2: shard files used"
cmp -s "$TMP/z1/ckpt_4.safetensors" "$TMP/r3/ckpt_4.safetensors" && ok ||
  fail "resume from the shards differs from the uninterrupted run"

# 6. The one-node launcher, a plan that differs between ranks, dp 2 in one process.
expect_rc 0 "run --nproc 2" -- env "$NOLEAK" "$SW" run --nproc 2 "$TMP/z0.yaml" --out "$TMP/np" --quiet
cmp -s "$TMP/z0/ckpt_4.safetensors" "$TMP/np/ckpt_4.safetensors" && ok ||
  fail "--nproc 2 differs from mpirun -np 2"
plan other 2 0 2 adamw "weight_decay: 0.05"
sed -i "s|out_dir: $TMP/other|out_dir: $TMP/z0b|" "$TMP/other.yaml"
env "$NOLEAK" timeout 60 mpirun --allow-run-as-root --oversubscribe -np 1 "$SW" run "$TMP/z0.yaml" \
  --out "$TMP/z0b" : -np 1 "$SW" run "$TMP/other.yaml" >"$TMP/out" 2>"$TMP/err"; rc=$?
[ "$rc" -ne 0 ] && ok || fail "ranks with different plans: exit 0"
expect_grep "plan mismatch between ranks" "$TMP/err" "ranks with different plans: message"
expect_rc 2 "dp 2 in one process" -- "$SW" run "$TMP/z1.yaml"
expect_grep "--nproc 2" "$TMP/err" "dp 2 in one process: the command to use"

# 7. DDP overlapped with backward (small buckets: the hook reduces most of them during the last
# backward) and not: the same bytes as the default run.
for ov in 1 0; do
  expect_rc 0 "ddp buckets of 16 KiB, overlap $ov" -- env SCALEWISE_DDP_BUCKET_BYTES=16384 \
    SCALEWISE_DDP_OVERLAP=$ov "${MPI[@]}" "$SW" run "$TMP/z0.yaml" --out "$TMP/ov$ov" --quiet
  cmp -s "$TMP/z0/ckpt_4.safetensors" "$TMP/ov$ov/ckpt_4.safetensors" && ok ||
    fail "DDP with 16 KiB buckets, overlap $ov, differs from the one-bucket run"
done
expect_rc 2 "bad SCALEWISE_DDP_OVERLAP" -- env SCALEWISE_DDP_OVERLAP=yes "${MPI[@]}" "$SW" run \
  "$TMP/z0.yaml" --out "$TMP/ovbad" --quiet
expect_grep "SCALEWISE_DDP_OVERLAP='yes'" "$TMP/err" "bad SCALEWISE_DDP_OVERLAP: message"

# 8. The launch commands of a CPU plan: --nproc and mpirun; the mpirun one runs the plan.
expect_rc 0 "explain lists the launch commands" -- "$SW" explain "$TMP/z0.yaml"
expect_grep "nproc     scalewise run --nproc 2 $TMP/z0.yaml" "$TMP/out" "explain: the --nproc command"
expect_rc 0 "explain json" -- "$SW" explain "$TMP/z0.yaml" --format json
cmd=$(jq -r '.launch.mpirun' "$TMP/out")
case "$cmd" in
  "mpirun -np 2 --bind-to none scalewise run $TMP/z0.yaml") ok ;;
  *) fail "launch.mpirun of a CPU dp 2 plan: $cmd" ;;
esac
# As written, with this machine's needs (root, 2 cores) and this build's binary.
read -r -a argv <<<"${cmd/#mpirun /mpirun --allow-run-as-root --oversubscribe }"
for i in "${!argv[@]}"; do [ "${argv[$i]}" = scalewise ] && argv[$i]=$SW; done
expect_rc 0 "the plan's mpirun command" -- env "$NOLEAK" timeout 60 "${argv[@]}" --out "$TMP/lc" --quiet
cmp -s "$TMP/z0/ckpt_4.safetensors" "$TMP/lc/ckpt_4.safetensors" && ok ||
  fail "the plan's mpirun command trains differently from mpirun -np 2"
cli_finish

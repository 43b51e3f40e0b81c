#!/usr/bin/env bash
# A torchrun-style launch on the CPU: processes started by hand with torchrun's variables (RANK,
# WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=<free port>) and
# a PATH holding only Open MPI's ompi-server, so neither torchrun nor mpirun (nor ssh) is needed.
# Rank 0 starts ompi-server, the TCP rendezvous hands out its address, and the ranks join one MPI
# communicator (executor/comm.h); the bytes move through MPI.
#  - DDP and ZeRO-1 on 2 ranks give the losses and final checkpoint of one process on the same
#    global batch, within dp.sh's tolerance (losses 1e-5 relative, every F32 tensor 1e-4
#    absolute), and DDP is byte-identical to the same plan under mpirun -np 2 (when installed);
#  - rank 0 says which engine and launcher it runs on;
#  - a peer that never arrives: rank 0 exits 1 within the timeout naming the missing rank;
#  - no ompi-server on PATH: both ranks exit non-zero at once, saying what is missing;
#  - a rank killed mid-run: the other exits non-zero with a message within 30 s;
#  - ompi-server is never left behind, nor its scratch directory.
# Skipped with one line when ompi-server or the MPI plugin is absent.
. "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
REL=${SW_RELEASE:-$SW}
if ! command -v ompi-server >/dev/null 2>&1; then
  echo "dp_torchrun.sh: skipped: ompi-server not found (install openmpi-bin)"
  cli_finish; exit
fi
if [ ! -f "$B/libscalewise-mpi.so" ]; then
  echo "dp_torchrun.sh: skipped: $B/libscalewise-mpi.so not built (mpicc not found at build time)"
  cli_finish; exit
fi
# As in dp.sh: Open MPI's own allocations would fail LeakSanitizer.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
export SCALEWISE_COMM_TIMEOUT=20
mkdir -p "$TMP/bin"
ln -s "$(command -v ompi-server)" "$TMP/bin/ompi-server"
mkdir -p "$TMP/nobin"

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
servers() { pgrep -x ompi-server | wc -l; }
# no_server_left WHAT: the number of ompi-server processes is back to the baseline within 5 s
no_server_left() {
  for _ in $(seq 50); do [ "$(servers)" -le "$base" ] && { ok; return; }; sleep 0.1; done
  fail "$1: ompi-server left running: $(pgrep -a -x ompi-server)"
}
base=$(servers)
dirs() { find /tmp -maxdepth 1 -name 'scalewise-ompi-*' 2>/dev/null | wc -l; }
base_dirs=$(dirs)

# plan NAME DP ZERO GRAD_ACCUM [STEPS]
plan() {
  cat >"$TMP/$1.yaml" <<EOF
scalewise_plan: 1
name: $1
task: train
hardware: {profile: cpu-avx2-2c}
model: {profile: tiny-gpt2}
data: {path: $TMP/data, tokenizer: byte, val_fraction: 0.1}
train: {steps: ${5:-4}, seq: 32, lr: 3.0e-3, min_lr: 3.0e-4, warmup_steps: 2, grad_clip: 1.0, eval_every: 4, eval_batches: 4, log_every: 1, checkpoint_every: 2, out_dir: $TMP/$1}
strategy: {device: cpu, precision: fp32, optimizer: adamw, micro_batch: 2, grad_accum: $4, dp: $2, zero: $3, threads: 1}
EOF
}

# torch WORLD BINDIR ARGS...: WORLD processes of `scalewise run ARGS`, started last rank first
# (the peers must wait for rank 0), each with torchrun's variables and PATH=BINDIR; waits for
# all. Rank r's exit status is in $TMP/rc<r>, its output in $TMP/out<r> and $TMP/err<r>.
torch() {
  local world=$1 bindir=$2; shift 2
  local port; port=$(free_port)
  local pids=() r
  for ((r = world - 1; r >= 0; r--)); do
    timeout 60 env PATH="$bindir" RANK=$r WORLD_SIZE="$world" LOCAL_RANK=$r \
      LOCAL_WORLD_SIZE="$world" MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" \
      "$SW" run "$@" >"$TMP/out$r" 2>"$TMP/err$r" &
    pids[r]=$!
  done
  for ((r = 0; r < world; r++)); do wait "${pids[r]}"; echo $? >"$TMP/rc$r"; done
}

# both_ok WHAT: every rank of the last torch run exited 0
both_ok() {
  if [ "$(cat "$TMP/rc0")" -eq 0 ] && [ "$(cat "$TMP/rc1")" -eq 0 ]; then ok; else
    fail "$1: exit $(cat "$TMP/rc0") / $(cat "$TMP/rc1"): $(tail -n 3 "$TMP/err0" "$TMP/err1")"; fi
}

expect_rc 0 "data prepare" -- "$REL" data prepare --input data/tinyshakespeare.txt --out "$TMP/data"
plan single 1 0 4
expect_rc 0 "single process" -- "$REL" run "$TMP/single.yaml" --quiet

# 1. DDP and ZeRO-1 on two torchrun-style ranks, with neither torchrun nor mpirun on PATH.
[ ! -e "$TMP/bin/torchrun" ] && [ ! -e "$TMP/bin/mpirun" ] && ok || fail "PATH is not minimal"
command -v torchrun >/dev/null 2>&1 || echo "dp_torchrun.sh: note: torchrun is not installed here"
for z in 0 1; do
  plan "z$z" 2 "$z" 2
  torch 2 "$TMP/bin" "$TMP/z$z.yaml"
  both_ok "zero $z, torchrun-style"
  same_losses "$TMP/z$z/metrics.jsonl" "$TMP/single/metrics.jsonl" "zero $z (torchrun-style) vs one process"
  ckdiff "$TMP/single/ckpt_4.safetensors" "$TMP/z$z/ckpt_4.safetensors" 1e-4 \
    "zero $z (torchrun-style) final checkpoint vs one process"
  [ "$z" -eq 0 ] && expect_grep "data parallel: 2 processes \(mpi, torchrun\), DDP" "$TMP/err0" \
    "rank 0 names engine and launcher"
done
[ -f "$TMP/z1/report.rank1.yaml" ] && ok || fail "zero 1 torchrun-style run has no report.rank1.yaml"
no_server_left "after the runs"
if command -v mpirun >/dev/null 2>&1; then
  expect_rc 0 "DDP under mpirun -np 2" -- timeout 60 mpirun --allow-run-as-root --oversubscribe \
    -np 2 "$SW" run "$TMP/z0.yaml" --out "$TMP/mp" --quiet
  cmp -s "$TMP/z0/ckpt_4.safetensors" "$TMP/mp/ckpt_4.safetensors" && ok ||
    fail "torchrun-style DDP differs from mpirun -np 2"
fi

# 2. A peer that never arrives: rank 0 gives up after the timeout, naming it.
start=$SECONDS
expect_rc 1 "rank 0 alone" -- timeout 60 env SCALEWISE_COMM_TIMEOUT=2 PATH="$TMP/bin" RANK=0 \
  WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT="$(free_port)" "$SW" run "$TMP/z0.yaml" --quiet
[ $((SECONDS - start)) -lt 15 ] && ok || fail "rank 0 alone: took $((SECONDS - start)) s"
expect_grep "only 1 of 2 ranks arrived within 2 s \(missing: 1\)" "$TMP/err" "rank 0 alone: message"
no_server_left "rank 0 alone"

# 3. No ompi-server: every rank stops at once and says what is missing.
start=$SECONDS
torch 2 "$TMP/nobin" "$TMP/z0.yaml" --quiet
[ "$(cat "$TMP/rc0")" -ne 0 ] && [ "$(cat "$TMP/rc1")" -ne 0 ] && ok ||
  fail "no ompi-server: exit $(cat "$TMP/rc0") / $(cat "$TMP/rc1")"
[ $((SECONDS - start)) -lt 15 ] && ok || fail "no ompi-server: took $((SECONDS - start)) s"
expect_grep "needs Open MPI's ompi-server .* not on PATH" "$TMP/err0" "no ompi-server: rank 0"
expect_grep "rank 0: a torchrun-style launch on the CPU needs Open MPI's ompi-server" "$TMP/err1" \
  "no ompi-server: rank 1 hears rank 0's reason"

# 4. Kill rank 1 mid-run: rank 0 exits non-zero with a message within 30 s.
plan long 2 0 2 100000
start=$SECONDS
port=$(free_port)
# rank 1 without `timeout`, so that $! is scalewise itself (env execs it)
env SCALEWISE_COMM_TIMEOUT=5 PATH="$TMP/bin" RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 \
  MASTER_PORT="$port" "$SW" run "$TMP/long.yaml" --quiet >"$TMP/out1" 2>"$TMP/err1" &
pid[1]=$!
timeout 60 env SCALEWISE_COMM_TIMEOUT=5 PATH="$TMP/bin" RANK=0 WORLD_SIZE=2 \
  MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$SW" run "$TMP/long.yaml" --quiet >"$TMP/out0" \
  2>"$TMP/err0" &
pid[0]=$!
for _ in $(seq 300); do
  [ -f "$TMP/long/metrics.jsonl" ] && [ "$(wc -l <"$TMP/long/metrics.jsonl")" -ge 2 ] && break
  sleep 0.1
done
kill -9 "${pid[1]}"; wait "${pid[1]}" 2>/dev/null
wait "${pid[0]}"; rc=$?; took=$((SECONDS - start))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$took" -lt 30 ]; then ok; else
  fail "rank 1 killed: rank 0 exit $rc after $took s"; fi
expect_grep "did not complete in 5 s \(a peer died or hung\)|disconnected|rank 0 of 2" "$TMP/err0" \
  "rank 1 killed: rank 0's message (rank 1: $(tail -n 2 "$TMP/err1"))"
no_server_left "rank 1 killed"
[ "$(dirs)" -le "$base_dirs" ] && ok || fail "scratch directories left in /tmp: $(ls -d /tmp/scalewise-ompi-*)"
cli_finish

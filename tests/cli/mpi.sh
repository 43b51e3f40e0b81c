#!/usr/bin/env bash
# The MPI engine under mpirun (2 and 3 ranks, oversubscribed on the 2-core CI machine):
# all-reduce, reduce-scatter, reduce to a root and all-gather shards against a serial reference
# (also with tiny chunks, so the paths for counts over 2^31 run), the plan-hash mismatch check,
# and failure handling: a rank killed with kill -9 makes the job exit non-zero within 30 s with a
# message (mpirun's, naming the dead rank; and, with mpirun told not to abort, the survivor's own
# watchdog message and exit status 1), and a rank that hangs (SIGSTOP) makes the others'
# watchdog exit with its message. Also `scalewise run --nproc 2` starting the ranks through
# mpirun. Skipped with one line when mpirun or the MPI plugin is absent.
. "$(dirname "$0")/lib.sh"
B=${SW_BUILD:-build}
case $B in /*) ;; *) B=$PWD/$B ;; esac
PROG=$B/tests/mpi_collectives
if ! command -v mpirun >/dev/null 2>&1; then
  echo "mpi.sh: skipped: mpirun not found (install openmpi-bin and libopenmpi-dev)"
  cli_finish; exit
fi
if [ ! -x "$PROG" ] || [ ! -f "$B/libscalewise-mpi.so" ]; then
  echo "mpi.sh: skipped: $B/libscalewise-mpi.so or $PROG not built (mpicc not found at build time)"
  cli_finish; exit
fi
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
# The watchdog's limit: generous for the runs that must succeed (a loaded 2-core machine once
# took more than 2 s over an oversubscribed all-reduce), 2 s where a rank dies or hangs on purpose.
export SCALEWISE_COMM_TIMEOUT=30
export MPI_TEST_PIDDIR=$TMP/pids

# run_np NP WHAT ARGS...: the job exits 0 and every rank prints "0 failed"
run_np() {
  local np=$1 what=$2; shift 2
  timeout 60 "${MPIRUN[@]}" -np "$np" "$@" >"$TMP/out" 2>"$TMP/err"; local rc=$?
  local good; good=$(grep -c 'passed, 0 failed' "$TMP/out")
  if [ "$rc" -eq 0 ] && [ "$good" -eq "$np" ]; then ok; else
    fail "$what: exit $rc, $good of $np ranks clean: $(cat "$TMP/out" "$TMP/err" | tail -n 8)"; fi
}
run_np 2 "collectives np=2" "$PROG" collectives
run_np 3 "collectives np=3" "$PROG" collectives
run_np 3 "collectives np=3, 7-element chunks" -x SCALEWISE_MPI_CHUNK_ELEMS=7 "$PROG" collectives
run_np 3 "plan hash mismatch np=3" "$PROG" consistent

# wait_pid FILE: up to 10 s for a rank to write its pid; prints it
wait_pid() {
  for _ in $(seq 100); do [ -s "$1" ] && { cat "$1"; return 0; }; sleep 0.1; done; return 1
}

# kill -9 one rank under a plain mpirun: the job ends non-zero, naming the dead rank
rm -rf "$MPI_TEST_PIDDIR"; mkdir -p "$MPI_TEST_PIDDIR"
start=$SECONDS
SCALEWISE_COMM_TIMEOUT=2 timeout 60 "${MPIRUN[@]}" -np 2 "$PROG" spin >"$TMP/out" 2>&1 &
job=$!
if pid=$(wait_pid "$MPI_TEST_PIDDIR/rank1.pid"); then
  sleep 0.3; kill -9 "$pid"; wait "$job"; rc=$?; took=$((SECONDS - start))
  if [ "$rc" -ne 0 ] && [ "$took" -lt 30 ]; then ok; else fail "kill -9: exit $rc after $took s"; fi
  expect_grep 'rank 1 .*signal 9' "$TMP/out" "kill -9: mpirun names the dead rank"
else
  fail "kill -9: rank 1 never started: $(tail -n 5 "$TMP/out")"; kill "$job"; wait "$job"
fi

# the same with mpirun told to keep going: the survivor's watchdog ends it, status 1, message
rm -rf "$MPI_TEST_PIDDIR"; mkdir -p "$MPI_TEST_PIDDIR"
start=$SECONDS
SCALEWISE_COMM_TIMEOUT=2 timeout 60 "${MPIRUN[@]}" --enable-recovery -np 2 sh -c \
  '"$0" spin; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >>"$MPI_TEST_PIDDIR/status"' \
  "$PROG" >"$TMP/out" 2>&1 &
job=$!
if pid=$(wait_pid "$MPI_TEST_PIDDIR/rank1.pid"); then
  sleep 0.3; kill -9 "$pid"; wait "$job"; took=$((SECONDS - start))
  if [ "$took" -lt 30 ]; then ok; else fail "kill -9 (recovery): took $took s"; fi
  expect_grep '^rank 0 exit 1$' "$MPI_TEST_PIDDIR/status" "kill -9 (recovery): survivor exits 1"
  expect_grep 'rank 0: collective allreduce did not complete in 2 s \(a peer died or hung\); exiting' \
    "$TMP/out" "kill -9 (recovery): watchdog message"
else
  fail "kill -9 (recovery): rank 1 never started: $(tail -n 5 "$TMP/out")"; kill "$job"; wait "$job"
fi

# a hung rank (SIGSTOP after 20 all-reduces): the other's watchdog exits 1 with its message
start=$SECONDS
SCALEWISE_COMM_TIMEOUT=2 timeout 60 "${MPIRUN[@]}" -np 2 "$PROG" stop >"$TMP/out" 2>&1; rc=$?
took=$((SECONDS - start))
if [ "$rc" -ne 0 ] && [ "$took" -lt 30 ]; then ok; else fail "hung rank: exit $rc after $took s"; fi
expect_grep 'rank 0: collective allreduce did not complete in 2 s \(a peer died or hung\); exiting' \
  "$TMP/out" "hung rank: watchdog message"

# scalewise run --nproc 2: two ranks started through mpirun; each fails on the missing plan and
# the launcher returns the job's status
expect_rc 2 "--nproc 2 with a missing plan" -- timeout 60 "$SW" run --nproc 2 "$TMP/missing.yaml"
n=$(grep -c 'missing.yaml' "$TMP/err")
if [ "$n" -eq 2 ]; then ok; else fail "--nproc 2: $n ranks reported the missing plan, expected 2"; fi
expect_rc 2 "--nproc 0" -- "$SW" run --nproc 0 "$TMP/missing.yaml"
cli_finish

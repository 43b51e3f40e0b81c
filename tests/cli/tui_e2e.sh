#!/usr/bin/env bash
# End-to-end test of the TUI in a real pseudo-terminal (tmux, 100x30): start `scalewise tui`,
# choose the tiny-gpt2 model by search, set a short run, open plan 1 in the editor, type a
# micro-batch, export the plan and check with `scalewise explain` that the YAML loads and has
# the micro-batch the screen showed; start a CPU run, wait for a loss on the run screen, try to
# quit (it asks: a run is active), stop the run (checkpoint, exit 130), resize (too small, then
# larger), quit. The TUI's stderr must stay empty (sanitizers). Skips when tmux is missing.
cd "$(dirname "$0")/../.."
source tests/cli/lib.sh
if ! command -v tmux >/dev/null 2>&1; then
  echo "tui_e2e: tmux not installed; skipped (setup.sh installs it)"
  cli_finish; exit $?
fi
SW_ABS=$(cd "$(dirname "$SW")" && pwd)/$(basename "$SW")
S="sw-tui-e2e-$$"
export TMUX_TMPDIR="$TMP"   # a private tmux server
cleanup() { tmux kill-server 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

screen() { tmux capture-pane -p -t "$S" 2>/dev/null; }
# wait_for PATTERN SECONDS DESCRIPTION
wait_for() {
  local i=0 n=$(( $2 * 10 ))
  while [ $i -lt $n ]; do
    if screen | grep -qE -- "$1"; then ok; return 0; fi
    sleep 0.1; i=$((i+1))
  done
  fail "$3: '$1' not on screen after $2 s:"; screen | sed 's/^/    /' >&2; return 1
}
keys() { tmux send-keys -t "$S" "$@"; sleep 0.15; }
bs() { local k=(); for _ in $(seq "$1"); do k+=(BSpace); done; tmux send-keys -t "$S" "${k[@]}"; }

tmux new-session -d -s "$S" -x 100 -y 30 \
  "TERM=xterm-256color '$SW_ABS' tui 2>'$TMP/tui.err'; echo \$? >'$TMP/rc'; sleep 30"
wait_for "F2 Hardware" 10 "start" || { cli_finish; exit 1; }
wait_for "measured +[0-9]" 20 "background measurement"

# workload: model by search, run steps and run directory
keys w Enter / tiny-gpt2 Enter
wait_for "tiny-gpt2 \(gpt2\)" 5 "model chosen"
keys j j j j j j j j j j Enter; bs 8; keys 40 Enter
wait_for "run steps +40" 5 "run steps set"
keys j Enter; bs 40; keys "$TMP/run" Enter
wait_for "run directory" 5 "run directory row"

# plans, plan 1 into the editor, micro-batch 4
keys p
wait_for "plan 1 of" 10 "plans listed"
keys Enter
wait_for "Strategy knobs" 5 "editor open"
keys j j j Enter; bs 10; keys 4 Enter
wait_for ">micro-batch +4 " 5 "micro-batch 4 on screen"
wait_for "tokens/s" 5 "estimate shown"

# export and check the file
keys s; bs 30; keys "$TMP/plan.yaml" Enter
wait_for "wrote plan to" 5 "export message"
expect_rc 0 "explain loads the exported plan" -- "$SW" explain "$TMP/plan.yaml" --format json
mb=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["strategy"]["micro_batch"])' "$TMP/out" 2>/dev/null)
if [ "$mb" = "4" ]; then ok; else fail "exported micro_batch is '$mb', the screen showed 4"; fi

# run, see a loss, quit asks, stop
keys g
wait_for "Run +" 5 "run screen"
wait_for "loss [0-9]+\.[0-9]+" 90 "a loss value on the run screen"
keys q
wait_for "A run is active" 5 "quit asks while a run is active"
keys n
keys S
wait_for "stopped" 60 "run stopped with a checkpoint"
wait_for "exit status 130" 5 "exit status of a stopped run"
if [ -s "$TMP/run/latest.txt" ]; then ok; else fail "no checkpoint after stop"; fi
if [ -s "$TMP/run/metrics.jsonl" ]; then ok; else fail "no metrics.jsonl"; fi

# resize: too small, then larger
tmux resize-window -t "$S" -x 70 -y 20 2>/dev/null || tmux resize-pane -t "$S" -x 70 -y 20
wait_for "too small" 5 "too-small message"
tmux resize-window -t "$S" -x 120 -y 40 2>/dev/null || tmux resize-pane -t "$S" -x 120 -y 40
wait_for "F7 Run" 5 "redraw after resize"

keys q
for _ in $(seq 50); do [ -s "$TMP/rc" ] && break; sleep 0.1; done
if [ "$(cat "$TMP/rc" 2>/dev/null)" = "0" ]; then ok; else fail "tui exit status '$(cat "$TMP/rc" 2>/dev/null)'"; fi
if [ ! -s "$TMP/tui.err" ]; then ok; else fail "tui stderr: $(head -c 2000 "$TMP/tui.err")"; fi
cli_finish

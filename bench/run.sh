#!/bin/sh
# bench/run.sh -- vlab's performance figures, as "name: value" lines.
#
# Everything is measured in this one run, side by side, and reported as
# ratios of medians (these machines are shared and noisy):
#   guest_mips        simulated instructions per host second (start-up time
#                     taken off): the sum loop, user mode, paging on, untraced
#   lua_over_vlab     lua5.4's time / vlab's time for the same sum (>= 1.0)
#   trace_slowdown    per-instruction time traced to a file / untraced, start-up
#                     taken off both (<= 3.0)
#   paging_slowdown   paging on / paging off (<= 1.25)
#   startup_over_lua  trivial scenario / `lua5.4 -e ''` (<= 1.5)
#   virt_over_native  a hot loop that never traps, in a VM / on bare metal,
#                     for each technique (<= 1.3)
#   idle_vm_kib       host memory per idle VM beyond the guest pages it
#                     touched, from 100 idle VMs (<= 64)
#   stepback_ms       the TUI: one step back near the end of a 10.5-million-step
#                     history, from the worst place between two checkpoints (<= 50)
#   stepback_history_mib  peak memory of the TUI on that run: run, history, index
#   stepback_vm_ms    the same inside a VM: one step back in the middle of a
#                     9-million-step trap-and-emulate run, checkpointed after
#                     every exit (<= 50)
#   stepback_vm_checkpoints, stepback_vm_snapshot_mib  that run's checkpoints
#                     and the memory its snapshots hold
#   stepback_vm_history_mib  peak memory of the TUI on that run
set -eu
cd "$(dirname "$0")/.."
VLAB=${VLAB:-./vlab}
N=${BENCH_N:-50000000}
NT=${BENCH_NT:-5000000}
RUNS=${BENCH_RUNS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

now() { date +%s%N; }
# time_cmd: run "$@" quietly, print elapsed nanoseconds
time_cmd() {
    t0=$(now)
    "$@" > "$TMP/out" 2> "$TMP/err" || { echo "bench: '$*' failed:" >&2; cat "$TMP/err" >&2; exit 1; }
    t1=$(now)
    echo $((t1 - t0))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# median of RUNS timings of a command
med() {
    i=0
    while [ $i -lt "$RUNS" ]; do time_cmd "$@"; i=$((i + 1)); done | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# start-up first: batches of 20 runs, median of the batches
batch() { j=0; while [ $j -lt 20 ]; do "$@" > /dev/null; j=$((j + 1)); done; }
s_vlab=$(RUNS=5 med batch $VLAB bench/empty.lua --quiet)
s_lua=$(RUNS=5 med batch lua5.4 -e '')
start=$((s_vlab / 20))   # one vlab start, subtracted from the timed runs below

steps=$($VLAB bench/sum.lua --quiet --max-steps 100000000000 -- "$N" paging)
steps_t=$($VLAB bench/sum.lua --quiet --max-steps 100000000000 -- "$NT" paging)

paged=$(med $VLAB bench/sum.lua --quiet --max-steps 100000000000 -- "$N" paging)
flat=$(med $VLAB bench/sum.lua --quiet --max-steps 100000000000 -- "$N" flat)
lua=$(med lua5.4 bench/sum-lua.lua "$N")
untraced_small=$(med $VLAB bench/sum.lua --quiet --max-steps 100000000000 -- "$NT" paging)
traced=$(med $VLAB bench/sum.lua --quiet --max-steps 100000000000 --trace "$TMP/t.trace" -- "$NT" paging)
tsize=$(wc -c < "$TMP/t.trace")
rm -f "$TMP/t.trace"

echo "guest_instructions: $steps"
echo "guest_mips: $(awk -v s="$steps" -v t="$paged" -v z="$start" 'BEGIN { printf "%.1f", s / ((t - z) / 1e3) }')"
echo "lua_over_vlab: $(ratio "$lua" "$paged")"
echo "trace_slowdown: $(awk -v a="$traced" -v b="$untraced_small" -v z="$start" 'BEGIN { printf "%.2f", (a - z) / (b - z) }')"
echo "trace_bytes_per_instruction: $(awk -v s="$tsize" -v n="$steps_t" 'BEGIN { printf "%.1f", s / n }')"
echo "paging_slowdown: $(ratio "$paged" "$flat")"
echo "startup_over_lua: $(ratio "$s_vlab" "$s_lua")"

# the hypervisor: a loop that never traps, natively and in VMs
NV=${BENCH_NV:-50000000}
v_native=$(med $VLAB bench/virt.lua --quiet --max-steps 100000000000 -- native "$NV")
for t in trap-and-emulate vt-x; do
    v_t=$(med $VLAB bench/virt.lua --quiet --max-steps 100000000000 -- "$t" "$NV")
    echo "virt_over_native_$(echo "$t" | tr -d -- '-' | sed 's/trapandemulate/te/;s/vtx/vtx/'): $(awk -v a="$v_t" -v b="$v_native" -v z="$start" 'BEGIN { printf "%.2f", (a - z) / (b - z) }')"
done
# memory: 100 idle VMs against none (peak RSS, KiB), less the guest pages they touched
rss0=$(/usr/bin/time -f %M $VLAB bench/idle.lua --quiet -- 0 2>&1 >/dev/null | tail -1)
touched=$($VLAB bench/idle.lua --quiet -- 100)
rss100=$(/usr/bin/time -f %M $VLAB bench/idle.lua --quiet -- 100 2>&1 >/dev/null | tail -1)
echo "idle_vm_kib: $(awk -v a="$rss100" -v b="$rss0" -v t="$touched" 'BEGIN { printf "%.1f", (a - b - 4 * t) / 100 }')"

# the TUI: one step back near the end of a 10.5-million-step history, from the
# worst place in a checkpoint interval (50,000 steps to replay), median of 21;
# and the peak memory of the viewer on that run (run, history, index), MiB
BACK="b b b b b b b b b b b b b b b b b b b b b"
$VLAB bench/stepback.lua --tui-script ":g 10049999; @time $BACK @time" > "$TMP/tui" 2> "$TMP/err" ||
    { echo "bench: vlab --tui bench/stepback.lua failed:" >&2; cat "$TMP/err" >&2; exit 1; }
echo "stepback_ms: $(grep '^time:' "$TMP/tui" | tail -1 | awk '{ print $5 }')"
rss_tui=$(/usr/bin/time -f %M $VLAB bench/stepback.lua --tui-script "End $BACK" 2>&1 >/dev/null | tail -1)
echo "stepback_history_mib: $(awk -v k="$rss_tui" 'BEGIN { printf "%.1f", k / 1024 }')"

# the same inside a VM: the history checkpoints after every exit the
# hypervisor handled (sim/history.h); step back from the middle of the run
$VLAB bench/stepback-vm.lua --tui-script ":g 4600000; @time $BACK @time" > "$TMP/tui" 2> "$TMP/err" ||
    { echo "bench: vlab --tui bench/stepback-vm.lua failed:" >&2; cat "$TMP/err" >&2; exit 1; }
echo "stepback_vm_ms: $(grep '^time:' "$TMP/tui" | tail -1 | awk '{ print $5 }')"
VLAB_TUI_STATS=1 /usr/bin/time -f 'rss %M' $VLAB bench/stepback-vm.lua --tui-script "End $BACK" > /dev/null 2> "$TMP/err" ||
    { echo "bench: vlab --tui bench/stepback-vm.lua failed:" >&2; cat "$TMP/err" >&2; exit 1; }
echo "stepback_vm_checkpoints: $(sed -n 's/.*(\([0-9]*\) checkpoints taken.*/\1/p' "$TMP/err")"
echo "stepback_vm_snapshot_mib: $(sed -n 's/.* + \([0-9]*\) KiB of snapshots.*/\1/p' "$TMP/err" | awk '{ printf "%.1f", $1 / 1024 }')"
echo "stepback_vm_history_mib: $(awk '/^rss/ { printf "%.1f", $2 / 1024 }' "$TMP/err")"

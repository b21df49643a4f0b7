#!/usr/bin/env bash
# SIGTERM-to-exit of apheresisd with N simulated separators: N optia-sim over
# TCP (or, TRANSPORT=simulator, N optia-sim children the daemon starts itself),
# each with its own serial number so that the runs stay apart in the store.
# Every round checks that the daemon exits 0 after SIGTERM.
#
#   scripts/bench/shutdown_time.sh [N ...]          default: 1 64
#
# Environment:
#   BIN       directory holding apheresisd and optia-sim (default: `swift build --show-bin-path`)
#   ROUNDS    stops measured per N (default 3); each round starts everything afresh
#   SPEED     simulator speed (default 1: the real message rate, a TICK every 5 s per device)
#   SETTLE_S  seconds to let messages flow between "every link up" and SIGTERM (default 3)
#   SCENARIO  scenario file (default simulator/scenarios/normal-boy-10y.toml)
#   TRANSPORT tcp (default: optia-sim processes started here, the daemon connects) or
#             simulator (the daemon starts each optia-sim itself, over a pseudo-terminal)
#   LOG_LEVEL the daemon's log_level (default info; debug shows the service group's
#             "Triggering graceful shutdown" / "Service finished" steps with their times)
#   LOGS_DIR  keep each round's daemon log there (N<n>-round<r>.log), to see where the time goes
#
# Prints one line per round and one summary line per N:
#   N=64 shutdown_s median=0.412 min=0.398 max=0.455 (3 rounds)
# A figure, not a test: nothing here passes or fails on time.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$(cd "$root" && swift build --show-bin-path)}
ROUNDS=${ROUNDS:-3}
SPEED=${SPEED:-1}
SETTLE_S=${SETTLE_S:-3}
SCENARIO=${SCENARIO:-$root/simulator/scenarios/normal-boy-10y.toml}
LOG_LEVEL=${LOG_LEVEL:-info}
TRANSPORT=${TRANSPORT:-tcp}
LOGS_DIR=${LOGS_DIR:-}
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 64)

for tool in apheresisd optia-sim; do
    [ -x "$BIN/$tool" ] || { echo "no $tool in $BIN: build first (swift build)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/apheresisd-shutdown-bench.XXXXXX)
sims=()
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill -KILL "$daemon" 2>/dev/null || true
    for pid in "${sims[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }

# Waits until `grep -c PATTERN FILE` reaches COUNT, or fails after TIMEOUT seconds.
wait_for_lines() {
    local file=$1 pattern=$2 count=$3 timeout=$4 start
    start=$(now)
    local seen
    while seen=$(grep -c -- "$pattern" "$file" 2>/dev/null || true); [ "${seen:-0}" -lt "$count" ]; do
        if awk -v s="$start" -v n="$(now)" -v t="$timeout" 'BEGIN { exit !(n - s > t) }'; then
            echo "timed out waiting for $count x '$pattern' in $file" >&2
            tail -20 "$file" >&2
            return 1
        fi
        sleep 0.1
    done
}

# One round: N simulators, the daemon, every link heard, SIGTERM; sets `seconds`.
measure() {
    local n=$1 dir=$work/round-$RANDOM config i port
    mkdir -p "$dir/state"
    config=$dir/apheresisd.toml
    printf 'format = 1\n[daemon]\nstate_directory = "%s"\nlog_level = "%s"\n[api]\nlisten = "127.0.0.1:0"\n' \
        "$dir/state" "$LOG_LEVEL" > "$config"
    sims=()
    for ((i = 1; i <= n; i++)); do
        sed -E "s/^serial = .*/serial = \"1OPT9$(printf %04d "$i")\"/" "$SCENARIO" > "$dir/scenario-$i.toml"
        if [ "$TRANSPORT" = simulator ]; then
            printf '[[device]]\nname = "optia-%d"\ntransport = "simulator"\nscenario = "%s"\nspeed = %s\n' \
                "$i" "$dir/scenario-$i.toml" "$SPEED" >> "$config"
            continue
        fi
        "$BIN/optia-sim" run "$dir/scenario-$i.toml" --tcp 0 --speed "$SPEED" --state "$dir/sim-$i.state" \
            > "$dir/sim-$i.out" 2> "$dir/sim-$i.err" &
        sims+=($!)
    done
    for ((i = 1; i <= n && ${#sims[@]} > 0; i++)); do
        wait_for_lines "$dir/sim-$i.out" '^tcp: ' 1 30
        port=$(sed -n 's/^tcp: 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$dir/sim-$i.out" | head -1)
        printf '[[device]]\nname = "optia-%d"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = %d\n' "$i" "$port" >> "$config"
    done
    # Plain stderr logs, no systemd notifications, whatever runs this script.
    env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID -u JOURNAL_STREAM -u INVOCATION_ID \
        "$BIN/apheresisd" --config "$config" > /dev/null 2> "$dir/daemon.err" &
    daemon=$!
    wait_for_lines "$dir/daemon.err" 'link up: ' "$n" 120
    sleep "$SETTLE_S"
    local start end status=0
    start=$(now)
    kill -TERM "$daemon"
    wait "$daemon" || status=$?
    end=$(now)
    daemon=""
    for pid in "${sims[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    sims=()
    if [ "$status" -ne 0 ]; then
        echo "apheresisd exited with status $status; the end of its log:" >&2
        tail -20 "$dir/daemon.err" >&2
        return 1
    fi
    if [ -n "$LOGS_DIR" ]; then mkdir -p "$LOGS_DIR" && cp "$dir/daemon.err" "$LOGS_DIR/N$n-round$round.log"; fi
    rm -rf "$dir"
    seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
}

for n in "${counts[@]}"; do
    figures=()
    for ((round = 1; round <= ROUNDS; round++)); do
        measure "$n"
        echo "N=$n round $round: SIGTERM to exit ${seconds} s"
        figures+=("$seconds")
    done
    printf '%s\n' "${figures[@]}" | sort -n | awk -v n="$n" '
        { v[NR] = $1 }
        END { printf "N=%d shutdown_s median=%.3f min=%.3f max=%.3f (%d rounds)\n", n, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
done

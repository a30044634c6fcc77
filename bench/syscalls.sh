#!/usr/bin/env bash
# Where a server's time goes, per operation: server CPU time and system calls per operation (ack
# round trip, delivery, ...) over one measured window, from `perf stat` on syscall tracepoints (no
# strace slow-down). Needs perf and root (or perf_event_paranoid <= -1). Run bench/run.sh once
# first: it builds the binaries and installs the Node packages.
#
#   bench/syscalls.sh SERVER SCENARIO [loadgen options...]
#   bench/syscalls.sh rust broadcast --clients 10000 --inflight 8
#   bench/syscalls.sh uws echo --clients 1
#
# SERVER: rust, socketioxide, uws, bun or node. Server on core 0, load generator on core 1, as in
# the benchmark; one run, a 3 s window after a 2 s warm-up.
set -euo pipefail
cd "$(dirname "$0")"
bin="${CARGO_TARGET_DIR:-$(cd .. && pwd)/target/bench}/release"
server=$1
shift
case "$server" in
  rust) cmd=("$bin/bench-server-rust") ;;
  socketioxide) cmd=("$bin/bench-socketioxide") ;;
  uws) cmd=(node node/server-uws.js) ;;
  bun) cmd=(node/node_modules/.bin/bun node/server-bun.js) ;;
  node) cmd=(node node/server-node.js) ;;
  *) echo "unknown server: $server" >&2; exit 2 ;;
esac
port=$((3500 + RANDOM % 400))
work=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
taskset -c 0 "${cmd[@]}" "$port" >/dev/null 2>"$work/server.err" &
server_pid=$!
sleep 1.5
taskset -c 1 "$bin/bench-loadgen" "$@" --port "$port" --duration 3 --warmup 2 >"$work/loadgen.out" 2>&1 &
loadgen_pid=$!
for _ in $(seq 1 1200); do
  grep -q '#start' "$work/loadgen.out" && break
  sleep 0.05
done
events=task-clock
for call in read recvfrom write writev sendto sendmsg epoll_wait epoll_pwait epoll_pwait2 epoll_ctl futex; do
  events+=",syscalls:sys_enter_$call"
done
perf stat -x, -e "$events" -p "$server_pid" -o "$work/perf.csv" -- sleep 3 >/dev/null 2>&1
wait "$loadgen_pid"
python3 - "$server" "$*" "$work/loadgen.out" "$work/perf.csv" <<'PY'
import json, sys
server, scenario, loadgen, perf = sys.argv[1:]
result = json.loads(open(loadgen).read().strip().splitlines()[-1])
ops = result["throughput"] * 3
counts = {}
for line in open(perf):
    fields = line.strip().split(",")
    if len(fields) > 3 and fields[0][:1].isdigit():
        counts[fields[2].replace("syscalls:sys_enter_", "")] = float(fields[0])
cpu_ms = counts.pop("task-clock", 0.0)
calls = ", ".join(
    f"{name} {n / ops:.3f}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n / ops >= 0.001
)
print(
    f"{server} | {scenario}: {result['throughput']:,.0f}/s, server CPU {cpu_ms * 1000 / ops:.2f} µs/op, "
    f"load generator CPU {result.get('loadgen_cpu_pct', 0):.0f} %; system calls per op: {calls}"
)
PY

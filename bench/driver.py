#!/usr/bin/env python3
"""Benchmark driver: builds every server and the load generator, then for each case -> run -> server
(interleaved) starts the server fresh pinned to core 0, runs the load generator pinned to core 1,
samples the server's CPU time and RSS, and writes a side-by-side markdown table.

Usage: bench/run.sh [--quick] [--runs N] [--servers a,b] [--case SUBSTRING]... [--out FILE] [--no-build]
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target", "bench"))
RELEASE = os.path.join(TARGET, "release")
NODE_DIR = os.path.join(BENCH, "node")
LOADGEN = os.path.join(RELEASE, "bench-loadgen")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = 1

SERVER_CORE = "0"
LOADGEN_CORE = "1"
FOCUS = "rust"  # this project's server; ratios are computed for it

SERVERS = {
    "rust": {"title": "this project (socketio crate)", "cmd": [os.path.join(RELEASE, "bench-server-rust")], "cwd": BENCH},
    "socketioxide": {"title": "socketioxide 0.18", "cmd": [os.path.join(RELEASE, "bench-socketioxide")], "cwd": BENCH},
    "uws": {"title": "socket.io + uWebSockets.js (Node)", "cmd": ["node", "server-uws.js"], "cwd": NODE_DIR},
    "bun": {"title": "socket.io + Bun engine", "cmd": [os.path.join(NODE_DIR, "node_modules", ".bin", "bun"), "server-bun.js"], "cwd": NODE_DIR},
    "node": {"title": "socket.io on Node http + ws", "cmd": ["node", "server-node.js"], "cwd": NODE_DIR},
}

# (name, loadgen scenario, loadgen args, kind)
FULL_CASES = [
    ("connect 1k", "connect", ["--clients", "1000"], "connect"),
    ("connect 10k", "connect", ["--clients", "10000"], "connect"),
    ("echo 1 client", "echo", ["--clients", "1"], "echo"),
    ("echo 100 clients", "echo", ["--clients", "100"], "echo"),
    ("broadcast 1k, 1 in flight", "broadcast", ["--clients", "1000", "--inflight", "1"], "broadcast"),
    ("broadcast 1k, 8 in flight", "broadcast", ["--clients", "1000", "--inflight", "8"], "broadcast"),
    ("broadcast 10k, 1 in flight", "broadcast", ["--clients", "10000", "--inflight", "1"], "broadcast"),
    ("broadcast 10k, 8 in flight", "broadcast", ["--clients", "10000", "--inflight", "8"], "broadcast"),
    ("polling handshakes (50 concurrent)", "polling-handshake", ["--clients", "50"], "loop"),
    ("polling echo (50 clients)", "polling-echo", ["--clients", "50"], "loop"),
    ("upgrade polling->websocket (50 concurrent)", "upgrade", ["--clients", "50"], "loop"),
]
QUICK_CASES = [
    ("connect 200", "connect", ["--clients", "200"], "connect"),
    ("echo 1 client", "echo", ["--clients", "1"], "echo"),
    ("echo 10 clients", "echo", ["--clients", "10"], "echo"),
    ("broadcast 100, 1 in flight", "broadcast", ["--clients", "100", "--inflight", "1"], "broadcast"),
    ("broadcast 100, 8 in flight", "broadcast", ["--clients", "100", "--inflight", "8"], "broadcast"),
    ("polling handshakes (10 concurrent)", "polling-handshake", ["--clients", "10"], "loop"),
    ("polling echo (10 clients)", "polling-echo", ["--clients", "10"], "loop"),
    ("upgrade polling->websocket (10 concurrent)", "upgrade", ["--clients", "10"], "loop"),
]

LOADGEN_SATURATED = 85.0


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, cwd=None, env=None, check=True):
    log("$ " + " ".join(shlex.quote(c) for c in cmd) + (f"    (in {cwd})" if cwd else ""))
    return subprocess.run(cmd, cwd=cwd, env=env, check=check)


def out(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception as e:  # noqa: BLE001
        return f"unavailable ({e})"


# ------------------------------------------------------------------------------------------------
# Build


def build():
    env = dict(os.environ)
    env["CARGO_TARGET_DIR"] = TARGET
    env.setdefault("CARGO_BUILD_JOBS", "1")
    for crate in ("loadgen", "server-rust", "socketioxide"):
        sh(["cargo", "build", "--release", "--locked"], cwd=os.path.join(BENCH, crate), env=env)
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        sh(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR)


# ------------------------------------------------------------------------------------------------
# Process measurements


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime = field 14, stime = field 15
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid):
    """CPU time of every thread of `pid`, in seconds, at nanosecond resolution
    (sum of /proc/<pid>/task/*/schedstat run times); falls back to utime+stime clock ticks."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        if total:
            return total / 1e9
    except OSError:
        pass
    return cpu_ticks(pid) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def wait_port(port, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


_port = [4100]


def next_port():
    _port[0] += 1
    if _port[0] > 4900:
        _port[0] = 4101
    return _port[0]


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(server, case, quick, logdir, durations):
    name, scenario, args, kind = case
    spec = SERVERS[server]
    port = next_port()
    slog = open(os.path.join(logdir, f"server-{server}.log"), "a")
    slog.write(f"\n=== {name} port {port} {datetime.datetime.now().isoformat()}\n")
    slog.flush()
    cmd = ["taskset", "-c", SERVER_CORE] + spec["cmd"] + [str(port)]
    proc = subprocess.Popen(cmd, cwd=spec["cwd"], stdout=slog, stderr=slog, start_new_session=True)
    res = {"server": server, "case": name, "ok": False}
    try:
        if not wait_port(port, proc):
            res["error"] = f"server did not start (exit {proc.poll()}); see {slog.name}"
            return res
        time.sleep(durations["settle"])
        res["rss_base_kib"] = rss_kib(proc.pid)
        lg = ["taskset", "-c", LOADGEN_CORE, LOADGEN, scenario, "--port", str(port),
              "--duration", str(durations["duration"]), "--warmup", str(durations["warmup"]),
              "--label", f"{server}:{name}"] + args
        if kind == "connect":
            lg.append("--wait-stdin")
        res["command"] = " ".join(shlex.quote(c) for c in lg)
        lp = subprocess.Popen(lg, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, bufsize=1)
        start = end = None
        result = None
        for line in lp.stdout:
            line = line.strip()
            if line == "#start":
                start = (time.monotonic(), cpu_seconds(proc.pid))
            elif line == "#end":
                end = (time.monotonic(), cpu_seconds(proc.pid))
            elif line.startswith("#connected"):
                time.sleep(durations["idle_settle"])
                res["rss_conn_kib"] = rss_kib(proc.pid)
                lp.stdin.write("go\n")
                lp.stdin.flush()
            elif line == "#disconnected":
                pass
            elif line.startswith("{"):
                result = json.loads(line)
        lp.wait()
        err = lp.stderr.read()
        if proc.poll() is not None:
            res["error"] = f"server exited during the run (code {proc.returncode}); see {slog.name}"
            return res
        if result is None or start is None or end is None:
            res["error"] = f"no result from loadgen (exit {lp.returncode}): {err[-300:]}"
            return res
        if kind == "connect":
            time.sleep(durations["after"])
            res["rss_after_kib"] = rss_kib(proc.pid)
        wall = end[0] - start[0]
        res["server_cpu_pct"] = 100.0 * (end[1] - start[1]) / wall if wall > 0 else None
        res["lg"] = result
        res["ok"] = True
        return res
    finally:
        stop(proc)
        slog.close()


# ------------------------------------------------------------------------------------------------
# Figures


def figures(kind, r):
    """Figure name -> (value, better) for one successful run. better: 'high' | 'low' | None."""
    lg = r["lg"]
    f = {}
    thr = lg.get("throughput")
    f["throughput"] = (thr, "high")
    scpu = r.get("server_cpu_pct")
    f["server CPU %"] = (scpu, None)
    f["loadgen CPU %"] = (lg.get("loadgen_cpu_pct"), None)
    f["per server CPU-s"] = (thr / (scpu / 100.0) if thr and scpu else None, "high")
    lat = lg.get("latency", {})
    f["p50 ms"] = (lat.get("p50_ms"), "low")
    f["p99 ms"] = (lat.get("p99_ms"), "low")
    if kind == "echo":
        f["p99.9 ms"] = (lat.get("p999_ms"), "low")
    if kind == "broadcast":
        lr = lg.get("last_receiver", {})
        f["last receiver p50 ms"] = (lr.get("p50_ms"), "low")
        f["last receiver p99 ms"] = (lr.get("p99_ms"), "low")
        f["lost deliveries"] = (lg.get("lost"), "low")
    if kind == "connect":
        n = lg.get("connected") or 0
        base, conn, after = r.get("rss_base_kib"), r.get("rss_conn_kib"), r.get("rss_after_kib")
        f["RSS idle base MiB"] = (base / 1024 if base else None, None)
        f["RSS with N idle MiB"] = (conn / 1024 if conn else None, None)
        f["RSS per idle conn KiB"] = ((conn - base) / n if n and conn and base else None, "low")
        f["RSS after disconnect MiB"] = (after / 1024 if after else None, None)
        gained = (conn - base) if conn and base else None
        f["memory returned %"] = (100.0 * (conn - after) / gained if gained and after is not None and gained > 0 else None, "high")
    errs = lg.get("errors", {}).get("count", 0)
    f["errors"] = (errs, "low")
    return f


TARGETS = {
    # figure -> (description, test(ratio or value) -> bool, uses ratio)
    "throughput": ("≥ 1.5× best other", lambda x: x >= 1.5, True),
    "per server CPU-s": ("≥ 1.5× best other", lambda x: x >= 1.5, True),
    "RSS per idle conn KiB": ("≤ 0.6× best other", lambda x: x <= 0.6, True),
    "p99 ms": ("≤ 1.0× best other", lambda x: x <= 1.0, True),
    "memory returned %": ("≥ 80 %", lambda x: x >= 80.0, False),
    "lost deliveries": ("0", lambda x: x == 0, False),
}


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return f"{v:.3f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def summarize(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def case_table(case, results, servers):
    name, scenario, args, kind = case
    unit = None
    per = {}
    notes = []
    for s in servers:
        runs = [r for r in results if r["server"] == s and r["case"] == name]
        ok = [r for r in runs if r["ok"]]
        for r in runs:
            if not r["ok"]:
                notes.append(f"{s}: {r.get('error')}")
        if ok:
            unit = unit or ok[0]["lg"].get("unit")
        figs = {}
        for r in ok:
            for k, (v, better) in figures(kind, r).items():
                figs.setdefault(k, ([], better))[0].append(v)
        per[s] = {k: (summarize(v), better) for k, (v, better) in figs.items()}
        per[s]["_runs"] = (len(ok), len(runs))
        lgmax = max((r["lg"].get("loadgen_cpu_pct") or 0 for r in ok), default=0)
        per[s]["_saturated"] = lgmax > LOADGEN_SATURATED
    fig_names = []
    for s in servers:
        for k in per[s]:
            if not k.startswith("_") and k not in fig_names:
                fig_names.append(k)
    lines = [f"### {name}", "", f"`loadgen {scenario} {' '.join(args)}` — throughput in {unit or '?'}; "
             f"cells: median [min–max] over runs", ""]
    head = "| figure | " + " | ".join(servers) + " | ratio vs best other | target |"
    lines += [head, "|" + "---|" * (len(servers) + 3)]
    summary = []
    for k in fig_names:
        row = [k]
        better = None
        for s in servers:
            entry = per[s].get(k)
            if not entry:
                row.append("–")
                continue
            (med, lo, hi), better = entry
            cell = fmt(med)
            if lo is not None and hi is not None and lo != hi:
                cell += f" [{fmt(lo)}–{fmt(hi)}]"
            if k == "throughput" and per[s]["_saturated"]:
                cell += " (≥, loadgen >85 %)"
            row.append(cell)
        ratio_cell, target_cell = "", ""
        focus = per.get(FOCUS, {}).get(k)
        others = [(s, per[s][k][0][0]) for s in servers if s != FOCUS and per[s].get(k) and per[s][k][0][0] is not None]
        if k in ("errors", "lost deliveries", "memory returned %"):
            pass
        elif focus and focus[0][0] is not None and better in ("high", "low") and others:
            best_s, best_v = (max if better == "high" else min)(others, key=lambda x: x[1])
            fv = focus[0][0]
            if best_v:
                ratio = fv / best_v
                ratio_cell = f"{ratio:.2f}× vs {best_s}"
            else:
                ratio = None
                ratio_cell = f"best other {best_s} = {fmt(best_v)}"
            if k in TARGETS:
                desc, test, uses_ratio = TARGETS[k]
                x = ratio if uses_ratio else fv
                if x is not None:
                    met = test(x)
                    target_cell = f"{desc}: {'met' if met else '**missed**'}"
                    summary.append((name, k, fmt(fv), best_s, fmt(best_v), ratio_cell, desc, met))
        if not target_cell and focus and focus[0][0] is not None and k in TARGETS and not TARGETS[k][2]:
            desc, test, _ = TARGETS[k]
            met = test(focus[0][0])
            target_cell = f"{desc}: {'met' if met else '**missed**'}"
            summary.append((name, k, fmt(focus[0][0]), "", "", "", desc, met))
        row += [ratio_cell, target_cell]
        lines.append("| " + " | ".join(row) + " |")
    runs_row = "| runs ok | " + " | ".join(f"{per[s]['_runs'][0]}/{per[s]['_runs'][1]}" for s in servers) + " | | |"
    lines.append(runs_row)
    if notes:
        lines += ["", "Failures:", ""] + [f"- {n}" for n in notes]
    lines.append("")
    return lines, summary


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def pkg(path):
        try:
            with open(os.path.join(NODE_DIR, "node_modules", path, "package.json")) as f:
                return json.load(f)["version"]
        except Exception:  # noqa: BLE001
            return "?"

    def lock_version(crate_dir, name):
        try:
            with open(os.path.join(BENCH, crate_dir, "Cargo.lock")) as f:
                text = f.read()
            i = text.index(f'name = "{name}"\nversion = "')
            return text[i:].split('"')[3]
        except Exception:  # noqa: BLE001
            return "?"

    bun = os.path.join(NODE_DIR, "node_modules", ".bin", "bun")
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: `nproc` = {out(['nproc'])}, CPU: {cpu}, kernel {platform.release()}",
        f"- load average at start: {open('/proc/loadavg').read().split()[:3]}",
        f"- open-file limit: {resource.getrlimit(resource.RLIMIT_NOFILE)}",
        f"- project commit: {out(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])}",
        f"- rustc: {out(['rustc', '--version'])}",
        f"- node: {out(['node', '--version'])}; bun: {out([bun, '--version'])}",
        f"- npm packages: socket.io {pkg('socket.io')}, engine.io {pkg('engine.io')}, ws {pkg('ws')}, "
        f"uWebSockets.js → @trufflesuite/uws-js-unofficial {pkg('uWebSockets.js')}, "
        f"@socket.io/bun-engine {pkg('@socket.io/bun-engine')}, bun {pkg('bun')}",
        f"- crates: socketioxide {lock_version('socketioxide', 'socketioxide')} "
        f"(engineioxide {lock_version('socketioxide', 'engineioxide')}), tokio {lock_version('server-rust', 'tokio')}, "
        f"tikv-jemallocator {lock_version('server-rust', 'tikv-jemallocator')}",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run, short windows (smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="runs per case and server (default 3; 1 with --quick)")
    ap.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of " + ",".join(SERVERS))
    ap.add_argument("--case", action="append", default=[], help="substring selecting cases by name (repeatable)")
    ap.add_argument("--duration", type=float, default=None, help="measured window per run, s (default 10; 2 quick)")
    ap.add_argument("--out", default=None, help="markdown output (default bench/RESULTS.md; RESULTS-quick.md with --quick)")
    ap.add_argument("--no-build", action="store_true")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = [s for s in a.servers.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}")
    cases = QUICK_CASES if a.quick else FULL_CASES
    if a.case:
        cases = [c for c in cases if any(k in c[0] for k in a.case)]
    runs = a.runs or (1 if a.quick else 3)
    durations = {
        "duration": a.duration or (2.0 if a.quick else 10.0),
        "warmup": 0.5 if a.quick else 2.0,
        "settle": 0.5 if a.quick else 1.0,
        "idle_settle": 1.0 if a.quick else 3.0,
        "after": 2.0 if a.quick else 5.0,
    }
    outfile = a.out or os.path.join(BENCH, "RESULTS-quick.md" if a.quick else "RESULTS.md")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = os.path.join(TARGET, "bench-logs", stamp)
    os.makedirs(logdir, exist_ok=True)

    if not a.no_build:
        build()
    info = machine_info()
    invoked = "bench/run.sh " + " ".join(shlex.quote(x) for x in sys.argv[1:])

    results = []
    raw = open(os.path.join(logdir, "raw.jsonl"), "w")
    t0 = time.time()
    for case in cases:
        for run in range(runs):
            order = servers[run % len(servers):] + servers[:run % len(servers)]
            for s in order:
                log(f"[{time.time() - t0:6.0f}s] {case[0]} run {run + 1}/{runs} {s}")
                r = run_one(s, case, a.quick, logdir, durations)
                r["run"] = run + 1
                results.append(r)
                raw.write(json.dumps(r) + "\n")
                raw.flush()
                if r["ok"]:
                    lg = r["lg"]
                    log(f"    {fmt(lg.get('throughput'))} {lg.get('unit')}  server CPU {fmt(r.get('server_cpu_pct'))} %  "
                        f"loadgen CPU {fmt(lg.get('loadgen_cpu_pct'))} %  errors {lg.get('errors', {}).get('count')}"
                        + (f"  lost {lg.get('lost')}" if "lost" in lg else ""))
                else:
                    log(f"    FAILED: {r.get('error')}")
                time.sleep(0.5)
    raw.close()

    md = ["# Benchmark results" + (" (--quick smoke run: tiny sizes, 1 run — not for comparison)" if a.quick else ""), ""]
    md += info
    md += [f"- load average at end: {open('/proc/loadavg').read().split()[:3]}",
           f"- wall time: {time.time() - t0:.0f} s; runs per case and server: {runs}; measured window "
           f"{durations['duration']} s after {durations['warmup']} s warm-up",
           f"- command: `{invoked}` (raw per-run JSON: `{os.path.relpath(logdir, ROOT)}/raw.jsonl`)",
           f"- servers pinned with `taskset -c {SERVER_CORE}`, load generator with `taskset -c {LOADGEN_CORE}`; "
           "each server started fresh for every case and run; servers interleaved run by run",
           ""]
    md += ["Servers: " + "; ".join(f"**{s}** = {SERVERS[s]['title']}" for s in servers), ""]
    md += ["Ratios are this project's server (`rust`) against the best *other* server of the same run, "
           "figure by figure. A throughput marked “≥, loadgen >85 %” was limited by the load generator "
           "(a lower bound): compare “per server CPU-s” instead.", ""]
    all_summary = []
    body = []
    for case in cases:
        lines, summary = case_table(case, results, servers)
        body += lines
        all_summary += summary
    if all_summary and FOCUS in servers:
        md += ["## Targets", "", "| case | figure | rust | best other | value | ratio | target | |", "|---|---|---|---|---|---|---|---|"]
        for (cname, k, fv, bs, bv, ratio, desc, met) in all_summary:
            md.append(f"| {cname} | {k} | {fv} | {bs} | {bv} | {ratio} | {desc} | {'met' if met else '**missed**'} |")
        md.append("")
    md += ["## All figures", ""] + body
    md += ["## Per-run commands", "", "Every load-generator command of this run (server port differs per start):", "", "```"]
    seen = set()
    for r in results:
        if r.get("command") and r["case"] not in seen:
            seen.add(r["case"])
            md.append(r["command"])
    md += ["```", ""]
    with open(outfile, "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    log(f"wrote {outfile}")


if __name__ == "__main__":
    main()

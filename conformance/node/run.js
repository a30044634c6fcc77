#!/usr/bin/env node
// Differential conformance suite: runs every test against the reference
// server (official socket.io / engine.io) and the Rust conformance-server.
//
//   node run.js [--only node|rust] [--grep SUBSTRING]... [--list] [--verbose] [--no-retry]
//
// Environment: RUST_SERVER_BIN (default ../../target/debug/conformance-server),
// ONLY=node|rust, GREP=substring.
"use strict";

const { startServer, stopAll, rustBinary } = require("./lib/servers");
const { Context } = require("./lib/context");
const { withTimeout } = require("./lib/util");

const SUITE_LIMIT_MS = 280000;

function parseArgs(argv) {
  const opts = { only: process.env.ONLY || null, grep: [], list: false, verbose: false };
  if (process.env.GREP) opts.grep.push(process.env.GREP);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--only") opts.only = argv[++i];
    else if (a.startsWith("--only=")) opts.only = a.slice(7);
    else if (a === "--grep") opts.grep.push(argv[++i]);
    else if (a.startsWith("--grep=")) opts.grep.push(a.slice(7));
    else if (a === "--list") opts.list = true;
    else if (a === "--verbose" || a === "-v") opts.verbose = true;
    else if (a === "--no-retry") opts.noRetry = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: node run.js [--only node|rust] [--grep SUBSTRING]... [--list] [--verbose] [--no-retry]");
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (opts.only && !["node", "rust"].includes(opts.only)) {
    console.error(`--only must be node or rust, got ${opts.only}`);
    process.exit(2);
  }
  return opts;
}

function loadTests() {
  const files = ["engineio", "sio-connection", "sio-events", "sio-rooms", "sio-load", "edge-cases", "browser"];
  const tests = [];
  for (const f of files) {
    for (const t of require(`./tests/${f}`)) tests.push(t);
  }
  const names = new Set();
  for (const t of tests) {
    if (names.has(t.name)) throw new Error(`duplicate test name ${t.name}`);
    names.add(t.name);
  }
  return tests;
}

// Errors thrown asynchronously (inside client event handlers) are attributed to
// the running test.
let currentFailure = null;
function onStray(err) {
  if (currentFailure) currentFailure(err);
  else console.error("uncaught error outside of a test:", err);
}
process.on("uncaughtException", onStray);
process.on("unhandledRejection", onStray);

async function runOne(test, server) {
  const ctx = new Context(server);
  const started = Date.now();
  let error = null;
  try {
    const stray = new Promise((_, reject) => {
      currentFailure = reject;
    });
    stray.catch(() => {});
    await withTimeout(Promise.race([test.run(ctx), stray]), test.timeout || 10000, "the test to finish");
  } catch (e) {
    error = e;
  } finally {
    currentFailure = null;
    await withTimeout(ctx.cleanup(), 5000, "cleanup").catch((e) => {
      if (!error) error = e;
    });
  }
  return { ok: !error, error, notes: ctx.notes, ms: Date.now() - started };
}

function formatError(e) {
  if (!e) return "";
  let s = e.stack || String(e);
  // keep assertion diffs, drop deep stack frames from node internals
  s = s
    .split("\n")
    .filter((l) => !/^\s+at .*(node:internal|node_modules)/.test(l))
    .join("\n");
  return s;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let tests = loadTests();
  if (opts.grep.length) tests = tests.filter((t) => opts.grep.some((g) => t.name.includes(g)));
  if (opts.list) {
    for (const t of tests) console.log(t.name);
    return 0;
  }
  const kinds = opts.only ? [opts.only] : ["node", "rust"];
  const suiteStart = Date.now();

  // one shared server per kind, default flags; restarted if it dies
  const servers = {};
  const startErrors = {};
  for (const kind of kinds) {
    try {
      servers[kind] = await startServer(kind);
      console.log(`${kind} server: ${servers[kind].url}${kind === "rust" ? ` (${rustBinary()})` : ""}`);
    } catch (e) {
      startErrors[kind] = e;
      console.log(`${kind} server did not start: ${e.message.split("\n")[0]}`);
    }
  }

  const results = []; // { name, cells: { node: res, rust: res } }
  for (const test of tests) {
    const row = { name: test.name, cells: {} };
    results.push(row);
    for (const kind of kinds) {
      if (Date.now() - suiteStart > SUITE_LIMIT_MS) {
        row.cells[kind] = { ok: false, error: new Error("not run: suite time limit reached"), notes: [], ms: 0 };
        continue;
      }
      if (!servers[kind]) {
        row.cells[kind] = { ok: false, error: startErrors[kind] || new Error("server not running"), notes: [], ms: 0 };
        continue;
      }
      let res = await runOne(test, servers[kind]);
      if (!res.ok && servers[kind].alive() && !opts.noRetry) {
        // One retry: this 2-core machine is shared, and a timing test can lose a race under load.
        // A test that passes only on the retry is shown as "pass*" with its first failure noted.
        const first = String((res.error && res.error.message) || res.error).split("\n")[0];
        const again = await runOne(test, servers[kind]);
        if (again.ok) {
          again.retried = true;
          again.notes.unshift(`passed on retry; first run failed: ${first}`);
        }
        res = again;
      }
      if (!servers[kind].alive()) {
        const info = servers[kind].exitInfo();
        res.ok = false;
        res.error = res.error || new Error("server died");
        res.notes.push(`${kind} server exited during this test (code ${info.code}, signal ${info.signal}); last output:`);
        res.notes.push(...servers[kind].output().slice(-30));
        try {
          servers[kind] = await startServer(kind);
        } catch (e) {
          servers[kind] = null;
          startErrors[kind] = e;
        }
      }
      row.cells[kind] = res;
      if (opts.verbose) {
        console.log(`${res.ok ? "pass" : "FAIL"} ${kind} ${test.name} (${res.ms} ms)`);
        for (const n of res.notes) console.log(`  | ${n}`);
      }
    }
  }

  await stopAll();

  // ---- summary table
  const allKinds = ["node", "rust"];
  const cell = (row, kind) => {
    const r = row.cells[kind];
    if (!r) return "-";
    return r.ok ? (r.retried ? "pass*" : "pass") : "FAIL";
  };
  const w = Math.max(4, ...results.map((r) => r.name.length));
  const line = (a, b, c) => `${a.padEnd(w)} | ${b.padEnd(5)} | ${c}`;
  console.log("");
  console.log(line("test", "node", "rust"));
  console.log(`${"-".repeat(w)}-|-------|------`);
  for (const row of results) console.log(line(row.name, cell(row, "node"), cell(row, "rust")));
  const retried = [];
  for (const row of results) {
    for (const kind of allKinds) {
      const r = row.cells[kind];
      if (r && r.ok && r.retried) retried.push(`  ${row.name} [${kind}]: ${r.notes[0]}`);
    }
  }
  if (retried.length) {
    console.log("\npass* = failed once, passed on the retry (timing under load):");
    for (const l of retried) console.log(l);
  }

  // ---- failure details
  const failures = [];
  for (const row of results) {
    for (const kind of allKinds) {
      const r = row.cells[kind];
      if (r && !r.ok) failures.push({ row, kind, r });
    }
  }
  if (failures.length) {
    console.log("\nFailures:");
    for (const { row, kind, r } of failures) {
      console.log(`\n--- ${row.name} [${kind}] (${r.ms} ms)`);
      console.log(formatError(r.error));
      for (const n of r.notes) console.log(`  | ${n}`);
    }
  }

  let passed = 0;
  let failed = 0;
  for (const row of results) {
    if (kinds.every((k) => row.cells[k] && row.cells[k].ok)) passed++;
    else failed++;
  }
  console.log(`\nsuite time: ${((Date.now() - suiteStart) / 1000).toFixed(1)} s; servers: ${kinds.join(", ")}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

main()
  .then((code) => {
    process.exitCode = code;
    // clients may leave timers behind; do not wait for them
    setTimeout(() => process.exit(code), 100).unref();
  })
  .catch(async (e) => {
    console.error(e);
    await stopAll();
    console.log("0 passed, 1 failed");
    process.exit(1);
  });

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    await stopAll();
    process.exit(130);
  });
}

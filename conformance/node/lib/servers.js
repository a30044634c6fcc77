"use strict";
// Starting and stopping the servers under test (reference and Rust).

const { spawn } = require("node:child_process");
const net = require("node:net");
const path = require("node:path");
const fs = require("node:fs");

const HERE = path.resolve(__dirname, "..");

const live = new Set();

// Whatever happens to the runner, no server outlives it.
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function rustBinary() {
  const bin = process.env.RUST_SERVER_BIN || "../../target/debug/conformance-server";
  return path.resolve(HERE, bin);
}

/** Command line for one kind of server ("node" or "rust"). */
function commandFor(kind) {
  if (kind === "node") return [process.execPath, [path.join(HERE, "reference-server.js")]];
  if (kind === "rust") {
    const bin = rustBinary();
    if (!fs.existsSync(bin)) throw new Error(`Rust server binary not found: ${bin} (set RUST_SERVER_BIN)`);
    return [bin, []];
  }
  throw new Error(`unknown server kind ${kind}`);
}

/** flags: { "ping-interval": 25000, ... } */
function flagList(flags) {
  const out = [];
  for (const [k, v] of Object.entries(flags || {})) out.push(`--${k}`, String(v));
  return out;
}

/**
 * Starts one server and resolves once it printed `listening on PORT`.
 * Returns { kind, port, url, child, output(), stop() }.
 */
async function startServer(kind, flags = {}, { startTimeout = 15000 } = {}) {
  const port = await freePort();
  const [cmd, baseArgs] = commandFor(kind);
  const args = [...baseArgs, "--port", String(port), ...flagList(flags)];
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], cwd: HERE });
  live.add(child);
  const lines = [];
  const keep = (prefix) => {
    let buf = "";
    return (chunk) => {
      buf += chunk.toString("utf8");
      let i;
      while ((i = buf.indexOf("\n")) !== -1) {
        lines.push(prefix + buf.slice(0, i));
        if (lines.length > 400) lines.shift();
        buf = buf.slice(i + 1);
      }
    };
  };
  let exited = null;
  const ready = new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(
      () => reject(new Error(`${kind} server did not print "listening on" within ${startTimeout} ms\n${lines.join("\n")}`)),
      startTimeout,
    );
    child.stdout.on("data", (chunk) => {
      out += chunk.toString("utf8");
      const m = /listening on (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      clearTimeout(timer);
      reject(new Error(`${kind} server exited early (code ${code}, signal ${signal})\n${lines.join("\n")}`));
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  child.stdout.on("data", keep("[out] "));
  child.stderr.on("data", keep("[err] "));
  let actualPort;
  try {
    actualPort = await ready;
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  const server = {
    kind,
    flags,
    port: actualPort,
    url: `http://127.0.0.1:${actualPort}`,
    child,
    output: () => lines.slice(),
    alive: () => exited === null,
    exitInfo: () => exited,
    stop: () => stopChild(child),
  };
  return server;
}

function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), 1500);
    child.once("exit", () => {
      clearTimeout(t);
      live.delete(child);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function stopAll() {
  return Promise.all([...live].map(stopChild));
}

module.exports = { startServer, stopAll, freePort, rustBinary };

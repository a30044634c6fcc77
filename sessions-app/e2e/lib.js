'use strict';
// Helpers of the sessions-app end-to-end suite: processes, ports, tokens, clients, HTTP.

const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');

const BIN = path.resolve(__dirname, process.env.SESSIONS_APP_BIN || '../../target/debug/sessions-app');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class AssertionError extends Error {}
function assert(cond, message) {
  if (!cond) throw new AssertionError(message || 'assertion failed');
}
function eq(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new AssertionError(`${message || 'not equal'}: expected ${e}, got ${a}`);
}

// ---------------------------------------------------------------------------------------------
// Processes

/** The environment of a child: ours without any sessions-app setting, plus `extra`. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of ['SESSIONS_LISTEN', 'JWT_SECRET', 'JWT_PUBLIC_KEY_FILE', 'JWT_ISSUER', 'JWT_AUDIENCE',
    'CORS_ORIGINS', 'MAX_SESSIONS_PER_USER', 'TRUST_PROXY', 'PING_INTERVAL_MS', 'PING_TIMEOUT_MS']) {
    delete env[k];
  }
  env.RUST_LOG = env.RUST_LOG || 'info';
  env.NO_COLOR = '1';
  return { ...env, ...extra };
}

const children = new Set();

/** A port nobody listens on right now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Spawns the binary; keeps its output; resolves `exited` with {code, signal}. */
function spawnApp(args, env = {}) {
  const child = spawn(BIN, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = { child, args, stdout: '', stderr: '', exit: null };
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d) => { proc.stdout += d; });
  child.stderr.on('data', (d) => { proc.stderr += d; });
  proc.exited = new Promise((resolve) => {
    child.on('error', (err) => { proc.exit = { code: null, signal: null, error: err }; resolve(proc.exit); });
    child.on('exit', (code, signal) => { proc.exit = { code, signal }; children.delete(child); resolve(proc.exit); });
  });
  children.add(child);
  proc.output = () => `--- stdout ---\n${proc.stdout}\n--- stderr ---\n${proc.stderr}`;
  return proc;
}

/** Starts a server on a free port with these extra arguments; waits for /healthz. */
async function startServer(args = [], env = {}) {
  const port = await freePort();
  const proc = spawnApp(['--listen', `127.0.0.1:${port}`, ...args], env);
  proc.port = port;
  proc.url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exit) throw new Error(`server ${args.join(' ')} exited early ${JSON.stringify(proc.exit)}\n${proc.output()}`);
    try {
      const r = await httpGet(proc.url + '/healthz');
      if (r.status === 200) break;
    } catch (_) { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`server ${args.join(' ')} did not answer /healthz\n${proc.output()}`);
    await sleep(30);
  }
  proc.stop = async (signal = 'SIGTERM') => {
    if (!proc.exit) proc.child.kill(signal);
    return proc.exited;
  };
  return proc;
}

function runApp(args, env = {}) {
  const r = spawnSync(BIN, args, { env: cleanEnv(env), encoding: 'utf8', timeout: 10000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

function killAll() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch (_) { /* gone */ }
  }
}

function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sessions-e2e-'));
}

// ---------------------------------------------------------------------------------------------
// Tokens, by hand with node:crypto

const b64u = (buf) => Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
const unb64u = (s) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
const now = () => Math.floor(Date.now() / 1000);

/**
 * A JWT: `claims` (object or raw string), algorithm `alg` (HS*, RS*, PS*, ES*, none), signed with `key`
 * (a secret string/Buffer or a KeyObject/PEM private key). `header` overrides header fields.
 */
function jwt(claims, { alg = 'HS256', key, header = {} } = {}) {
  const h = b64u(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64u(typeof claims === 'string' ? claims : JSON.stringify(claims));
  const input = Buffer.from(`${h}.${p}`);
  const bits = alg.slice(2);
  let sig;
  if (alg.toLowerCase() === 'none') sig = Buffer.alloc(0);
  else if (alg.startsWith('HS')) sig = crypto.createHmac(`sha${bits}`, key).update(input).digest();
  else if (alg.startsWith('RS')) sig = crypto.sign(`sha${bits}`, input, key);
  else if (alg.startsWith('PS')) {
    sig = crypto.sign(`sha${bits}`, input, {
      key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
    });
  } else if (alg.startsWith('ES')) sig = crypto.sign(`sha${bits}`, input, { key, dsaEncoding: 'ieee-p1363' });
  else throw new Error(`unknown alg ${alg}`);
  return `${h}.${p}.${b64u(sig)}`;
}

function decodeJwt(token) {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(unb64u(h)), claims: JSON.parse(unb64u(p)), signature: s, input: `${h}.${p}` };
}

// ---------------------------------------------------------------------------------------------
// Socket.IO clients that record everything they see

const clients = new Set();

class Client {
  constructor(base, opts = {}) {
    const { nsp = '/sessions', ...rest } = opts;
    this.log = [];
    this.socket = io(base + nsp, {
      forceNew: true,
      // Reconnect fast: a server that only drops the transport would be seen reconnecting within 1 s.
      reconnectionDelay: 100,
      reconnectionDelayMax: 200,
      randomizationFactor: 0,
      timeout: 5000,
      ...rest,
    });
    const s = this.socket;
    s.onAny((name, ...args) => this.log.push({ kind: 'event', name, args, t: Date.now() }));
    s.on('connect', () => this.log.push({ kind: 'connect', id: s.id, engineId: s.io.engine && s.io.engine.id, t: Date.now() }));
    s.on('disconnect', (reason, details) => this.log.push({ kind: 'disconnect', reason, details, t: Date.now() }));
    s.on('connect_error', (err) => this.log.push({ kind: 'connect_error', message: err.message, t: Date.now() }));
    s.io.on('reconnect_attempt', (n) => this.log.push({ kind: 'reconnect_attempt', n, t: Date.now() }));
    clients.add(this);
  }

  get id() { return this.socket.id; }

  events(name) { return this.log.filter((e) => e.kind === 'event' && (!name || e.name === name)); }

  /** Waits until `pred(entry)` holds for some log entry from index `from`; returns the entry. */
  async waitFor(pred, what, timeout = 5000, from = 0) {
    const deadline = Date.now() + timeout;
    for (;;) {
      for (let i = from; i < this.log.length; i++) if (pred(this.log[i])) return this.log[i];
      if (Date.now() > deadline) {
        throw new AssertionError(`timed out waiting for ${what}; log: ${JSON.stringify(this.log).slice(0, 1500)}`);
      }
      await sleep(5);
    }
  }

  waitEvent(name, pred = () => true, timeout, from = 0) {
    return this.waitFor((e) => e.kind === 'event' && e.name === name && pred(e.args[0], e), `event ${name}`, timeout, from);
  }

  /** Waits for `sessions:ready`; returns its payload. */
  async ready(timeout = 5000) {
    const e = await this.waitFor((x) => (x.kind === 'event' && x.name === 'sessions:ready') ||
      (x.kind === 'event' && x.name === 'sessions:error') || x.kind === 'connect_error', 'sessions:ready', timeout);
    if (e.name !== 'sessions:ready') throw new AssertionError(`expected sessions:ready, got ${JSON.stringify(e)}`);
    return e.args[0];
  }

  /** Waits for an update whose ids equal `ids` (in order); returns the sessions. */
  // Only updates after the last one matched by this method count (`this.cursor`).
  async updateWith(ids, timeout = 5000) {
    const e = await this.waitFor((x) => x.kind === 'event' && x.name === 'sessions:update' &&
      JSON.stringify(x.args[0].map((s) => s.socketId)) === JSON.stringify(ids), `sessions:update ${JSON.stringify(ids)}`, timeout, this.cursor || 0);
    this.cursor = this.log.indexOf(e) + 1;
    return e.args[0];
  }

  lastUpdate() {
    const u = this.events('sessions:update');
    return u.length ? u[u.length - 1].args[0] : undefined;
  }

  /** The ids of every session this client was ever shown (ready + updates + acks seen via `seen`). */
  seenIds() {
    const ids = new Set();
    for (const e of this.events()) {
      const list = e.name === 'sessions:ready' ? e.args[0].sessions : e.name === 'sessions:update' ? e.args[0] : [];
      for (const s of list || []) ids.add(s.socketId);
    }
    return ids;
  }

  async ack(event, ...args) {
    return this.socket.timeout(3000).emitWithAck(event, ...args);
  }

  close() {
    this.socket.disconnect();
    this.socket.io.engine && this.socket.io.engine.close();
    clients.delete(this);
  }
}

function closeAllClients() {
  for (const c of [...clients]) c.close();
}

/**
 * Asserts the refusal contract: `sessions:error {code, message}`, then `io server disconnect`, no
 * `sessions:ready`, and no reconnection by itself within `settle` ms.
 */
async function expectRefused(client, code, settle = 1000) {
  const err = await client.waitFor((x) => (x.kind === 'event' && (x.name === 'sessions:error' || x.name === 'sessions:ready')) ||
    x.kind === 'connect_error', `sessions:error ${code}`, 5000);
  if (err.name !== 'sessions:error') throw new AssertionError(`expected sessions:error ${code}, got ${JSON.stringify(err)}`);
  const payload = err.args[0];
  eq(payload && payload.code, code, 'sessions:error code');
  assert(typeof payload.message === 'string' && payload.message.length > 0, `sessions:error message is a non-empty string: ${JSON.stringify(payload)}`);
  eq(Object.keys(payload).sort(), ['code', 'message'], 'sessions:error keys');
  const disc = await client.waitFor((x) => x.kind === 'disconnect', 'disconnect', 5000);
  eq(disc.reason, 'io server disconnect', `disconnect reason after sessions:error ${code}`);
  const errIdx = client.log.indexOf(err);
  const discIdx = client.log.indexOf(disc);
  assert(errIdx < discIdx, 'sessions:error arrives before the disconnect');
  await sleep(settle);
  assert(!client.socket.connected, `still disconnected ${settle} ms after ${code}`);
  eq(client.log.filter((x) => x.kind === 'reconnect_attempt').length, 0, `reconnect attempts after ${code}`);
  assert(client.log.filter((x) => x.kind === 'connect').length <= 1, `connected again by itself after ${code}`);
  assert(client.events('sessions:ready').length === 0, `no sessions:ready for a refused socket (${code})`);
  return payload;
}

// ---------------------------------------------------------------------------------------------
// HTTP

function httpRequest(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error(`timeout ${method} ${url}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}
const httpGet = (url, headers) => httpRequest(url, { headers });

/** Parses the Prometheus text format: `name{labels}` → number. */
function parseMetrics(text) {
  const samples = new Map();
  const types = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ');
      types.set(name, type);
    } else if (line && !line.startsWith('#')) {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
      if (m) samples.set(m[1], Number(m[2]));
    }
  }
  return { samples, types };
}

module.exports = {
  BIN, sleep, assert, eq, AssertionError, freePort, portOpen, spawnApp, startServer, runApp, killAll, tmpDir,
  b64u, unb64u, now, jwt, decodeJwt, Client, closeAllClients, expectRefused, httpRequest, httpGet, parseMetrics,
};

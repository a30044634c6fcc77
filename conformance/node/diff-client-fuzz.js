#!/usr/bin/env node
// Client-level differential fuzzer: the official Node server (reference-server.js)
// against the Rust conformance-server, driven through the official socket.io-client.
//
//   node diff-client-fuzz.js [--seeds N] [--start S]   run seeds S .. S+N-1 (default 0..199)
//   node diff-client-fuzz.js --seed S                  replay one seed, print both transcripts
//   options: --jobs J (scenarios in flight, 1 or 2, default 1; each job has its own servers),
//            --skip-known (leave out the triggers of the differences already known, see below),
//            --recovery (every seed on servers with connection state recovery),
//            --no-confirm (do not re-run divergent seeds), -v (one line per divergent seed)
//
// A scenario is a pure function of its seed (mulberry32): 1-4 socket.io-client Managers
// ("clients" A-D) with random options (transports, upgrade, forceBase64, query, extra
// headers, reconnection, rarely addTrailingSlash:false, per-socket ackTimeout/retries, how
// the client answers the server's ack requests) and a list of API steps: open a namespace
// (`/`, `/custom`, `/auth` with good or bad auth, dynamic, invalid, unknown), emit a contract
// event (or an odd name) with random arguments (JSON values, unicode, binary in any
// position, placeholder-shaped objects, large strings) in some mode (plain, callback,
// emitWithAck, timeout, volatile, compress(false)), disconnect()/connect() a socket, close
// the engine (also as an outage: no automatic reconnection while other clients go on, then
// back), sleep. About one seed in five runs on servers with connection state recovery.
//
// The scenario is played against both servers at the same time (each job has its own
// pair of servers, so concurrent scenarios never see each other's broadcasts). After
// each step every side waits until its clients have been quiet for QUIET ms and have
// nothing in progress (connection, upgrade, reconnection, expected acks, client timeouts,
// delayed answers, retry queues). Each client records what its sockets observe: connect
// (socket id, recovered), connect_error (message, data), disconnect (reason), events
// (describe()d arguments, whether an ack was requested), the acks of its own emits (from
// the ACK packet, in wire order) and the errors the client makes itself (timeout,
// disconnection), manager reconnection events, and its engine's transport after each step.
// Records are compared per client (the order between different clients is timing, not
// behaviour), step by step, as one ordered stream per namespace plus the order of the
// namespaces' disconnections; records whose time depends on something else than the
// packet order (acks that wait for a client's answer or a timer, client timeouts) are
// compared as a set. Socket ids are replaced by `<A/#1>` (client, namespace, n-th
// connection of that socket), room names carry a per-play salt that is removed, offsets
// of connection state recovery become `<off1>`, `<off2>`… per namespace, the polling
// timestamp `t` becomes `<t>`. A divergent seed is played again and counted only if it
// diverges at the same step, for the same client, with the same signature.
"use strict";

const { Manager } = require("socket.io-client");
const { startServer, stopAll } = require("./lib/servers");
const { describe } = require("./lib/util");

// ------------------------------------------------------------ command line
const argv = process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(name);
  if (i === -1) return dflt;
  return argv[i + 1];
}
const VERBOSE = argv.includes("-v");
const ONE_SEED = opt("--seed", null);
const N_SEEDS = Number(opt("--seeds", 200));
const START = Number(opt("--start", 0));
const JOBS = Math.min(2, Math.max(1, Number(opt("--jobs", 1))));
const CONFIRM = !argv.includes("--no-confirm");
// --skip-known leaves out what triggers the differences this fuzzer already found, so that a
// run finds new ones: rooms that are neither strings nor arrays of them (JavaScript keeps
// `null`, `1`, `{}` as they are, Rust makes them strings), lone UTF-16 surrogates in strings,
// packets the parser refuses (a placeholder naming a missing attachment, 11+ attachments),
// a `server-disconnect` among the emits of one tick (emits buffered while disconnected
// still go out together at the next connection).
const SKIP_KNOWN = argv.includes("--skip-known");
// every seed on servers with connection state recovery (otherwise one in five)
const ALL_RECOVERY = argv.includes("--recovery");

// Timers are chosen apart so that no two of them race: the server's `ask` and `ask-all`
// timeouts are 300 ms (0 would race with a fast answer over WebSocket, on the official server
// too), the client's timeouts 150 or 500 ms, socket ackTimeout 200 or 450 ms, and a "delayed"
// client answers the server's ack requests after 60 ms.
const DELAYED_ANSWER = 60;
const ACK_WAIT = 1500;
const QUIET = 35; // ms without any client activity that ends a step
const MAX_STEP = 3000; // a step never waits longer than this
const FLAGS = {
  "ping-interval": 10000, // no heartbeat inside a scenario (they last < 10 s)
  "ping-timeout": 5000,
  "connect-timeout": 30000,
};
const RECOVERY_FLAGS = { ...FLAGS, "connection-state-recovery": 5000 };

// ------------------------------------------------------------ seeded PRNG
function mulberry32(a) {
  return function () {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
class Rng {
  constructor(seed) {
    this.f = mulberry32(seed * 2654435761 + 777);
  }
  int(n) {
    return Math.floor(this.f() * n);
  }
  chance(p) {
    return this.f() < p;
  }
  pick(arr) {
    return arr[this.int(arr.length)];
  }
  weighted(list) {
    const total = list.reduce((s, [w]) => s + w, 0);
    let x = this.f() * total;
    for (const [w, v] of list) {
      if ((x -= w) < 0) return typeof v === "function" ? v() : v;
    }
    const v = list[list.length - 1][1];
    return typeof v === "function" ? v() : v;
  }
  bytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// ------------------------------------------------------------ grammar: values
// Values are built at generation time (a scenario is regenerated for every play, so
// no object is shared between the two servers' clients).
const STRINGS = ["", "a", "hello", "héllo", "😀🎉", "中文", "𝄞", "\u2028", "\u0000", "\u001e", 'q"uo\\te', "a\nb", "message", "_placeholder", "<id>", "null"];
const NUMBERS = [0, 1, -1, 42, 3.14159, -0, 1e21, 1e-7, 2 ** 53, -(2 ** 53) + 1, NaN, Infinity, -Infinity, 0.1, 255];
const KEYS = ["a", "b", "num", "_placeholder", "10", "2", "", "😀", "key with space", "constructor", "data"];

function binValue(r) {
  const bytes = r.bytes(r.weighted([[6, () => 1 + r.int(6)], [1, 0], [0.5, () => 100 + r.int(3000)]]));
  return r.weighted([
    [5, () => bytes],
    [2, () => new Uint8Array(bytes)],
    [2, () => { const ab = new ArrayBuffer(bytes.length); new Uint8Array(ab).set(bytes); return ab; }],
    [1, () => { const big = Buffer.concat([Buffer.from([9, 9]), bytes, Buffer.from([7])]); return new Uint8Array(big.buffer, big.byteOffset + 2, bytes.length); }],
    [1, () => { const n = bytes.length - (bytes.length % 2); const ab = new ArrayBuffer(n); new Uint8Array(ab).set(bytes.subarray(0, n)); return new Uint16Array(ab); }],
  ]);
}

function value(r, depth = 0) {
  return r.weighted([
    [5, () => r.pick(STRINGS)],
    [SKIP_KNOWN ? 0 : 0.3, () => r.pick(["\ud83d", "a\udc00b"])], // lone surrogates
    [0.3, () => "x".repeat(r.pick([1000, 20000]))],
    [0.03, () => "é".repeat(200000)], // 400 kB of UTF-8: two of them exceed maxPayload together
    [4, () => r.pick(NUMBERS)],
    [3, () => r.pick([true, false, null, undefined])],
    [3, () => binValue(r)],
    [0.7, () => ({ _placeholder: true, num: SKIP_KNOWN ? 0 : r.pick([0, 1]) })],
    [0.3, () => new Date(Date.UTC(2020, 1, 29, 12, 0, 0))],
    [depth < 3 ? 2.5 : 0, () => Array.from({ length: r.int(4) }, () => value(r, depth + 1))],
    [depth < 3 ? 2.5 : 0, () => {
      const o = {};
      for (let i = r.int(4); i > 0; i--) {
        const k = r.pick(KEYS);
        const v = value(r, depth + 1);
        // `_placeholder: true` without a valid `num` is a packet the parsers refuse (known difference:
        // the packets before it in the same burst)
        if (SKIP_KNOWN && k === "_placeholder" && v === true) continue;
        o[k] = v;
      }
      return o;
    }],
  ]);
}

/** Whether a value holds one of the large strings (anywhere). */
function hasBig(v) {
  if (typeof v === "string") return v.length > 100000;
  if (v === null || typeof v !== "object" || Buffer.isBuffer(v) || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return false;
  return Object.values(v).some(hasBig);
}

function hasBinary(v, seen = 0) {
  if (seen > 10) return false;
  if (v === null || typeof v !== "object") return false;
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return true;
  if (Array.isArray(v)) return v.some((x) => hasBinary(x, seen + 1));
  if (v instanceof Date) return false;
  return Object.values(v).some((x) => hasBinary(x, seen + 1));
}

function values(r, max = 4) {
  const n = r.weighted([[2, 0], [5, 1], [3, 2], [2, () => 3 + r.int(max - 2)], [0.15, "many-bin"]]);
  if (n === "many-bin") return Array.from({ length: SKIP_KNOWN ? 10 : 10 + r.int(3) }, () => r.bytes(2)); // 10 ok, 11+ refused
  return Array.from({ length: n }, () => value(r));
}

// ------------------------------------------------------------ scenario
const NAMES = ["A", "B", "C", "D"];
const ROOMS = ["r1", "r2", "r3", "😀", ""];
/** A room argument: salted rooms are { $room }, socket ids { $id: [client, nsp] }. */
function room(r, nClients) {
  return r.weighted([
    [8, () => ({ $room: r.pick(ROOMS) })],
    // joining the room named by another socket's id: it gets what that socket is sent
    [2, () => ({ $id: [r.int(nClients), "/"] })],
    [1, () => [{ $room: r.pick(ROOMS) }, { $room: r.pick(ROOMS) }]],
    [1, () => "observers"],
    [SKIP_KNOWN ? 0 : 0.4, () => r.pick([null, 1, [], {}])],
  ]);
}

const TRANSPORTS = [
  ["polling", { transports: ["polling"] }],
  ["websocket", { transports: ["websocket"] }],
  ["upgrade", {}],
  ["polling-noupgrade", { upgrade: false }],
  ["ws-then-polling", { transports: ["websocket", "polling"] }],
];

function genClient(r, i) {
  const [tname, topts] = r.weighted([[3, TRANSPORTS[0]], [3, TRANSPORTS[1]], [3, TRANSPORTS[2]], [1, TRANSPORTS[3]], [0.5, TRANSPORTS[4]]]);
  const opts = { ...topts };
  let kind = tname;
  if (r.chance(0.2)) {
    opts.forceBase64 = true;
    kind += "+b64";
  }
  if (r.chance(0.25)) opts.query = r.pick([{ q: "1" }, { "x y": "é&=", n: "" }, { EIO: "3" }, { t: "mine" }]);
  if (r.chance(0.2)) opts.extraHeaders = { "x-custom": r.pick(["v", "é"]) };
  opts.reconnection = r.chance(0.25);
  if (opts.reconnection) kind += "+reconn";
  if (r.chance(0.01)) {
    // "/socket.io" instead of "/socket.io/": not the servers' path (404)
    opts.addTrailingSlash = false;
    opts.timeout = 1000;
    opts.reconnection = false;
    kind += "+noslash";
  }
  return {
    name: NAMES[i],
    kind,
    opts,
    // how this client answers the server's ack requests (ask, message-back with ack, …)
    answer: r.weighted([[5, "echo"], [2, "none"], [1.5, "binary"], [1.5, "delayed"], [1, "empty"]]),
  };
}

const ROOT_EVENTS = [
  [10, "message"], [8, "message-with-ack"], [5, "join"], [2, "leave"], [3, "rooms"], [3, "broadcast"], [3, "emit-all"],
  [3, "to-room"], [2, "to-room-except"], [2, "socket-to-room"], [2, "volatile"], [1.5, "fanout"], [2, "server-disconnect"],
  [3, "ask"], [0.7, "ask-all"], [1, "recovered"], [1.5, "handshake"], [1, "odd-name"],
];

function eventArgs(r, ev, nClients) {
  switch (ev) {
    case "join":
    case "leave":
      return r.chance(0.9) ? [room(r, nClients)] : [room(r, nClients), value(r)];
    case "rooms":
    case "recovered":
    case "handshake":
      return r.chance(0.9) ? [] : [value(r)];
    case "to-room":
    case "socket-to-room":
      return [room(r, nClients), ...values(r, 3)];
    case "to-room-except":
      return [room(r, nClients), room(r, nClients), ...values(r, 2)];
    case "fanout":
      return [room(r, nClients), r.int(5)];
    case "server-disconnect":
      return [r.pick([true, false, false])];
    case "ask":
      return [300, ...values(r, 3)];
    case "ask-all":
      return [300];
    default:
      return values(r);
  }
}

const AUTHS = [
  ["none", undefined],
  ["good", { token: "secret" }],
  ["bad", { token: "nope" }],
  ["good+extra", { token: "secret", extra: ["😀", 1, null] }],
  ["obj", { a: 1, b: "é" }],
];

function genScenario(seed) {
  const r = new Rng(seed);
  const recovery = ALL_RECOVERY || new Rng(seed + 0xc0ffee).chance(0.2);
  const nClients = r.weighted([[2, 1], [4, 2], [3, 3], [2, 4]]);
  const clients = Array.from({ length: nClients }, (_, i) => genClient(r, i));
  const steps = [];
  const created = clients.map(() => new Set()); // namespaces opened so far, per client
  const open = (c, nsp, label) => {
    const first = !created[c].has(nsp);
    const step = { op: "open", c, nsp };
    if (first) {
      created[c].add(nsp);
      if (nsp === "/auth" || r.chance(0.3)) {
        const [l, auth] = nsp === "/auth" ? r.weighted([[3, AUTHS[1]], [2, AUTHS[2]], [1, AUTHS[0]], [1, AUTHS[3]]]) : r.pick(AUTHS);
        step.auth = auth;
        step.authLabel = l;
      }
      if (r.chance(0.12)) {
        step.sockOpts = { ackTimeout: r.pick([200, 450]), retries: r.pick([0, 1, 2]) };
      }
    }
    // emits right behind connect(): buffered, sent as soon as the CONNECT is answered (while
    // the transport is still being upgraded)
    if (r.chance(0.2)) step.after = Array.from({ length: 1 + r.int(3) }, () => genEmit(c, nsp, true));
    step.label = `${clients[c].name} ${first ? "open" : "reconnect"} ${nsp}${step.authLabel ? " auth:" + step.authLabel : ""}${step.sockOpts ? ` ackTimeout:${step.sockOpts.ackTimeout} retries:${step.sockOpts.retries}` : ""}${label || ""}${step.after ? ` + [${step.after.map((e) => e.label.replace(/^[A-D] /, "")).join(" | ")}]` : ""}`;
    if (step.after) step.big = step.after.some((e) => e.big);
    steps.push(step);
  };
  /** One emit of client c on nsp: { op: "emit", c, nsp, ev, args, mode, timeout, big, label }. */
  const genEmit = (c, nsp, inBurst = false) => {
    let ev = nsp === "/" ? r.weighted(ROOT_EVENTS) : r.weighted([[5, "message"], [3, "message-with-ack"], [1, "join"], [1, "odd-name"]]);
    // among other packets of the same tick, whether a `volatile-back` is dropped is timing
    // (the transport is busy with the previous answers, on either server); and the official
    // server's broadcast acks come a moment later (a promise, a 1 ms timer), so a
    // `server-disconnect` right behind them makes them lost (known, see README)
    if (inBurst && (ev === "volatile" || (SKIP_KNOWN && ev === "server-disconnect"))) ev = "message";
    // names no handler has: unknown, empty, numeric (the client sends a number as is),
    // Object.prototype members, non-ASCII
    if (ev === "odd-name") ev = r.pick(["no-such-event", "", 42, "42", 0, "constructor", "__proto__", "toString", "hasOwnProperty", "😀", "message back"]);
    const args = eventArgs(r, ev, nClients);
    let mode = r.weighted([
      [5, "plain"], [4, "cb"], [3, "withAck"], [3, "timeout-cb"], [2, "timeout-withAck"], [2, "volatile"], [1, "compress"],
      [0.7, "volatile-cb"],
    ]);
    const big = hasBig(args);
    // a large payload takes a debug build a while to parse and send back: no short timeout
    let timeout = mode.startsWith("timeout") ? (big ? 2000 : r.pick([150, 500])) : undefined;
    // a client that answers 60 ms late may be upgrading: its answer then waits for the upgrade,
    // which the server completes with a noop from its 100 ms check (on either server), so 150 ms
    // would race with it
    if (timeout === 150 && clients[c].answer === "delayed") timeout = 500;
    return {
      op: "emit", c, nsp, ev, args, mode, timeout, big,
      label: `${clients[c].name} emit:${mode}${timeout !== undefined ? "(" + timeout + ")" : ""} ${nsp} ${JSON.stringify(ev)} ${args.length}args${args.some((a) => hasBinary(a)) ? "+bin" : ""}`,
    };
  };
  const nsps = () => r.weighted([
    [12, "/"], [3, "/custom"], [3, "/auth"], [2, () => "/dynamic-" + r.pick(["abc", "x9", "zz"])],
    [1, () => r.pick(["/nope", "/dynamic-ABC", "/custom/sub"])],
  ]);
  // every client opens `/` first most of the time
  for (let c = 0; c < nClients; c++) open(c, r.chance(0.85) ? "/" : nsps());
  const nSteps = 3 + r.int(12);
  for (let k = 0; k < nSteps; k++) {
    const c = r.int(nClients);
    const mine = [...created[c]];
    r.weighted([
      [6, () => open(c, nsps())],
      [mine.length ? 48 : 0, () => steps.push(genEmit(c, r.chance(0.85) && created[c].has("/") ? "/" : r.pick(mine)))],
      // several emits in the same tick (one polling payload, frames back to back)
      [mine.length ? 7 : 0, () => {
        const emits = Array.from({ length: 2 + r.int(3) }, () => genEmit(c, r.chance(0.85) && created[c].has("/") ? "/" : r.pick(mine), true));
        steps.push({ op: "burst", c, emits, big: emits.some((e) => e.big), label: `${clients[c].name} burst [${emits.map((e) => e.label.replace(/^[A-D] /, "")).join(" | ")}]` });
      }],
      [mine.length ? 4 : 0, () => { const nsp = r.pick(mine); steps.push({ op: "disconnect", c, nsp, label: `${clients[c].name} disconnect() ${nsp}` }); }],
      [mine.length ? 3 : 0, () => open(c, r.pick(mine))],
      [3, () => steps.push({ op: "engine-close", c, label: `${clients[c].name} io.engine.close()` })],
      // an outage: the connection drops (no automatic reconnection), others go on, it comes back
      // (with connection state recovery: recovered, with the packets it missed)
      [created[c].has("/") && nClients > 1 ? 2.5 : 0, () => {
        steps.push({ op: "outage", c, label: `${clients[c].name} io.engine.close() without reconnection` });
        for (let j = 1 + r.int(3); j > 0; j--) {
          const o = (c + 1 + r.int(nClients - 1)) % nClients;
          if (!created[o].has("/")) continue;
          const ev = r.pick(["emit-all", "broadcast", "to-room", "fanout", "message"]);
          const args = eventArgs(r, ev, nClients);
          steps.push({ op: "emit", c: o, nsp: "/", ev, args, mode: "plain", big: hasBig(args), label: `${clients[o].name} emit:plain / ${JSON.stringify(ev)} ${args.length}args` });
        }
        open(c, "/");
      }],
      [2, () => { const ms = r.pick([50, 150, 300]); steps.push({ op: "sleep", ms, label: `sleep ${ms}` }); }],
    ]);
  }
  return { seed, recovery, clients, steps };
}

// ------------------------------------------------------------ running a scenario
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

/** Replaces { $room } and { $id } tokens by their runtime values. */
function resolve(v, ctx) {
  if (v === null || typeof v !== "object") return v;
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v) || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map((x) => resolve(x, ctx));
  if (Object.keys(v).length === 1 && "$room" in v) return ctx.salt + v.$room;
  if (Object.keys(v).length === 1 && "$id" in v) {
    const [c, nsp] = v.$id;
    const s = ctx.clients[c]?.sockets.get(nsp);
    return (s && s.id) || ctx.salt + "no-id";
  }
  const out = {};
  for (const k of Object.keys(v)) out[k] = resolve(v[k], ctx);
  return out;
}

function answerFor(policy, args) {
  if (policy === "empty") return [];
  if (policy === "binary") return ["bin", Buffer.from([1, 2, 3]), { nested: [new Uint8Array([255])] }];
  return ["ans", ...args];
}

function makeClient(server, spec, ci, ctx) {
  const cl = { spec, ci, sockets: new Map(), log: [], connects: new Map(), pending: new Set(), lastTransport: undefined, probing: false };
  const rec = (ns, kind, name, val, extra, unordered) => {
    if (ctx.stopped) return;
    cl.log.push({ step: ctx.step, ns, kind, name, val, extra, unordered });
    ctx.last = Date.now();
  };
  cl.rec = rec;
  const mgr = new Manager(server.url, {
    ...spec.opts,
    autoConnect: false,
    timeout: 5000,
    ...spec.opts,
    reconnectionDelay: 100,
    reconnectionDelayMax: 100,
    randomizationFactor: 0,
    reconnectionAttempts: 3,
  });
  cl.mgr = mgr;
  mgr.on("reconnect_attempt", (n) => rec("mgr", "reconnect_attempt", String(n)));
  mgr.on("reconnect", (n) => rec("mgr", "reconnect", String(n)));
  mgr.on("reconnect_error", (e) => rec("mgr", "reconnect_error", e && e.message));
  mgr.on("reconnect_failed", () => rec("mgr", "reconnect_failed", ""));
  mgr.on("error", (e) => rec("mgr", "error", String(e && e.message)));
  mgr.on("open", () => {
    const engine = mgr.engine;
    engine.on("packet", () => (ctx.last = Date.now()));
    if (engine.opts.upgrade && engine._upgrades && engine._upgrades.length && engine.transport.name === "polling") {
      cl.probing = true;
      const done = () => (cl.probing = false);
      engine.once("upgrade", done);
      engine.once("upgradeError", done);
      engine.once("close", done);
    }
  });
  return cl;
}

function socketFor(cl, nsp, step, ctx) {
  let s = cl.sockets.get(nsp);
  if (s) return s;
  const opts = {};
  if (step.auth !== undefined) opts.auth = step.auth;
  if (step.sockOpts) Object.assign(opts, step.sockOpts);
  s = cl.mgr.socket(nsp, opts);
  cl.sockets.set(nsp, s);
  const rec = (...a) => cl.rec(nsp, ...a);
  // acks recorded from their packet: ack id -> { tag, sync, bc } of the emit that asked for it
  const ackInfo = new Map();
  const register = s._registerAckCallback.bind(s);
  s._registerAckCallback = (id, ack) => {
    const info = s.__emitting || (s.flags.fromQueue && s._queue[0] && s._queue[0].__info) || { tag: "queued", sync: false, bc: false };
    ackInfo.set(id, info);
    return register(id, ack);
  };
  const onack = s.onack.bind(s);
  s.onack = (packet) => {
    const info = ackInfo.get(packet.id);
    if (info && typeof s.acks[packet.id] === "function") {
      const data = packet.data || [];
      if (info.loose) cl.log.push({ step: ctx.step, ns: nsp, kind: "ack", name: info.tag, val: describe(data), loose: true });
      else cl.rec(nsp, "ack", info.tag, info.bc ? bcast(data[0], data[1]) : describe(data), undefined, !info.sync);
    }
    return onack(packet);
  };
  s.on("connect", () => {
    const n = (cl.connects.get(nsp) || 0) + 1;
    cl.connects.set(nsp, n);
    if (!ctx.ids.has(s.id)) ctx.ids.set(s.id, `<${cl.spec.name}${nsp}#${n}>`);
    if (s._pid && !ctx.ids.has(s._pid)) ctx.ids.set(s._pid, `<pid:${cl.spec.name}${nsp}#${n}>`);
    rec("connect", "", { id: s.id, recovered: s.recovered });
  });
  s.on("connect_error", (e) => rec("connect_error", String(e && e.message), describe(e && e.data)));
  s.on("disconnect", (reason) => rec("disconnect", reason));
  s.onAny((ev, ...args) => {
    let ack = null;
    if (typeof args[args.length - 1] === "function") ack = args.pop();
    let shown = describe(args);
    // connection state recovery: an event without ack request (and not volatile) ends with
    // its offset, a server-generated string
    if (ctx.recovery && !ack && ev !== "volatile-back" && typeof args[args.length - 1] === "string") {
      const off = args[args.length - 1];
      // named at the end (see transcript()), in an order that does not depend on timing
      shown = shown.slice(0, -1).concat([{ $offset: off }]);
    }
    if (ev === "peer-disconnect" && args[0] && !ctx.ids.has(args[0].id)) return; // a socket of an earlier play
    // a volatile packet sent when the transport is busy may be dropped (right after a
    // connection, among the other packets of a burst): timing on either server, not compared
    if (ev === "volatile-back" && ctx.busyStep) cl.log.push({ step: ctx.step, ns: nsp, kind: "event", name: ev, val: shown, extra: ack ? "+ack" : undefined, loose: true });
    else rec("event", String(ev), shown, ack ? "+ack" : undefined);
    if (ack) {
      const policy = cl.spec.answer;
      if (policy === "none") return;
      const reply = answerFor(policy, args);
      if (policy === "delayed") {
        const token = {};
        cl.pending.add(token);
        setTimeout(() => {
          cl.pending.delete(token);
          ack(...reply);
        }, DELAYED_ANSWER);
      } else ack(...reply);
    }
  });
  return s;
}

// The ack of a broadcast with an ack request (no timeout set): the official server sets a
// timer of `undefined` ms (1 ms) and answers with whatever it has when it fires, so with
// targets it is `({}, [])` (timed out) or `(null, replies)` when every target answered within
// that millisecond: timing. Only "no target at all" (`(null, [])`, at once) is behaviour.
const BROADCASTS = ["broadcast", "emit-all", "to-room", "to-room-except", "socket-to-room"];
// handlers of `/` that answer at once (the other answers wait for a client or a timer)
const SYNC_ACKS = ["message-with-ack", "join", "leave", "rooms", "recovered", "handshake"];
function bcast(err, replies) {
  if (err === null && Array.isArray(replies) && replies.length === 0) return "(null, []): no target";
  if (err !== null && !(typeof err === "object" && Object.keys(err).length === 0)) return describe([err, replies]);
  return "({}, []) or (null, replies): targets";
}

/** Whether the server is expected to answer an emit of `ev` on `nsp` with an ack. */
function expectsAck(cl, nsp, ev, mode, timeout, nArgs) {
  if (timeout !== undefined) return true;
  const s = cl.sockets.get(nsp);
  if (s && s._opts.ackTimeout !== undefined) return true;
  if (nsp !== "/") return false;
  // the reference handlers take the ack at a fixed place: `join(room, ack)`, `rooms(ack)`…
  if ((ev === "join" || ev === "leave") && nArgs !== 1) return false;
  if (["rooms", "recovered", "handshake"].includes(ev) && nArgs !== 0) return false;
  if (["message-with-ack", "join", "leave", "rooms", "handshake", "recovered", "ask", "ask-all", "broadcast", "emit-all", "to-room", "to-room-except", "socket-to-room"].includes(ev)) return true;
  if (ev === "message" || (ev === "volatile" && mode !== "volatile-cb")) return cl.spec.answer !== "none";
  return false;
}

async function perform(step, ctx, k) {
  const cl = ctx.clients[step.c];
  if (step.op === "sleep") return sleep(step.ms);
  if (step.op === "engine-close") {
    if (cl.mgr.engine) cl.mgr.engine.close();
    return;
  }
  if (step.op === "outage") {
    cl.mgr.reconnection(false);
    if (cl.mgr.engine) cl.mgr.engine.close();
    return;
  }
  if (step.op === "open") {
    cl.mgr.reconnection(!!cl.spec.opts.reconnection);
    const s = socketFor(cl, step.nsp, step, ctx);
    s.connect();
    for (const [j, e] of (step.after || []).entries()) doEmit(e, ctx, `s${k}.${j}`);
    return;
  }
  if (step.op === "disconnect") {
    cl.sockets.get(step.nsp).disconnect();
    return;
  }
  if (step.op === "burst") {
    for (const [j, e] of step.emits.entries()) doEmit(e, ctx, `s${k}.${j}`);
    return;
  }
  doEmit(step, ctx, `s${k}`);
}

/** One emit (a step of its own, or part of a burst / an open). */
function doEmit(step, ctx, tag) {
  const cl = ctx.clients[step.c];
  const s = cl.sockets.get(step.nsp);
  const args = resolve(step.args, ctx);
  // Acks are recorded when their packet is handled (see socketFor), in the order of the wire:
  // emitWithAck's promise would add a microtask of delay and reorder them against callbacks.
  // Ordering: the server handles a connection's packets in order and what a handler sends at
  // once keeps that order; but an answer that waits for something else (the client's own
  // answer to a forwarded ack request, a timer such as the 1 ms of a broadcast's ack, the
  // client's timeout) lands among the other records by timing. Those records are compared
  // apart from the others, as a set (see transcript()).
  const sync = step.nsp === "/" && SYNC_ACKS.includes(step.ev);
  const bc = step.nsp === "/" && BROADCASTS.includes(step.ev);
  // the answer to a `volatile` event depends on whether its volatile-back got through
  const loose = step.nsp === "/" && step.ev === "volatile" && (ctx.busyStep || !s.connected);
  const expect = expectsAck(cl, step.nsp, step.ev, step.mode, step.timeout, args.length);
  let token = null;
  // a client-side timeout runs even while the socket is disconnected (the emit is buffered),
  // except for an emit queued by `retries`, whose timer starts when it is sent
  const queued = !!s._opts.retries && !step.mode.startsWith("volatile");
  const timed = !queued && (step.timeout !== undefined || s._opts.ackTimeout !== undefined);
  const track = () => {
    if (!expect) return;
    token = { s, timed, t0: null };
    cl.pending.add(token);
  };
  // the API's own outcome: only the errors the client makes itself (timeout, disconnection)
  const done = (err) => {
    if (token) cl.pending.delete(token);
    if (err instanceof Error && loose) cl.log.push({ step: ctx.step, ns: step.nsp, kind: "ack-error", name: tag, val: err.message, loose: true });
    else if (err instanceof Error) cl.rec(step.nsp, "ack-error", tag, err.message, undefined, err.message === "operation has timed out" || !sync);
  };
  const queueLength = s._queue.length;
  s.__emitting = { tag, sync, bc, loose };
  try {
    switch (step.mode) {
      case "plain":
        s.emit(step.ev, ...args);
        break;
      case "compress":
        s.compress(false).emit(step.ev, ...args);
        break;
      case "volatile":
        s.volatile.emit(step.ev, ...args);
        break;
      case "volatile-cb":
        track();
        s.volatile.emit(step.ev, ...args, (err) => done(err));
        break;
      case "cb":
        track();
        s.emit(step.ev, ...args, (err) => done(err));
        break;
      case "timeout-cb":
        track();
        s.timeout(step.timeout).emit(step.ev, ...args, (err) => done(err));
        break;
      case "withAck":
      case "timeout-withAck": {
        track();
        const p = step.mode === "withAck" ? s.emitWithAck(step.ev, ...args) : s.timeout(step.timeout).emitWithAck(step.ev, ...args);
        p.then(() => done(null), (e) => done(e));
        break;
      }
    }
  } finally {
    s.__emitting = null;
  }
  // an emit queued by `retries` is sent later (maybe at the next connection): its acks keep the tag
  if (s._queue.length > queueLength) s._queue[s._queue.length - 1].__info = { tag, sync, bc, loose };
}

function busy(ctx) {
  for (const cl of ctx.clients) {
    const m = cl.mgr;
    if (m._readyState === "opening" || m._reconnecting) return true;
    if (cl.probing) return true;
    for (const s of cl.sockets.values()) {
      if (s.active && !s.connected && m._readyState === "open") return true; // CONNECT in flight
      if (s.connected && s._queue.length) return true; // retries queue
    }
    for (const t of cl.pending) {
      if (!t.s || t.timed) return true;
      // an expected answer is awaited for ACK_WAIT ms of connection (it may have been lost
      // with a connection, and a plain callback is never told)
      if (!t.s.connected) t.t0 = null;
      else if (t.t0 === null) t.t0 = Date.now();
      if (t.s.connected && Date.now() - t.t0 < ACK_WAIT) return true;
    }
  }
  return false;
}

async function settle(ctx, quiet = QUIET) {
  const t0 = Date.now();
  await sleep(quiet);
  while (Date.now() - t0 < MAX_STEP) {
    const idle = Date.now() - ctx.last;
    if (idle >= quiet && !busy(ctx)) return;
    await sleep(Math.max(10, Math.min(quiet - idle, 30)));
  }
}

function transportOf(cl) {
  const e = cl.mgr.engine;
  return e && e.readyState === "open" ? e.transport.name : "-";
}

let playCount = 0;
async function play(server, sc) {
  const ctx = {
    step: 0,
    last: Date.now(),
    stopped: false,
    recovery: sc.recovery,
    ids: new Map(),
    salt: `~${process.pid.toString(36)}${(++playCount).toString(36)}~`,
  };
  ctx.clients = sc.clients.map((spec, ci) => makeClient(server, spec, ci, ctx));
  for (const [k, step] of sc.steps.entries()) {
    ctx.step = k;
    ctx.busyStep = step.op === "open" || step.op === "burst";
    try {
      await perform(step, ctx, k);
    } catch (e) {
      ctx.clients[step.c]?.rec("-", "threw", String(e && e.message));
    }
    // a large payload takes a debug build a while to parse and forward: a longer silence
    await settle(ctx, step.big ? 30 * QUIET : QUIET);
    for (const cl of ctx.clients) {
      const t = transportOf(cl);
      if (t !== cl.lastTransport) {
        cl.rec("engine", "transport", "", t);
        cl.lastTransport = t;
      }
    }
  }
  ctx.stopped = true;
  // teardown: nothing may outlive the play (the next scenario runs on the same servers)
  for (const cl of ctx.clients) {
    cl.mgr.reconnection(false);
    for (const s of cl.sockets.values()) s.disconnect();
    if (cl.mgr.engine) cl.mgr.engine.close();
  }
  await sleep(60);
  return transcript(sc, ctx);
}

// ------------------------------------------------------------ normalization
function normalizeValue(v, ctx, offs) {
  if (typeof v === "string") return normString(v, ctx);
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    const out = v.map((x) => normalizeValue(x, ctx, offs));
    // string lists that held an id or a salted room are sorted again: the servers sort some (ask-all
    // replies) by the raw names; the join order of rooms is checked by the differential tests instead
    if (v.length > 1 && v.every((x) => typeof x === "string") && v.some((x, i) => x !== out[i])) out.sort();
    return out;
  }
  if (Object.keys(v).length === 1 && typeof v.$offset === "string") return offs.get(v.$offset) || "<off?>";
  const out = {};
  for (const k of Object.keys(v)) {
    if (k === "t" && v.EIO !== undefined && v.transport !== undefined) out[k] = "<t>";
    // the auth of a CONNECT that asks for a recovery: { pid, offset, ...auth }
    else if (k === "offset" && typeof v[k] === "string" && "pid" in v) out[k] = offs.get(v[k]) || "<off?>";
    else out[normString(k, ctx)] = normalizeValue(v[k], ctx, offs);
  }
  return out;
}

function normString(s, ctx) {
  let out = s;
  if (out.includes(ctx.salt)) out = out.split(ctx.salt).join("");
  for (const [id, alias] of ctx.ids) if (out.includes(id)) out = out.split(id).join(alias);
  if (/EIO=/.test(out)) out = out.replace(/([?&]t=)[^&]*/g, "$1<t>");
  return out;
}

function entryText(e, ctx, cl) {
  const v = normalizeValue(e.val, ctx, ctx.offsets.get(e.ns) || new Map());
  const val = v === undefined ? "" : " " + JSON.stringify(v);
  return `${e.ns} ${e.kind}${e.name ? " " + e.name : ""}${val}${e.extra ? " " + e.extra : ""}`;
}

/** Coarse class of a record, for grouping. */
function entryClass(e) {
  let detail = "";
  if (["disconnect", "connect_error", "event", "threw"].includes(e.kind) || e.kind.startsWith("reconnect") || e.kind === "error") detail = e.name;
  else if (e.kind === "ack-error" || e.kind === "transport") detail = String(e.val);
  return `${e.ns} ${e.kind}${detail ? " " + detail : ""}${e.extra ? " " + e.extra : ""}`;
}

/** [{ label, out: [[...entries of client 0], ...] }] */
function transcript(sc, ctx) {
  // offsets: numbered per namespace, step by step, then client by client, each client's records
  // in order (so that a difference in a later step leaves the names of earlier steps alone)
  ctx.offsets = new Map();
  const walk = (v, offs) => {
    if (v === null || typeof v !== "object") return;
    if (Object.keys(v).length === 1 && typeof v.$offset === "string") {
      if (!offs.has(v.$offset)) offs.set(v.$offset, `<off${offs.size + 1}>`);
      return;
    }
    for (const x of Object.values(v)) walk(x, offs);
  };
  for (let k = 0; k < sc.steps.length; k++) {
    for (const cl of ctx.clients) {
      for (const e of cl.log) {
        if (e.step !== k) continue;
        if (!ctx.offsets.has(e.ns)) ctx.offsets.set(e.ns, new Map());
        walk(e.val, ctx.offsets.get(e.ns));
      }
    }
  }
  return sc.steps.map((step, k) => ({
    label: step.label,
    out: ctx.clients.map((cl) => {
      const mine = cl.log.filter((e) => e.step === k);
      // one ordered stream per namespace (and one for the manager, one for the engine): the
      // official server answers CONNECTs through asynchronous steps (middlewares, session
      // restore), so records of different namespaces interleave by timing; but the DISCONNECTs
      // of `disconnect(true)` (and the client's own closes) come in namespace order, kept apart
      const byNs = new Map();
      for (const e of mine.filter((x) => !x.unordered && !x.loose)) {
        if (!byNs.has(e.ns)) byNs.set(e.ns, []);
        byNs.get(e.ns).push({ text: entryText(e, ctx, cl), cls: entryClass(e) });
      }
      const ordered = [...byNs.keys()].sort().flatMap((ns) => byNs.get(ns));
      const disc = mine.filter((e) => e.kind === "disconnect");
      if (new Set(disc.map((e) => e.ns)).size > 1) ordered.push({ text: "disconnect order: " + disc.map((e) => e.ns).join(" "), cls: "disconnect order" });
      const apart = mine.filter((e) => e.unordered && !e.loose).map((e) => ({ text: "(any order) " + entryText(e, ctx, cl), cls: entryClass(e) }));
      const loose = mine.filter((e) => e.loose).map((e) => ({ text: "(not compared) " + entryText(e, ctx, cl), cls: entryClass(e), loose: true }));
      return ordered.concat(apart.sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0)), loose);
    }),
  }));
}

// ------------------------------------------------------------ comparison
const texts = (list) => JSON.stringify((list || []).filter((e) => !e.loose).map((e) => e.text));

function firstDiff(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const n = Math.max(a[i]?.out.length || 0, b[i]?.out.length || 0);
    for (let c = 0; c < n; c++) if (texts(a[i]?.out[c]) !== texts(b[i]?.out[c])) return { i, c };
  }
  return null;
}

function signature(sc, tn, tr, d) {
  const step = sc.steps[d.i];
  const cl = sc.clients[d.c];
  let coarse = step.label.replace(/^[A-D] /, "");
  if (step.op === "emit") {
    const m = { plain: "no-ack", compress: "no-ack", volatile: "no-ack", cb: "ack", withAck: "ack", "volatile-cb": "ack", "timeout-cb": "ack+timeout", "timeout-withAck": "ack+timeout" }[step.mode];
    coarse = `emit(${m}) ${step.nsp === "/" ? "/" : "other-nsp"} ${JSON.stringify(step.ev)}`;
  } else if (step.op === "burst") coarse = "burst of emits (one tick)";
  else if (step.op === "open") coarse = coarse.replace(/ \+ \[.*/, step.after ? " + emits right behind" : "").replace(/ ackTimeout.*/, "").replace(/\/dynamic-\w+/, "/dynamic-x");
  const classes = (list) => {
    const a = (list || []).map((e) => e.cls);
    return a.length ? a.join(" ; ") : "nothing";
  };
  // only the part where they differ (common prefix dropped)
  const n = (tn[d.i].out[d.c] || []).filter((e) => !e.loose);
  const r = (tr[d.i].out[d.c] || []).filter((e) => !e.loose);
  let p = 0;
  while (p < n.length && p < r.length && n[p].text === r[p].text) p++;
  const cn = classes(n.slice(p));
  const cr = classes(r.slice(p));
  let hint = "";
  if (cn === cr) {
    const x = n[p].text;
    const y = r[p].text;
    if (/\\ud[89a-f][0-9a-f]{2}/.test(x) && y.includes("\ufffd")) return "values differ: a lone surrogate in a string comes back as U+FFFD from R (any step)";
    hint = " || values differ";
  }
  if (cl.opts.addTrailingSlash === false) coarse = "client with addTrailingSlash:false | " + coarse;
  return `${sc.recovery ? "[recovery] " : ""}${step.c === d.c ? "" : "(another client) "}${coarse} || N: ${cn} || R: ${cr}${hint}`;
}

function printTranscripts(sc, tn, tr) {
  console.log(`seed ${sc.seed}${sc.recovery ? " (connection state recovery)" : ""}: clients ${sc.clients.map((c) => `${c.name}=${c.kind}${c.opts.query ? " query=" + JSON.stringify(c.opts.query) : ""}${c.opts.extraHeaders ? " x-custom" : ""} answer:${c.answer}`).join(", ")}`);
  for (let i = 0; i < sc.steps.length; i++) {
    const step = sc.steps[i];
    let input = "";
    const brief = (v) => JSON.stringify(describe(v), (k, x) => (typeof x === "string" && x.length > 60 ? `${x.slice(0, 20)}…(${x.length} chars)` : x));
    if (step.op === "emit") input = `        >> ${brief(step.args)}`.slice(0, 400);
    if (step.op === "burst" || step.after) input = (step.emits || step.after).map((e) => `        >> ${brief(e.args)}`.slice(0, 400)).join("\n");
    console.log(`   step ${i}: ${step.label}${input ? "\n" + input : ""}`);
    for (let c = 0; c < sc.clients.length; c++) {
      const a = tn[i].out[c];
      const b = tr[i].out[c];
      const name = sc.clients[c].name;
      if (texts(a) === texts(b)) {
        for (const e of a) console.log(`        ${name} = ${e.text.slice(0, 400)}`);
      } else {
        for (const e of a) console.log(`     !! ${name} N: ${e.text.slice(0, 400)}`);
        if (!a.length) console.log(`     !! ${name} N: (nothing)`);
        for (const e of b) console.log(`     !! ${name} R: ${e.text.slice(0, 400)}`);
        if (!b.length) console.log(`     !! ${name} R: (nothing)`);
      }
    }
  }
}

// ------------------------------------------------------------ main
async function main() {
  const pairs = []; // per job: { plain: {node, rust}, recovery: {node, rust} }
  const ensure = async (job, mode) => {
    pairs[job] = pairs[job] || {};
    const p = (pairs[job][mode] = pairs[job][mode] || {});
    const dead = [];
    for (const kind of ["node", "rust"]) {
      if (p[kind] && !p[kind].alive()) {
        dead.push(`${kind} (${mode}) died: ${JSON.stringify(p[kind].exitInfo())}\n${p[kind].output().slice(-15).join("\n")}`);
        p[kind] = null;
      }
      if (!p[kind]) p[kind] = await startServer(kind, mode === "recovery" ? RECOVERY_FLAGS : FLAGS);
    }
    return { p, dead };
  };

  const run = async (job, seed) => {
    const mode = genScenario(seed).recovery ? "recovery" : "plain";
    const { p, dead } = await ensure(job, mode);
    const [tn, tr] = await Promise.all([play(p.node, genScenario(seed)), play(p.rust, genScenario(seed))]);
    const after = await ensure(job, mode);
    const sc = genScenario(seed);
    return { sc, tn, tr, d: firstDiff(tn, tr), dead: [...dead, ...after.dead] };
  };

  if (ONE_SEED !== null) {
    const { sc, tn, tr, d, dead } = await run(0, Number(ONE_SEED));
    printTranscripts(sc, tn, tr);
    console.log(d === null ? "\nsame" : `\nfirst difference at step ${d.i}, client ${sc.clients[d.c].name}\n${signature(sc, tn, tr, d)}`);
    if (dead.length) console.log(dead.join("\n"));
    return;
  }

  const groups = new Map();
  let same = 0;
  let flaky = 0;
  let deaths = 0;
  const seeds = Array.from({ length: N_SEEDS }, (_, k) => START + k);
  const t0 = Date.now();
  let next = 0;
  let doneCount = 0;
  const worker = async (job) => {
    while (next < seeds.length) {
      const seed = seeds[next++];
      const res = await run(job, seed);
      if (res.dead.length) {
        deaths++;
        console.log(`seed ${seed}: SERVER DIED\n${res.dead.join("\n")}`);
      }
      if (res.d === null) same++;
      else {
        const sig = signature(res.sc, res.tn, res.tr, res.d);
        let confirmed = true;
        if (CONFIRM) {
          const again = await run(job, seed);
          if (again.d === null || again.d.i !== res.d.i || again.d.c !== res.d.c || signature(again.sc, again.tn, again.tr, again.d) !== sig) {
            confirmed = false;
            flaky++;
            if (VERBOSE) console.log(`seed ${seed}: not reproduced (step ${res.d.i} then ${again.d ? again.d.i : "none"})`);
          }
        }
        if (confirmed) {
          const g = groups.get(sig) || { sig, seeds: [], example: null };
          g.seeds.push(seed);
          if (!g.example) g.example = res;
          groups.set(sig, g);
          if (VERBOSE) console.log(`seed ${seed}: diverges at step ${res.d.i}: ${sig}`);
        }
      }
      if (++doneCount % 25 === 0) process.stderr.write(`.. ${doneCount}/${seeds.length} seeds, ${Math.round((Date.now() - t0) / 1000)} s\n`);
    }
  };
  await Promise.all(Array.from({ length: JOBS }, (_, j) => worker(j)));

  const sorted = [...groups.values()].sort((a, b) => b.seeds.length - a.seeds.length);
  const divergent = sorted.reduce((s, g) => s + g.seeds.length, 0);
  console.log(`\n${seeds.length} seeds (${START}..${START + seeds.length - 1}): ${same} identical, ${divergent} divergent, ${flaky} not reproduced on replay; ${sorted.length} signatures${deaths ? `; ${deaths} with a server death` : ""} (${Math.round((Date.now() - t0) / 1000)} s)\n`);
  for (const g of sorted) {
    const { sc, tn, tr, d } = g.example;
    console.log(`== ${g.seeds.length}x  ${g.sig}`);
    console.log(`   seeds: ${g.seeds.slice(0, 12).join(" ")}${g.seeds.length > 12 ? " …" : ""}`);
    console.log(`   e.g. seed ${sc.seed} step ${d.i} (${sc.steps[d.i].label}), client ${sc.clients[d.c].name}`);
    for (const e of (tn[d.i].out[d.c] || []).slice(0, 5)) console.log(`     N: ${e.text.slice(0, 200)}`);
    if (!tn[d.i].out[d.c]?.length) console.log("     N: (nothing)");
    for (const e of (tr[d.i].out[d.c] || []).slice(0, 5)) console.log(`     R: ${e.text.slice(0, 200)}`);
    if (!tr[d.i].out[d.c]?.length) console.log("     R: (nothing)");
  }
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 2;
  })
  .finally(() => stopAll().then(() => process.exit()));

#!/usr/bin/env node
// Differential protocol fuzzer: the official Node server (reference-server.js)
// against the Rust conformance-server.
//
//   node diff-fuzz.js [--seeds N] [--start S]   run seeds S .. S+N-1 (default 0..199)
//   node diff-fuzz.js --seed S [-v]             replay one seed, print both transcripts
//   options: --jobs J (scenarios in flight, default 1), --kind ws-sio|ws-eio|polling|upgrade
//            (restrict the scenario kind), --no-confirm (do not re-run divergent seeds)
//
// A scenario is a pure function of its seed (mulberry32): a list of steps made of
// raw bytes (WebSocket frames, HTTP requests). The same steps are played against
// both servers at the same time; after every step each side waits until its server
// has been quiet for QUIET ms, and records what it saw. Ids that legitimately
// differ (Engine.IO sid, Socket.IO socket id, pid) are replaced by placeholders in
// order of appearance. The first step whose records differ is the divergence of the
// seed; a divergent seed is played a second time and only counted if it diverges
// again at the same step the same way (timing flukes are not findings).
// Divergences are grouped by signature: the shape of the step input + the kind of
// answer of each server.
"use strict";

const http = require("node:http");
const WebSocket = require("ws");
const { startServer, stopAll } = require("./lib/servers");

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
const JOBS = Number(opt("--jobs", 1));
const ONLY_KIND = opt("--kind", null);
const CONFIRM = !argv.includes("--no-confirm");

const QUIET = 200; // ms without any event that ends a step
const MAX_STEP = 3000; // a step never waits longer than this
const FLAGS = {
  "ping-interval": 10000, // no heartbeat inside a scenario (they last < 10 s)
  "ping-timeout": 5000,
  "connect-timeout": 30000, // no connect-timeout race inside a scenario
};

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
    this.f = mulberry32(seed * 2654435761 + 12345);
  }
  next() {
    return this.f();
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
  /** weighted([[w, value], ...]): a value is returned as is, a function is called. */
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

// ------------------------------------------------------------ grammar: JSON
// Values are produced as text so that odd-but-valid spellings (1.0, -0, 1e400,
// escapes) and invalid JSON can both be generated. `label` keeps a coarse shape.
const NUMBERS = ["0", "1", "-1", "1.0", "-0", "1e21", "1e20", "0.1", "9007199254740993",
  "123456789012345678901234567890", "1E5", "1e-7", "5e-324", "1e400", "-1e400", "2.50"];
const STRINGS = ['""', '"a"', '"héllo"', '"\\u0000"', '"\\ud83d"', '"\\ud83d\\ude00"', '"😀"',
  '"\\u2028"', '"\\u001e"', '"\\""', '"a\\nb"', '"\\/"', '"\u0001"', '"\\uDEAD"', '"\\u00e9"'];
const PLACEHOLDERS = ['{"_placeholder":true,"num":0}', '{"_placeholder":true,"num":1}',
  '{"_placeholder":true,"num":-1}', '{"_placeholder":true,"num":"0"}', '{"_placeholder":true}',
  '{"_placeholder":false,"num":0}', '{"_placeholder":true,"num":0.5}', '{"_placeholder":true,"num":10}',
  '{"_placeholder":"true","num":0}', '{"num":0,"_placeholder":true}', '{"_placeholder":true,"num":0,"x":1}'];
const BAD_JSON = ["undefined", "NaN", "Infinity", "01", ".5", "+1", "0x1f", "[1,]", '{"a":1,}', "1 2",
  "'s'", '"\\x41"', '"unterminated', "tru", "[", "{", '"\t"'];
const KEYS = ["a", "b", "__proto__", "constructor", "_placeholder", "num", "toString", "", "0"];
const ROOMS = ['"room1"', '"room2"', '""', '"😀"', "1", "null", '["room1","room2"]', "{}"];

function jsonValue(r, depth = 0) {
  return r.weighted([
    [4, () => r.pick(NUMBERS)],
    [4, () => r.pick(STRINGS)],
    [2, () => r.pick(["true", "false", "null"])],
    [2, () => r.pick(PLACEHOLDERS)],
    [0.6, () => r.pick(BAD_JSON)],
    [depth < 3 ? 2 : 0, () => "[" + Array.from({ length: r.int(4) }, () => jsonValue(r, depth + 1)).join(",") + "]"],
    [depth < 3 ? 2 : 0, () => "{" + Array.from({ length: r.int(4) }, () => JSON.stringify(r.pick(KEYS)) + ":" + jsonValue(r, depth + 1)).join(",") + "}"],
  ]);
}

const EVENTS = ["message", "message-with-ack", "join", "leave", "rooms", "handshake", "recovered", "server-disconnect", "ask"];
const RESERVED = ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener", "error"];
const NON_STRING_NAMES = ["1", "null", "{}", "[]", "true", '""', "1.5", '{"a":1}'];

/** An event array `["name", ...args]`; returns { text, label }. */
function eventArray(r) {
  let name;
  let nameLabel;
  r.weighted([
    [14, () => { name = JSON.stringify(r.pick(EVENTS)); nameLabel = JSON.parse(name); }],
    [3, () => { name = JSON.stringify(r.pick(RESERVED)); nameLabel = "reserved:" + JSON.parse(name); }],
    [3, () => { name = r.pick(NON_STRING_NAMES); nameLabel = "nonstring:" + name; }],
  ]);
  let args = [];
  const ev = nameLabel;
  if (ev === "join" || ev === "leave") args = [r.pick(ROOMS)];
  else if (ev === "server-disconnect") args = [r.pick(["false", "false", "true", "1", "null"])];
  else if (ev === "ask") args = [r.pick(["50", "50", "0", "-1", '"x"']), ...(r.chance(0.5) ? [jsonValue(r)] : [])];
  else if (ev === "rooms" || ev === "handshake" || ev === "recovered") args = r.chance(0.8) ? [] : [jsonValue(r)];
  else args = Array.from({ length: r.int(4) }, () => jsonValue(r));
  return { text: "[" + [name, ...args].join(",") + "]", label: `[${nameLabel}${args.length ? ",…" + args.length : ""}]` };
}

/** Payload of a Socket.IO packet of type `t` (a char); returns { text, label }. */
function sioPayload(r, t) {
  if (t === "0") {
    return r.weighted([
      [5, { text: "", label: "" }],
      [3, () => r.pick([{ text: '{"token":1}', label: "{auth}" }, { text: '{"token":"secret"}', label: "{auth}" }, { text: "{}", label: "{}" }])],
      [2, () => { const v = r.pick(["[]", '"str"', "1", "null", "{", '{}x', " {}", '[{"a":1}]', "true"]); return { text: v, label: "odd:" + v }; }],
    ]);
  }
  if (t === "1") return r.chance(0.8) ? { text: "", label: "" } : { text: jsonValue(r), label: "payload" };
  if (t === "4") return r.pick([{ text: '{"message":"x"}', label: "{message}" }, { text: "", label: "" }, { text: '"x"', label: "str" }]);
  if (t === "3" || t === "6") {
    return r.weighted([
      [6, () => ({ text: "[" + Array.from({ length: r.int(3) }, () => jsonValue(r)).join(",") + "]", label: "[args]" })],
      [2, () => { const v = r.pick(["{}", '"x"', "1", "null", "", "[", "[]x"]); return { text: v, label: "odd:" + v }; }],
      [t === "6" ? 3 : 0, () => ({ text: "[" + r.pick(PLACEHOLDERS) + "]", label: "[placeholder]" })],
    ]);
  }
  // EVENT / BINARY_EVENT / unknown types
  return r.weighted([
    [12, () => eventArray(r)],
    [t === "5" ? 6 : 0, () => { const e = eventArray(r); const ph = r.pick(PLACEHOLDERS); return { text: e.text.replace(/\]$/, "," + ph + "]"), label: e.label + "+ph" }; }],
    [1.5, { text: "[]", label: "[]" }],
    [1.5, () => { const v = r.pick(["{}", '"message"', "1", "null", '{"0":"message"}', "true"]); return { text: v, label: "nonarray:" + v }; }],
    [1.5, () => { const e = eventArray(r); const cut = 1 + r.int(Math.max(1, e.text.length - 1)); return { text: e.text.slice(0, cut), label: "truncated" }; }],
    [1, () => { const e = eventArray(r); const g = r.pick(["x", "]", "}", " 1", "\n", ",", '"', " "]); return { text: e.text + g, label: "trailing:" + JSON.stringify(g) }; }],
    [1, () => { const e = eventArray(r); const w = r.pick([" ", "\n", "\t", "  "]); return r.chance(0.5) ? { text: w + e.text, label: "leadingws" } : { text: e.text.replace(",", " , ").replace("[", "[ "), label: "innerws" }; }],
    [0.7, { text: "", label: "empty" }],
  ]);
}

const NSPS_MAIN = ["", "/custom,", "/dynamic-abc,", "/auth,"];
const NSPS_ODD = ["/nope,", "/custom", "custom,", "/,", "/custom,,", "/dynamic-ABC,", "/dynamic-x9,", "/custom/,", "/\u00e9,", "/cu,stom,", "/socket.io,"];
const ACK_IDS = ["0", "1", "2", "007", "00", "9007199254740993", "99999999999999999999", "-1", "1.5", "12a"];
const ATTACH_SPECS = ["1-", "1-", "1-", "2-", "0-", "-", "a-", "11-", "01-", "1", "10-", "9007199254740993-", "-1-", ""];

/** A Socket.IO packet (text after the Engine.IO `4`) and its binary attachments. */
function sioPacket(r, mainNsp) {
  const t = r.weighted([[40, "2"], [8, "3"], [7, "0"], [5, "1"], [2, "4"], [10, "5"], [5, "6"], [4, () => r.pick(["7", "8", "9", "a", "-", " ", "/", "22", "{"])]]);
  let att = "";
  if (t === "5" || t === "6") att = r.pick(ATTACH_SPECS);
  else if (r.chance(0.03)) att = r.pick(["1-", "0-"]);
  const nsp = r.weighted([[6, mainNsp], [2, () => r.pick(NSPS_MAIN)], [1.5, () => r.pick(NSPS_ODD)]]);
  const id = r.chance(0.45) || t === "3" || t === "6" ? (r.chance(0.6) ? r.pick(["0", "1", "2"]) : r.pick(ACK_IDS)) : "";
  const p = sioPayload(r, t);
  const declared = /^(\d+)-$/.test(att) ? Number(att.slice(0, -1)) : 0;
  let nBin = 0;
  if (t === "5" || t === "6") nBin = r.chance(0.65) ? Math.min(declared, 12) : r.int(3);
  const bins = Array.from({ length: nBin }, () => r.bytes(r.int(5)));
  const text = t + att + nsp + id + p.text;
  const idLabel = id === "" ? "" : ["0", "1", "2"].includes(id) ? "id" : "id:" + id;
  const label = `sio ${t}${att ? " att:" + att : ""}${nsp ? " nsp:" + nsp : ""}${idLabel ? " " + idLabel : ""} ${p.label}${nBin ? ` +${nBin}bin` : ""}`;
  return { text, bins, label };
}

/** A raw Engine.IO packet (text or binary), not a socket.io one. */
function eioRawFrame(r) {
  return r.weighted([
    [5, () => { const v = r.pick(["2", "2probe", "3", "3probe", "5", "6", "1", "7", "8", "0", "", "4", "9", "x", "40\u0000", "0{}", "5x", "6x", "1x"]); return { data: v, label: "eio " + JSON.stringify(v) }; }],
    [2, () => { const v = r.pick(["b", "bAQI=", "bAQI", "b!!!", "bAA==", "bA", "b====", "b AQI=", "bAQ I="]); return { data: v, label: "eio b64 " + JSON.stringify(v) }; }],
    [2, () => ({ data: r.bytes(r.int(6)), label: "eio binary" })],
    [0.7, () => ({ data: Buffer.from(r.pick([[0x34, 0xff], [0xff, 0xfe], [0x34, 0xc3], [0x34, 0xed, 0xa0, 0x80]])), text: true, label: "eio text invalid-utf8" })],
    [1, () => { const v = "4" + r.pick(["hello", "😀", "\u0000", "\u001e", "\ud800", "a".repeat(200), " ", "{}"]); return { data: v, label: "eio message" }; }],
  ]);
}

// ------------------------------------------------------------ scenarios
const CONNECTS = [
  ["40", ""], ["40", ""], ["40", ""], ["40/custom,", "/custom,"], ['40{"token":1}', ""], ["40/dynamic-abc,", "/dynamic-abc,"],
  ["40/nope,", ""], ['40/auth,{"token":"secret"}', "/auth,"], ["40/auth,", ""], ['40/custom,{"token":1}', "/custom,"],
  ["40/dynamic-abc", ""], ["40/", ""], ["40/custom", "/custom,"],
];
const ODD_WS_QUERIES = ["?EIO=3&transport=websocket", "?transport=websocket", "?EIO=4", "?EIO=4&transport=polling",
  "?EIO=4&transport=websocket&sid=unknownsid", "?EIO=5&transport=websocket", "?EIO=4&transport=websocket&sid="];

function genWsScenario(r, sioPath) {
  const path = sioPath ? "/socket.io/" : "/engine.io/";
  const query = r.chance(0.04) ? r.pick(ODD_WS_QUERIES) : "?EIO=4&transport=websocket";
  const steps = [];
  let mainNsp = "";
  if (sioPath && r.chance(0.85)) {
    const [c, ns] = r.pick(CONNECTS);
    mainNsp = ns;
    steps.push({ op: "ws", frames: [{ data: c }], label: "connect " + JSON.stringify(c) });
    if (r.chance(0.15)) {
      const [c2] = r.pick(CONNECTS);
      steps.push({ op: "ws", frames: [{ data: c2 }], label: "connect " + JSON.stringify(c2) });
    }
  }
  const n = 2 + r.int(8);
  let pendingBins = [];
  for (let i = 0; i < n; i++) {
    if (pendingBins.length && r.chance(0.7)) {
      steps.push({ op: "ws", frames: [{ data: pendingBins.shift() }], label: "attachment (late)" });
      continue;
    }
    if (sioPath && r.chance(0.78)) {
      const p = sioPacket(r, mainNsp);
      const frames = [{ data: "4" + p.text }];
      if (p.bins.length) {
        if (r.chance(0.8)) frames.push(...p.bins.map((b) => ({ data: b })));
        else pendingBins = p.bins.slice();
      }
      steps.push({ op: "ws", frames, label: p.label });
    } else if (!sioPath && r.chance(0.5)) {
      const v = r.weighted([[3, () => "4" + jsonValue(r)], [1, () => "4" + "x".repeat(r.pick([0, 1, 1000]))], [1, () => r.bytes(r.int(10))]]);
      steps.push({ op: "ws", frames: [{ data: v }], label: typeof v === "string" ? "eio message" : "eio binary" });
    } else {
      const f = eioRawFrame(r);
      steps.push({ op: "ws", frames: [f], label: f.label });
    }
  }
  if (r.chance(0.1)) steps.push({ op: "ws-close", label: "client close 1000" });
  return { kind: sioPath ? "ws-sio" : "ws-eio", path, query, steps };
}

const GOOD_POLL_Q = { EIO: "4", transport: "polling", sid: "$sid" };
const BAD_QUERIES = [
  [{ EIO: "4", transport: "polling", sid: "unknownsid" }, "sid:unknown"],
  [{ EIO: "3", transport: "polling", sid: "$sid" }, "EIO=3"],
  [{ transport: "polling", sid: "$sid" }, "no EIO"],
  [{ EIO: "4", sid: "$sid" }, "no transport"],
  [{ EIO: "4", transport: "websocket", sid: "$sid" }, "transport=websocket"],
  [{ EIO: "4", transport: "flashsocket", sid: "$sid" }, "transport=flashsocket"],
  [{ EIO: "4", transport: "polling", sid: "" }, "sid empty"],
  [{ EIO: "4", transport: "polling", sid: "$sid", j: "0" }, "j=0 on session"],
  [{ EIO: "4", transport: "polling", sid: "$sid", b64: "1" }, "b64=1"],
];

/** A polling POST body: \x1e-separated packets, valid and broken. */
function pollBody(r, sioPath, mainNsp) {
  const special = r.weighted([[10, null], [1, ""], [0.5, "\x1e"], [0.5, "\x1e\x1e"]]);
  if (special !== null) return { body: special, label: "body " + JSON.stringify(special) };
  const n = 1 + r.int(r.chance(0.7) ? 1 : 4);
  const parts = [];
  const labels = [];
  for (let i = 0; i < n; i++) {
    if (sioPath && r.chance(0.7)) {
      const p = sioPacket(r, mainNsp);
      parts.push("4" + p.text);
      labels.push(p.label);
      if (p.bins.length && r.chance(0.8)) {
        for (const b of p.bins) parts.push("b" + b.toString("base64"));
      }
    } else if (!sioPath && r.chance(0.5)) {
      parts.push("4" + jsonValue(r));
      labels.push("eio message");
    } else {
      const f = eioRawFrame(r);
      if (Buffer.isBuffer(f.data)) {
        parts.push(f.text ? f.data.toString("latin1") : "b" + f.data.toString("base64"));
        labels.push(f.text ? "latin1 junk" : "eio b64 binary");
      } else {
        parts.push(f.data);
        labels.push(f.label);
      }
    }
  }
  let body = parts.join("\x1e");
  let extra = "";
  if (r.chance(0.05)) { body += "\x1e"; extra = " +trailing-sep"; }
  if (r.chance(0.03)) { body = "\x1e" + body; extra = " +leading-sep"; }
  return { body, label: `post[${labels.join(" | ")}]${extra}` };
}

function genPollingScenario(r) {
  const sioPath = r.chance(0.6);
  const path = sioPath ? "/socket.io/" : "/engine.io/";
  const steps = [];
  // handshake
  const hs = r.weighted([
    [20, () => ({ q: { EIO: "4", transport: "polling" }, label: "handshake" })],
    [1, () => ({ q: { EIO: "3", transport: "polling" }, label: "handshake EIO=3" })],
    [1, () => ({ q: { transport: "polling" }, label: "handshake no EIO" })],
    [1, () => ({ q: { EIO: "4" }, label: "handshake no transport" })],
    [1, () => ({ q: { EIO: "4", transport: "polling" }, method: "POST", body: "40", label: "handshake by POST" })],
    [1, () => ({ q: { EIO: "4", transport: "polling", sid: "unknownsid" }, label: "GET unknown sid first" })],
    [1, () => ({ q: { EIO: "4", transport: "polling", b64: "1" }, label: "handshake b64=1" })],
  ]);
  steps.push({ op: "http", handshake: true, reqs: [{ method: hs.method || "GET", q: hs.q, body: hs.body }], label: hs.label });
  let mainNsp = "";
  if (sioPath && r.chance(0.85)) {
    const [c, ns] = r.pick(CONNECTS);
    mainNsp = ns;
    steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: c }], label: "connect " + JSON.stringify(c) });
  }
  const n = 2 + r.int(7);
  for (let i = 0; i < n; i++) {
    r.weighted([
      [40, () => { const b = pollBody(r, sioPath, mainNsp); steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: b.body }], label: b.label }); }],
      [5, () => { const b = pollBody(r, sioPath, mainNsp); steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: b.body, headers: { "content-type": "application/octet-stream" } }], label: "octet-stream " + b.label }); }],
      [25, () => steps.push({ op: "http", reqs: [{ method: "GET", q: GOOD_POLL_Q }], label: "GET" })],
      [4, () => steps.push({ op: "http", reqs: [{ method: "GET", q: GOOD_POLL_Q }, { method: "GET", q: GOOD_POLL_Q }], label: "two concurrent GETs" })],
      [4, () => { const b = pollBody(r, sioPath, mainNsp); steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: b.body, slow: true }, { method: "POST", q: GOOD_POLL_Q, body: "6" }], label: "POST while a POST is pending" }); }],
      [6, () => { const [q, l] = r.pick(BAD_QUERIES); const m = r.pick(["GET", "POST"]); steps.push({ op: "http", reqs: [{ method: m, q, body: m === "POST" ? "6" : undefined }], label: `${m} ${l}` }); }],
      [4, () => { const m = r.pick(["PUT", "DELETE", "PATCH", "HEAD"]); const q = r.chance(0.5) ? GOOD_POLL_Q : { EIO: "4", transport: "polling" }; steps.push({ op: "http", reqs: [{ method: m, q }], label: `${m}${q.sid ? " on session" : " handshake"}` }); }],
      [2, () => steps.push({ op: "http", reqs: [{ method: "OPTIONS", q: GOOD_POLL_Q, headers: { origin: "http://x.test", "access-control-request-method": "POST", "access-control-request-headers": "x-a" } }], label: "OPTIONS preflight" })],
      [2, () => steps.push({ op: "sleep", ms: 300, label: "sleep 300" })],
    ]);
  }
  return { kind: "polling", path, steps };
}

// ------------------------------------------------------------ scenario: upgrade
// A polling session joined by a WebSocket (`sid=SID&transport=websocket`), with the
// upgrade messages (`2probe`, `5`) in random orders among polling requests, extra
// WebSockets on the same or a dead sid, and closes. Steps are played in order; a GET
// may stay pending across steps (its answer is recorded in the step where it arrives).
const UPGRADE_ACTIONS = ["probe", "ping", "upgrade", "wsmsg", "ws-close-pkt", "get", "post", "ws2", "ws2probe", "ws2upgrade", "wsclose", "sleep"];

function genUpgradeScenario(r) {
  const sioPath = r.chance(0.6);
  const path = sioPath ? "/socket.io/" : "/engine.io/";
  const steps = [];
  steps.push({ op: "http", handshake: "main", reqs: [{ method: "GET", q: { EIO: "4", transport: "polling" } }], label: "handshake" });
  let connected = false;
  if (sioPath && r.chance(0.85)) {
    steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: "40" }], label: 'connect "40"' });
    connected = true;
  }
  if (r.chance(0.5)) steps.push({ op: "http", reqs: [{ method: "GET", q: GOOD_POLL_Q }], label: "GET" });
  // which session the first WebSocket joins
  const target = r.weighted([[12, "$sid"], [1, "$sid2"], [1, "unknownsid"]]);
  if (target === "$sid2") {
    steps.push({ op: "http", handshake: "second", reqs: [{ method: "GET", q: { EIO: "4", transport: "polling" } }], label: "second handshake" });
    steps.push({ op: "http", reqs: [{ method: "POST", q: { EIO: "4", transport: "polling", sid: "$sid2" }, body: "1" }], label: "close second session (POST 1)" });
  }
  const wsMsg = () => (sioPath ? (connected ? r.pick(['42["message",1]', '42["message-with-ack","a"]', '421["message-with-ack","a"]', "42[\"message\",\"é\"]"]) : r.pick(["40", '42["message",1]'])) : r.pick(["4hello", "4", "4😀"]));
  const postBody = () => (sioPath ? (connected ? r.pick(['42["message",2]', '42["message",2]\x1e42["message",3]', "3", "2"]) : r.pick(["40", "3"])) : r.pick(["4world", "4a\x1e4b", "3", "2"]));
  // the base: the official client's order, optionally with a GET pending during the probe
  let actions = [];
  if (r.chance(0.5)) actions.push("get");
  actions.push("probe");
  if (r.chance(0.3)) actions.push("get");
  actions.push("upgrade");
  if (r.chance(0.6)) actions.push("wsmsg");
  if (r.chance(0.4)) actions.push(r.pick(["post", "get"]));
  // mutations
  const nMut = r.weighted([[2, 0], [4, 1], [3, 2], [2, 3], [1, 5]]);
  for (let k = 0; k < nMut; k++) {
    r.weighted([
      [5, () => actions.splice(r.int(actions.length + 1), 0, r.pick(UPGRADE_ACTIONS))],
      [2, () => { if (actions.length) actions.splice(r.int(actions.length), 1); }],
      [2, () => { if (actions.length > 1) { const i = r.int(actions.length - 1); [actions[i], actions[i + 1]] = [actions[i + 1], actions[i]]; } }],
      [1, () => { if (actions.length) { const i = r.int(actions.length); actions.splice(i, 0, actions[i]); } }],
    ]);
  }
  steps.push({ op: "ws-open", ws: 0, sid: target, label: `ws0 open sid=${target === "$sid" ? "SID" : target === "$sid2" ? "CLOSED" : "unknown"}` });
  let ws1 = false;
  for (const a of actions) {
    const wsStep = (w, data) => steps.push({ op: "ws", ws: w, frames: [{ data }], label: `ws${w} ${JSON.stringify(data)}` });
    if (a === "probe") wsStep(0, "2probe");
    else if (a === "ping") wsStep(0, "2");
    else if (a === "upgrade") wsStep(0, "5");
    else if (a === "wsmsg") { const m = wsMsg(); steps.push({ op: "ws", ws: 0, frames: [{ data: m }], label: "ws0 message" }); }
    else if (a === "ws-close-pkt") wsStep(0, "1");
    else if (a === "get") steps.push({ op: "http", reqs: [{ method: "GET", q: GOOD_POLL_Q }], label: "GET" });
    else if (a === "post") { const b = postBody(); steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: b }], label: "POST " + (b.startsWith("4") ? "message" : JSON.stringify(b)) }); }
    else if (a === "ws2") {
      steps.push({ op: "ws-open", ws: 1, sid: "$sid", label: "ws1 open sid=SID" });
      ws1 = true;
      if (r.chance(0.5)) wsStep(1, "2probe");
      if (r.chance(0.3)) wsStep(1, "5");
    }
    else if (a === "ws2probe") { if (ws1) wsStep(1, "2probe"); }
    else if (a === "ws2upgrade") { if (ws1) wsStep(1, "5"); }
    else if (a === "wsclose") steps.push({ op: "ws-close", ws: 0, label: "ws0 client close 1000" });
    else if (a === "sleep") steps.push({ op: "sleep", ms: 300, label: "sleep 300" });
  }
  // the session after the scenario: a message each way
  r.weighted([
    [3, () => { const m = wsMsg(); steps.push({ op: "ws", ws: 0, frames: [{ data: m }], label: "ws0 message (end)" }); }],
    [2, () => steps.push({ op: "http", reqs: [{ method: "GET", q: GOOD_POLL_Q }], label: "GET (end)" })],
    [2, () => { const b = postBody(); steps.push({ op: "http", reqs: [{ method: "POST", q: GOOD_POLL_Q, body: b }], label: "POST (end)" }); }],
    [2, () => {}],
  ]);
  return { kind: "upgrade", path, steps };
}


function genScenario(seed) {
  const r = new Rng(seed);
  // ~10% of the seeds are `upgrade`, drawn from a separate generator so that the other
  // seeds keep the scenarios they had before that kind existed
  const upgrade = !ONLY_KIND && new Rng(seed + 0x5eed).chance(0.1);
  const kind = ONLY_KIND || (upgrade ? "upgrade" : r.weighted([[45, "ws-sio"], [15, "ws-eio"], [40, "polling"]]));
  if (kind === "upgrade") return genUpgradeScenario(r);
  if (kind === "ws-sio") return genWsScenario(r, true);
  if (kind === "ws-eio") return genWsScenario(r, false);
  return genPollingScenario(r);
}

// ------------------------------------------------------------ normalization
/** Per-server, per-scenario id maps: real id -> placeholder in order of appearance. */
class Normalizer {
  constructor() {
    this.map = new Map();
    this.counts = { eio: 0, sio: 0, pid: 0 };
  }
  learn(text) {
    // Engine.IO open packet: 0{"sid":...}; Socket.IO CONNECT reply: 40[/nsp,]{"sid":...,"pid":...}
    const isOpen = /^0\{/.test(text) || /(^|\x1e)0\{/.test(text);
    for (const m of text.matchAll(/(\x1e|^)(0|40[^{]*)\{[^\x1e]*?"sid":"([^"]+)"/g)) {
      const kind = m[2] === "0" ? "eio" : "sio";
      if (!this.map.has(m[3])) this.map.set(m[3], `<${kind}${++this.counts[kind]}>`);
    }
    for (const m of text.matchAll(/"pid":"([^"]+)"/g)) {
      if (!this.map.has(m[1])) this.map.set(m[1], `<pid${++this.counts.pid}>`);
    }
    return isOpen;
  }
  apply(text) {
    this.learn(text);
    let out = text;
    for (const [real, ph] of this.map) out = out.split(real).join(ph);
    // arrays of strings that hold a placeholder (sorted room lists) are sorted again
    out = out.replace(/\[("(?:[^"\\]|\\.)*"(?:,"(?:[^"\\]|\\.)*")*)\]/g, (all, inner) => {
      if (!inner.includes("<sio")) return all;
      try {
        return JSON.stringify(JSON.parse(all).sort());
      } catch {
        return all;
      }
    });
    return out;
  }
}

const show = (s) => JSON.stringify(s).slice(1, -1); // control chars and \x1e made visible

// ------------------------------------------------------------ runners
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `lastEvent()` is at least QUIET ms old (and at least QUIET ms elapsed). */
async function settle(lastEvent, extraBusy = () => false) {
  const t0 = Date.now();
  await sleep(QUIET);
  while (Date.now() - t0 < MAX_STEP) {
    const idle = Date.now() - lastEvent();
    if (idle >= QUIET && !extraBusy()) return;
    await sleep(Math.max(10, QUIET - idle));
  }
}

async function runWs(server, sc) {
  const norm = new Normalizer();
  const url = server.url.replace(/^http/, "ws") + sc.path + sc.query;
  let events = [];
  let last = Date.now();
  const push = (e) => {
    events.push(e);
    last = Date.now();
  };
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 3000 });
  ws.on("message", (data, isBinary) => {
    if (isBinary) push("bin " + Buffer.from(data).toString("hex"));
    else {
      const text = data.toString("utf8");
      if (text === "2") return; // server ping: out of the comparison (none expected within 10 s)
      push("txt " + show(norm.apply(text)));
    }
  });
  ws.on("close", (code, reason) => push(`close ${code}${reason.length ? " " + show(reason.toString()) : ""}`));
  ws.on("unexpected-response", (req, res) => {
    const chunks = [];
    res.on("data", (d) => chunks.push(d));
    res.on("end", () => {
      push(`http ${res.statusCode} ${res.headers["content-type"] || "-"} ${show(Buffer.concat(chunks).toString())}`);
      try { req.destroy(); } catch {}
    });
  });
  ws.on("error", (e) => push("error " + (/Invalid WebSocket frame: (.*)/.exec(e.message)?.[1] || e.code || "")));
  const transcript = [];
  await settle(() => last);
  transcript.push({ label: "open " + sc.path + sc.query, out: events.slice() });
  for (const step of sc.steps) {
    events = [];
    if (ws.readyState !== WebSocket.OPEN) {
      transcript.push({ label: step.label, out: ["(not open)"] });
      continue;
    }
    if (step.op === "ws-close") ws.close(1000);
    else {
      for (const f of step.frames) {
        if (Buffer.isBuffer(f.data)) ws.send(f.data, { binary: !f.text });
        else ws.send(f.data);
      }
    }
    await settle(() => last);
    transcript.push({ label: step.label, out: events.slice() }); // a copy: later events belong to no step
  }
  ws.terminate();
  return transcript;
}

function buildQuery(q, sid) {
  const parts = [];
  for (const [k, v] of Object.entries(q)) parts.push(`${k}=${encodeURIComponent(v === "$sid" ? sid ?? "nosid" : v === "$sid2" ? "SID2" : v)}`);
  return parts.length ? "?" + parts.join("&") : "";
}

async function runPolling(server, sc) {
  const norm = new Normalizer();
  let sid = null;
  let reqCount = 0;
  const inflight = new Map(); // id -> ClientRequest
  let done = []; // responses completed since the step started
  let last = Date.now();
  const transcript = [];
  const issue = (spec) => {
    const id = ++reqCount;
    const headers = { ...(spec.body !== undefined ? { "content-type": "text/plain;charset=UTF-8" } : {}), ...(spec.headers || {}) };
    const body = spec.body !== undefined ? Buffer.from(spec.body, "utf8") : null;
    if (body) headers["content-length"] = String(body.length);
    const req = http.request(server.url + sc.path + buildQuery(spec.q, sid), { method: spec.method, headers, agent: false });
    inflight.set(id, req);
    const finish = (line) => {
      if (!inflight.has(id)) return;
      inflight.delete(id);
      done.push({ id, line });
      last = Date.now();
    };
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (spec.handshake && res.statusCode === 200) {
          const m = /^0(\{.*?\})(\x1e|$)/.exec(text);
          if (m) {
            try { sid = JSON.parse(m[1]).sid; } catch {}
          }
        }
        finish(`#${id} ${spec.method} ${res.statusCode} ${res.headers["content-type"] || "-"} ${show(norm.apply(text))}`);
      });
      res.on("error", (e) => finish(`#${id} ${spec.method} ${res.statusCode} response-error ${e.code || e.message}`));
    });
    req.on("error", (e) => finish(`#${id} ${spec.method} error ${e.code || e.message}`));
    if (body && spec.slow) {
      // half the body now, the rest once the next request of the step was answered/settled
      req.flushHeaders();
      req.write(body.subarray(0, Math.floor(body.length / 2)));
      return () => req.end(body.subarray(Math.floor(body.length / 2)));
    }
    if (body) req.write(body);
    req.end();
    return null;
  };
  for (const step of sc.steps) {
    done = [];
    if (step.op === "sleep") {
      await sleep(step.ms);
    } else {
      const finishers = [];
      for (const [k, spec] of step.reqs.entries()) {
        // requests of one step are staggered so that they reach the server in a known order
        if (k > 0) await sleep(50);
        const f = issue({ ...spec, handshake: step.handshake });
        if (f) finishers.push(f);
      }
      if (finishers.length) {
        await settle(() => last);
        for (const f of finishers) f();
      }
    }
    await settle(() => last);
    const out = done.sort((a, b) => a.id - b.id).map((d) => d.line);
    if (inflight.size) out.push("pending " + [...inflight.keys()].map((i) => "#" + i).join(","));
    transcript.push({ label: step.label, out });
  }
  for (const req of inflight.values()) req.destroy();
  if (sid) {
    // close the session so that it does not linger (not part of the transcript)
    await new Promise((resolve) => {
      const req = http.request(server.url + sc.path + buildQuery(GOOD_POLL_Q, sid), { method: "POST", agent: false, headers: { "content-type": "text/plain;charset=UTF-8" } }, (res) => { res.resume(); res.on("end", resolve); });
      req.on("error", resolve);
      req.setTimeout(2000, () => { req.destroy(); resolve(); });
      req.end("1");
    });
  }
  return transcript;
}

async function runUpgrade(server, sc) {
  const norm = new Normalizer();
  const sids = {};
  let reqCount = 0;
  const inflight = new Map(); // id -> ClientRequest
  let done = []; // { src, seq, line } since the step started
  let seq = 0;
  let last = Date.now();
  const note = (src, line) => {
    done.push({ src, seq: seq++, line });
    last = Date.now();
  };
  const sidOf = (v) => (v === "$sid" ? sids.main ?? "nosid" : v === "$sid2" ? sids.second ?? "nosid" : v);
  const query = (q) => "?" + Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(sidOf(v))}`).join("&");
  const issue = (spec, handshake) => {
    const id = ++reqCount;
    const headers = spec.body !== undefined ? { "content-type": "text/plain;charset=UTF-8" } : {};
    const body = spec.body !== undefined ? Buffer.from(spec.body, "utf8") : null;
    if (body) headers["content-length"] = String(body.length);
    const req = http.request(server.url + sc.path + query(spec.q), { method: spec.method, headers, agent: false });
    inflight.set(id, req);
    const finish = (line) => {
      if (!inflight.has(id)) return;
      inflight.delete(id);
      note("http", `#${id} ${line}`);
    };
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (handshake && res.statusCode === 200) {
          const m = /^0(\{.*?\})(\x1e|$)/.exec(text);
          if (m) {
            try { sids[handshake] = JSON.parse(m[1]).sid; } catch {}
          }
        }
        finish(`${spec.method} ${res.statusCode} ${res.headers["content-type"] || "-"} ${show(norm.apply(text))}`);
      });
      res.on("error", (e) => finish(`${spec.method} ${res.statusCode} response-error ${e.code || e.message}`));
    });
    req.on("error", (e) => finish(`${spec.method} error ${e.code || e.message}`));
    if (body) req.write(body);
    req.end();
  };
  const sockets = [];
  const openWs = (k, sid) => {
    const src = "ws" + k;
    const url = server.url.replace(/^http/, "ws") + sc.path + query({ EIO: "4", transport: "websocket", sid });
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 3000 });
    sockets[k] = ws;
    ws.on("open", () => note(src, "open"));
    ws.on("message", (data, isBinary) => {
      if (isBinary) note(src, "bin " + Buffer.from(data).toString("hex"));
      else note(src, "txt " + show(norm.apply(data.toString("utf8"))));
    });
    ws.on("close", (code, reason) => note(src, `close ${code}${reason.length ? " " + show(reason.toString()) : ""}`));
    ws.on("unexpected-response", (req, res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => {
        note(src, `http ${res.statusCode} ${res.headers["content-type"] || "-"} ${show(Buffer.concat(chunks).toString())}`);
        try { req.destroy(); } catch {}
      });
    });
    ws.on("error", (e) => note(src, "error " + (/Invalid WebSocket frame: (.*)/.exec(e.message)?.[1] || e.code || "")));
  };
  const transcript = [];
  for (const step of sc.steps) {
    done = [];
    let skipped = null;
    if (step.op === "sleep") await sleep(step.ms);
    else if (step.op === "http") for (const spec of step.reqs) issue(spec, step.handshake);
    else if (step.op === "ws-open") openWs(step.ws, step.sid);
    else {
      const ws = sockets[step.ws];
      if (!ws || ws.readyState !== WebSocket.OPEN) skipped = "(not open)";
      else if (step.op === "ws-close") ws.close(1000);
      else for (const f of step.frames) ws.send(f.data);
    }
    if (!skipped) await settle(() => last);
    // lines grouped by source (HTTP by request number, then each WebSocket), each source in
    // its own order: the interleaving of independent connections is timing, not behaviour
    const rank = (d) => (d.src === "http" ? 0 : 1 + Number(d.src.slice(2)));
    const out = done
      .sort((a, b) => rank(a) - rank(b) || (a.src === "http" ? Number(/^#(\d+)/.exec(a.line)[1]) - Number(/^#(\d+)/.exec(b.line)[1]) : 0) || a.seq - b.seq)
      .map((d) => (d.src === "http" ? d.line : `${d.src} ${d.line}`));
    if (skipped) out.push(skipped);
    if (inflight.size) out.push("pending " + [...inflight.keys()].map((i) => "#" + i).join(","));
    transcript.push({ label: step.label, out });
  }
  for (const ws of sockets) ws?.terminate();
  for (const req of inflight.values()) req.destroy();
  if (sids.main) {
    await new Promise((resolve) => {
      const req = http.request(server.url + sc.path + query(GOOD_POLL_Q), { method: "POST", agent: false, headers: { "content-type": "text/plain;charset=UTF-8" } }, (res) => { res.resume(); res.on("end", resolve); });
      req.on("error", resolve);
      req.setTimeout(2000, () => { req.destroy(); resolve(); });
      req.end("1");
    });
  }
  return transcript;
}

function runScenario(server, sc) {
  if (sc.kind === "upgrade") return runUpgrade(server, sc);
  return sc.kind === "polling" ? runPolling(server, sc) : runWs(server, sc);
}

// ------------------------------------------------------------ comparison
/** Coarse class of an outcome, for grouping. */
function outcomeClass(out) {
  if (!out.length) return "nothing";
  return out
    .map((line) => {
      const src = /^ws\d+ /.exec(line)?.[0] || ""; // upgrade scenarios: which WebSocket
      const e = line.slice(src.length);
      return src + classOf(e);
    })
    .join(" ; ");
  function classOf(e) {
    if (e.startsWith("txt ")) return "txt:" + (/^txt (\d*\/?[^,{[]*?)(?=[,{["]|$)/.exec(e)?.[1] || e.slice(4, 8)).slice(0, 16);
    if (e.startsWith("bin ")) return "bin";
    if (e.startsWith("#")) {
      const m = /^#\d+ (\S+) (\S+) (\S+)? ?(.{0,40})/.exec(e);
      return m ? `${m[1]} ${m[2]} ${m[3] ?? ""} ${m[4].replace(/<[a-z]+\d+>/g, "<id>").slice(0, 40)}` : e.slice(0, 40);
    }
    return e.slice(0, 40);
  }
}

function firstDiff(a, b) {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = JSON.stringify(a[i]?.out);
    const y = JSON.stringify(b[i]?.out);
    if (x !== y) return i;
  }
  return -1;
}

function printTranscripts(seed, sc, tn, tr) {
  console.log(`seed ${seed}: ${sc.kind} ${sc.path}${sc.query || ""}`);
  const n = Math.max(tn.length, tr.length);
  for (let i = 0; i < n; i++) {
    const a = tn[i];
    const b = tr[i];
    const same = JSON.stringify(a?.out) === JSON.stringify(b?.out);
    const stepwise = sc.kind === "polling" || sc.kind === "upgrade"; // no initial "open" record
    const step = i === 0 && !stepwise ? null : sc.steps[stepwise ? i : i - 1];
    let input = "";
    if (step?.frames) input = step.frames.map((f) => (Buffer.isBuffer(f.data) ? `${f.text ? "text-bytes" : "bin"}<${f.data.toString("hex")}>` : JSON.stringify(f.data))).join(" , ");
    if (step?.op === "ws-open") input = `ws${step.ws} ${sc.path}${buildQuery({ EIO: "4", transport: "websocket", sid: step.sid }, "SID")}`;
    if (step?.reqs) input = step.reqs.map((q) => `${q.method} ${buildQuery(q.q, "SID")}${q.body !== undefined ? " body=" + JSON.stringify(q.body) : ""}${q.headers ? " " + JSON.stringify(q.headers) : ""}`).join(" || ");
    console.log(`${same ? "  " : "!!"} step ${i}: ${(a || b).label}${input ? "\n        >> " + input : ""}`);
    if (same) for (const e of a.out) console.log(`        =  ${e}`);
    else {
      for (const e of a?.out || []) console.log(`        N: ${e}`);
      if (!a?.out?.length) console.log("        N: (nothing)");
      for (const e of b?.out || []) console.log(`        R: ${e}`);
      if (!b?.out?.length) console.log("        R: (nothing)");
    }
  }
}

// ------------------------------------------------------------ main
async function main() {
  const servers = {};
  const start = async (kind) => (servers[kind] = await startServer(kind, FLAGS));
  await Promise.all([start("node"), start("rust")]);
  const ensureAlive = async () => {
    const dead = [];
    for (const kind of ["node", "rust"]) {
      if (!servers[kind].alive()) {
        dead.push(`${kind} died: ${JSON.stringify(servers[kind].exitInfo())}\n${servers[kind].output().slice(-15).join("\n")}`);
        await start(kind);
      }
    }
    return dead;
  };

  const play = async (seed) => {
    const sc = genScenario(seed);
    const [tn, tr] = await Promise.all([runScenario(servers.node, sc), runScenario(servers.rust, sc)]);
    return { sc, tn, tr, i: firstDiff(tn, tr) };
  };

  if (ONE_SEED !== null) {
    const seed = Number(ONE_SEED);
    const { sc, tn, tr, i } = await play(seed);
    printTranscripts(seed, sc, tn, tr);
    console.log(i === -1 ? "\nsame" : `\nfirst difference at step ${i}`);
    const dead = await ensureAlive();
    if (dead.length) console.log(dead.join("\n"));
    return;
  }

  const groups = new Map();
  let same = 0;
  let flaky = 0;
  const seeds = Array.from({ length: N_SEEDS }, (_, k) => START + k);
  const t0 = Date.now();
  let next = 0;
  const worker = async () => {
    while (next < seeds.length) {
      const seed = seeds[next++];
      let res = await play(seed);
      const dead = await ensureAlive();
      if (dead.length) console.log(`seed ${seed}: SERVER DIED\n${dead.join("\n")}`);
      if (res.i === -1) {
        same++;
      } else {
        const sig1 = signature(res);
        if (CONFIRM) {
          const again = await play(seed);
          if (again.i !== res.i || signature(again) !== sig1) {
            flaky++;
            if (VERBOSE) console.log(`seed ${seed}: not reproduced (step ${res.i} then ${again.i})`);
            continue;
          }
        }
        const g = groups.get(sig1) || { sig: sig1, seeds: [], example: null };
        g.seeds.push(seed);
        if (!g.example) g.example = { seed, ...res };
        groups.set(sig1, g);
        if (VERBOSE) console.log(`seed ${seed}: diverges at step ${res.i}: ${sig1}`);
      }
      if ((same + flaky + [...groups.values()].reduce((s, g) => s + g.seeds.length, 0)) % 50 === 0) {
        process.stderr.write(`.. ${next}/${seeds.length} seeds, ${Math.round((Date.now() - t0) / 1000)} s\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: JOBS }, worker));

  // report
  const sorted = [...groups.values()].sort((a, b) => b.seeds.length - a.seeds.length);
  console.log(`\n${seeds.length} seeds (${START}..${START + seeds.length - 1}): ${same} identical, ${seeds.length - same - flaky} divergent, ${flaky} not reproduced on replay; ${sorted.length} signatures\n`);
  for (const g of sorted) {
    const ex = g.example;
    const step = ex.tn[ex.i] || ex.tr[ex.i];
    console.log(`== ${g.seeds.length}x  ${g.sig}`);
    console.log(`   seeds: ${g.seeds.slice(0, 12).join(" ")}${g.seeds.length > 12 ? " …" : ""}`);
    console.log(`   e.g. seed ${ex.seed} step ${ex.i} (${step.label})`);
    for (const e of (ex.tn[ex.i]?.out || []).slice(0, 4)) console.log(`     N: ${e.slice(0, 200)}`);
    if (!ex.tn[ex.i]?.out?.length) console.log("     N: (nothing)");
    for (const e of (ex.tr[ex.i]?.out || []).slice(0, 4)) console.log(`     R: ${e.slice(0, 200)}`);
    if (!ex.tr[ex.i]?.out?.length) console.log("     R: (nothing)");
  }
}

function signature({ sc, tn, tr, i }) {
  const step = tn[i] || tr[i];
  const input = `${sc.kind}${sc.kind === "polling" || sc.kind === "upgrade" ? " " + sc.path : ""} | ${step.label}`;
  return `${input} || N: ${outcomeClass(tn[i]?.out || [])} || R: ${outcomeClass(tr[i]?.out || [])}`;
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 2;
  })
  .finally(() => stopAll());

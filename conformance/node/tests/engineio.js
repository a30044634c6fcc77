"use strict";
// Plain Engine.IO on /engine.io/ (echo server), driven by engine.io-client and
// by raw HTTP / WebSocket requests where the client library hides the wire.

const vm = require("node:vm");
const WebSocket = require("ws");
const { assert, Queue, describe, sleep, once, withTimeout } = require("../lib/util");
const { variants, ALL, PURE, PING_INTERVAL, PING_TIMEOUT, MAX_PAYLOAD } = require("../lib/defs");
const { dropPongs } = require("../lib/patch");

const tests = [];

// --------------------------------------------------------------------- open
tests.push(
  ...variants("eio: open and handshake", ALL, (transport) => ({
    async run(t) {
      const socket = t.eio({ transport });
      const opened = new Queue(socket, "open");
      const upgrades = new Queue(socket, "upgrade");
      const [hs] = await once(socket, "handshake", 5000);
      await opened.next(5000);
      assert.equal(typeof hs.sid, "string");
      assert.ok(hs.sid.length > 0, "sid is not empty");
      assert.equal(socket.id, hs.sid);
      assert.equal(hs.pingInterval, PING_INTERVAL);
      assert.equal(hs.pingTimeout, PING_TIMEOUT);
      assert.equal(hs.maxPayload, MAX_PAYLOAD);
      // the official server offers an upgrade to websocket on polling only
      assert.deepEqual(hs.upgrades, transport === "websocket" ? [] : ["websocket"]);
      assert.deepEqual(Object.keys(hs).sort(), ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]);
      if (transport === "upgrade") {
        await upgrades.next(5000);
        assert.equal(socket.transport.name, "websocket");
      } else {
        await sleep(100);
        assert.equal(socket.transport.name, transport);
        assert.equal(upgrades.length, 0);
      }
    },
  })),
);

// ---------------------------------------------------------------- text echo
const TEXTS = [
  "hello",
  "héllo wörld — 中文 — emoji beyond the BMP: 😀🎉𝄞",
  "a".repeat(100000),
  '{"not":"json to the server", "quotes": "\\""}',
  "line\nbreaks\r\nand\ttabs",
  "4 starts with a digit",
  "\u0000 NUL and \u007f DEL",
];

tests.push(
  ...variants("eio: text echo", ALL, (transport) => ({
    async run(t) {
      const socket = await t.eioOpen({ transport });
      const q = new Queue(socket, "message");
      for (const s of TEXTS) socket.send(s);
      for (const s of TEXTS) {
        const [got] = await q.next();
        assert.equal(typeof got, "string");
        assert.equal(got, s);
      }
      // an empty message is the bare packet "4": the client decodes it as undefined
      socket.send("");
      const [empty] = await q.next();
      assert.equal(empty, undefined);
      if (transport === "upgrade") await t.upgraded(socket);
    },
  })),
);

// -------------------------------------------------------------- binary echo
function binaryCases() {
  const big = Buffer.alloc(65536);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
  const ab = new Uint8Array([0, 255, 128, 1]).buffer;
  const view = new Uint8Array([9, 8, 7, 6, 5]).subarray(1, 4);
  return [
    { value: Buffer.from([1, 2, 3]), hex: "010203" },
    { value: ab, hex: "00ff8001" },
    { value: view, hex: "080706" },
    { value: Buffer.alloc(0), hex: "" },
    { value: big, hex: big.toString("hex") },
    { value: Buffer.from("text in a binary frame"), hex: Buffer.from("text in a binary frame").toString("hex") },
  ];
}

tests.push(
  ...variants("eio: binary echo", ALL, (transport) => ({
    async run(t) {
      const socket = await t.eioOpen({ transport });
      const q = new Queue(socket, "message");
      const cases = binaryCases();
      for (const c of cases) socket.send(c.value);
      for (const c of cases) {
        const [got] = await q.next();
        // a Node client decodes binary as Buffer on every transport (official server)
        assert.deepEqual(describe(got), { $bin: "Buffer", hex: c.hex });
      }
      if (transport === "upgrade") await t.upgraded(socket);
    },
  })),
);

tests.push(
  ...variants("eio: text and binary interleaved keep their order", ALL, (transport) => ({
    async run(t) {
      const socket = t.eio({ transport });
      const q = new Queue(socket, "message");
      const sent = [];
      for (let i = 0; i < 60; i++) sent.push(i % 3 === 0 ? Buffer.from([i, i + 1]) : `msg ${i} 😀`);
      await once(socket, "open", 5000);
      // no waiting for the upgrade: messages must survive the transport switch
      for (const m of sent) socket.send(m);
      const got = [];
      for (let i = 0; i < sent.length; i++) got.push((await q.next())[0]);
      assert.deepEqual(describe(got), describe(sent));
      if (transport === "upgrade") await t.upgraded(socket);
    },
  })),
);

// ------------------------------------------------------------------ heartbeat
tests.push(
  ...variants("eio: server pings every pingInterval", ALL, (transport) => ({
    async run(t) {
      const socket = t.eio({ transport });
      let openedAt = 0;
      socket.on("open", () => {
        openedAt = Date.now();
      });
      const pings = [];
      socket.on("ping", () => pings.push(Date.now() - openedAt));
      await once(socket, "open", 5000);
      await sleep(PING_INTERVAL * 3 + 150);
      t.note(`pings at ${pings.join(", ")} ms after open`);
      assert.ok(pings.length >= 3, `expected at least 3 pings, got ${pings.length}`);
      // the first ping comes one pingInterval after the handshake, not at once
      assert.ok(pings[0] >= PING_INTERVAL - 60 && pings[0] <= PING_INTERVAL + 150, `first ping at ${pings[0]} ms`);
      for (let i = 1; i < pings.length; i++) {
        const gap = pings[i] - pings[i - 1];
        assert.ok(gap >= PING_INTERVAL - 80 && gap <= PING_INTERVAL + 150, `gap between pings ${gap} ms`);
      }
      assert.equal(socket.readyState, "open");
    },
  })),
);

tests.push(
  ...variants("eio: client that stops answering pings is closed", ALL, (transport) => ({
    async run(t) {
      const socket = t.eio({ transport });
      dropPongs(socket);
      let openedAt = 0;
      socket.on("open", () => {
        openedAt = Date.now();
      });
      const closed = new Queue(socket, "close");
      const [reason, details] = await closed.next(3000);
      const elapsed = Date.now() - openedAt;
      t.note(`closed after ${elapsed} ms: ${reason} ${JSON.stringify(details)}`);
      // the server closed it (the client's own timer would say "ping timeout",
      // and only at pingInterval + pingTimeout after the last ping it received)
      assert.equal(reason, "transport close");
      const limit = PING_INTERVAL + PING_TIMEOUT;
      assert.ok(elapsed >= limit - 100, `closed too early: ${elapsed} ms`);
      assert.ok(elapsed <= limit + 250, `closed too late: ${elapsed} ms`);
    },
  })),
);

// ------------------------------------------------------------- maxPayload (raw)
async function pollingHandshake(url) {
  const res = await fetch(`${url}/engine.io/?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  const body = await res.text();
  assert.equal(body[0], "0");
  return JSON.parse(body.slice(1)).sid;
}

tests.push({
  name: "eio raw: polling POST of exactly maxPayload bytes is accepted",
  async run(t) {
    const base = `${t.url}/engine.io/?EIO=4&transport=polling`;
    const sid = await pollingHandshake(t.url);
    const payload = "4" + "y".repeat(MAX_PAYLOAD - 1);
    const post = await fetch(`${base}&sid=${sid}`, { method: "POST", body: payload });
    assert.equal(post.status, 200);
    assert.equal(await post.text(), "ok");
    const get = await fetch(`${base}&sid=${sid}`);
    assert.equal(get.status, 200);
    assert.equal(await get.text(), payload);
  },
});

tests.push({
  name: "eio raw: polling POST over maxPayload gets 413 and ends the session",
  async run(t) {
    const base = `${t.url}/engine.io/?EIO=4&transport=polling`;
    const sid = await pollingHandshake(t.url);
    const pendingGet = fetch(`${base}&sid=${sid}`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await sleep(30);
    const post = await fetch(`${base}&sid=${sid}`, { method: "POST", body: "4" + "z".repeat(MAX_PAYLOAD) }).then(
      async (r) => ({ status: r.status, body: await r.text() }),
      (e) => ({ error: `${e.message} ${e.cause && e.cause.code}` }),
    );
    t.note(`POST: ${JSON.stringify(post)}`);
    assert.equal(post.status, 413);
    const get = await withTimeout(pendingGet, 2000, "the pending GET");
    t.note(`pending GET: ${JSON.stringify(get)}`);
    // the pending poll is answered with a CLOSE packet
    assert.deepEqual(get, { status: 200, body: "1" });
    const after = await fetch(`${base}&sid=${sid}`);
    assert.equal(after.status, 400);
    assert.deepEqual(await after.json(), { code: 1, message: "Session ID unknown" });
  },
});

// JSONP polling: what a `<script src=...>` of an old browser gets; run here as a browser runs it.
function runJsonp(script, index) {
  const calls = [];
  const ___eio = [];
  ___eio[index] = (data) => calls.push(data);
  vm.runInNewContext(script, { ___eio });
  assert.equal(calls.length, 1, `one call of ___eio[${index}] in ${JSON.stringify(script)}`);
  return calls[0];
}

tests.push({
  name: "eio raw: JSONP polling (j) answers ___eio[j](...) scripts and reads POSTs from the form field d",
  async run(t) {
    const base = `${t.url}/engine.io/?EIO=4&transport=polling`;
    // only the digits of j name the callback
    const open = await fetch(`${base}&j=a4`);
    assert.equal(open.status, 200);
    assert.equal(open.headers.get("content-type"), "text/plain; charset=UTF-8");
    const openScript = await open.text();
    assert.ok(openScript.startsWith("___eio[4]("), openScript);
    const handshake = runJsonp(openScript, 4);
    assert.equal(handshake[0], "0");
    const sid = JSON.parse(handshake.slice(1)).sid;
    const url = `${base}&sid=${sid}`;
    const form = { "content-type": "application/x-www-form-urlencoded" };

    // `\n` stands for a newline, `\\n` for a backslash and n; + is a space; U+2028 passes through
    const sent = "d=" + encodeURIComponent("4a\u2028b\\nc\\\\nd") + "+e%1E4two";
    const post = await fetch(url, { method: "POST", headers: form, body: sent });
    assert.equal(post.status, 200);
    assert.equal(await post.text(), "ok");
    const echoed = await fetch(url);
    assert.equal(echoed.headers.get("content-type"), "text/plain; charset=UTF-8");
    const echoScript = await echoed.text();
    t.note(`echo: ${JSON.stringify(echoScript)}`);
    assert.ok(!/[\u2028\u2029]/.test(echoScript), "line separators are escaped in the script");
    assert.equal(runJsonp(echoScript, 4), "4a\u2028b\nc\\nd e\u001e4two");

    // a body without d carries no data: the next answer is the server's ping
    const empty = await fetch(url, { method: "POST", headers: form, body: "x=4nothing" });
    assert.equal(await empty.text(), "ok");
    assert.equal(runJsonp(await (await fetch(url)).text(), 4), "2");

    // d=1 closes the session
    const close = await fetch(url, { method: "POST", headers: form, body: "d=1" });
    assert.equal(await close.text(), "ok");
    const after = await fetch(url);
    assert.equal(after.status, 400);
    assert.deepEqual(await after.json(), { code: 1, message: "Session ID unknown" });
  },
});

function rawWs(url) {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/engine.io/?EIO=4&transport=websocket`);
  const frames = new Queue(ws, "message");
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on("error", () => {});
  return { ws, frames, closed };
}

tests.push({
  name: "eio raw: websocket frame of exactly maxPayload bytes is echoed",
  async run(t) {
    const { ws, frames } = rawWs(t.url);
    t.defer(() => ws.terminate());
    const [open] = await frames.next(3000);
    assert.equal(open.toString()[0], "0");
    const payload = "4" + "y".repeat(MAX_PAYLOAD - 1);
    ws.send(payload);
    const [echo, isBinary] = await frames.next(3000);
    assert.equal(isBinary, false);
    assert.equal(echo.toString(), payload);
  },
});

tests.push({
  name: "eio raw: websocket frame over maxPayload closes with 1009",
  async run(t) {
    const { ws, frames, closed } = rawWs(t.url);
    t.defer(() => ws.terminate());
    const [open] = await frames.next(3000);
    assert.equal(open.toString()[0], "0");
    ws.send("4" + "z".repeat(MAX_PAYLOAD));
    const c = await withTimeout(closed, 2000, "the websocket to close");
    t.note(`close: ${JSON.stringify(c)}; frames after open: ${frames.length}`);
    assert.equal(c.code, 1009);
    assert.equal(frames.length, 0, "nothing echoed");
  },
});

tests.push(
  ...variants("eio: client sees the close of an over-maxPayload message", PURE, (transport) => ({
    async run(t) {
      const socket = await t.eioOpen({ transport });
      const closed = new Queue(socket, "close");
      socket.send("w".repeat(MAX_PAYLOAD + 10));
      const [reason] = await closed.next(3000);
      t.note(`client close reason: ${reason}`);
      // official server, polling: the POST gets 413 ("transport error") while the
      // pending GET gets a CLOSE packet ("transport close"); whichever the client
      // reads first wins.
      if (transport === "polling") assert.ok(["transport close", "transport error"].includes(reason), reason);
      else assert.equal(reason, "transport close");
    },
  })),
);

// ---------------------------------------------------------------------- misc
tests.push({
  name: "eio: reachable as http://localhost:PORT",
  async run(t) {
    const url = t.url.replace("127.0.0.1", "localhost");
    const socket = await t.eioOpen({ transport: "websocket" }, url);
    const q = new Queue(socket, "message");
    socket.send("via localhost");
    assert.deepStrictEqual(await q.next(), ["via localhost"]);
  },
});

for (const path of ["/engine.io/", "/socket.io/"]) {
  tests.push({
    name: `eio raw: CORS on ${path} (preflight, handshake, POST)`,
    async run(t) {
      const base = `${t.url}${path}?EIO=4&transport=polling`;
      const origin = "http://page.example";
      const pre = await fetch(base, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "x-custom, content-type",
        },
      });
      t.note(`preflight ${pre.status} ${JSON.stringify([...pre.headers])}`);
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get("access-control-allow-origin"), "*");
      const methods = (pre.headers.get("access-control-allow-methods") || "").split(",").map((m) => m.trim());
      assert.ok(methods.includes("GET") && methods.includes("POST"), `allow-methods ${methods}`);
      const allowHeaders = (pre.headers.get("access-control-allow-headers") || "").toLowerCase();
      assert.ok(allowHeaders.includes("x-custom") && allowHeaders.includes("content-type"), `allow-headers ${allowHeaders}`);
      const hs = await fetch(base, { headers: { origin } });
      assert.equal(hs.status, 200);
      assert.equal(hs.headers.get("access-control-allow-origin"), "*");
      const body = await hs.text();
      const sid = JSON.parse(body.slice(1)).sid;
      const post = await fetch(`${base}&sid=${sid}`, { method: "POST", headers: { origin }, body: "1" });
      assert.equal(post.status, 200);
      assert.equal(post.headers.get("access-control-allow-origin"), "*");
      assert.equal(await post.text(), "ok");
    },
  });
}

module.exports = tests;

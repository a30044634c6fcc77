"use strict";
// Socket.IO connection life cycle: connect, auth, namespaces, disconnections
// and the reasons both sides give, heartbeat, connect timeout, reconnection.

const { assert, Queue, once, sleep, expectNoEvent } = require("../lib/util");
const { variants, ALL, PURE, PING_INTERVAL, PING_TIMEOUT, CONNECT_TIMEOUT } = require("../lib/defs");
const { ask, observer, firstOf } = require("../lib/sio");
const { dropPongs, freezeClientHeartbeat } = require("../lib/patch");

const tests = [];

// ------------------------------------------------------------------ connect
tests.push(
  ...variants("sio: connect", ALL, (transport) => ({
    async run(t) {
      const socket = t.sio("/", { transport });
      const auth = new Queue(socket, "auth");
      await t.connected(socket);
      assert.equal(typeof socket.id, "string");
      assert.ok(socket.id.length > 0);
      // the socket.io id is not the engine.io session id
      assert.notEqual(socket.id, socket.io.engine.id);
      // no auth given: handshake.auth is {}
      const [payload] = await auth.next();
      assert.deepEqual(payload, {});
      assert.equal(auth.length, 0);
      if (transport === "upgrade") await t.upgraded(socket);
      else assert.equal(socket.io.engine.transport.name, transport);
      // and the connection is usable
      const back = await ask(socket, 2000, "message-with-ack", "ping?");
      assert.equal(back, "ping?");
    },
  })),
);

tests.push(
  ...variants("sio: auth payload echoed by the auth event", ALL, (transport) => ({
    async run(t) {
      const auth = { token: "abc", nested: { n: [1, null, "é😀"], ok: true }, num: -1.5 };
      const a = t.sio("/", { transport, auth });
      const qa = new Queue(a, "auth");
      const c = t.sio("/custom", { transport, auth: { only: "custom" } });
      const qc = new Queue(c, "auth");
      const d = t.sio("/custom", { transport });
      const qd = new Queue(d, "auth");
      assert.deepEqual((await qa.next())[0], auth);
      assert.deepEqual((await qc.next())[0], { only: "custom" });
      assert.deepEqual((await qd.next())[0], {});
      assert.ok(a.connected && c.connected && d.connected);
    },
  })),
);

tests.push(
  ...variants("sio: /auth middleware refuses a bad or missing token", ALL, (transport) => ({
    async run(t) {
      for (const auth of [{ token: "wrong" }, undefined]) {
        const socket = t.sio("/auth", auth ? { transport, auth } : { transport });
        const { event, args } = await firstOf(socket, ["connect", "connect_error"], 5000);
        assert.equal(event, "connect_error");
        const [err] = args;
        assert.equal(err.message, "not authorized");
        assert.deepEqual(err.data, { reason: "bad token" });
        assert.equal(socket.connected, false);
        // a middleware refusal is final: the client does not retry
        assert.equal(socket.active, false);
      }
    },
  })),
);

tests.push(
  ...variants("sio: /auth middleware accepts the right token", ALL, (transport) => ({
    async run(t) {
      const socket = t.sio("/auth", { transport, auth: { token: "secret", extra: [1, 2] } });
      const qa = new Queue(socket, "auth");
      await t.connected(socket);
      assert.deepEqual((await qa.next())[0], { token: "secret", extra: [1, 2] });
    },
  })),
);

// --------------------------------------------------------------- namespaces
tests.push(
  ...variants("sio: namespaces multiplexed on one manager", ALL, (transport) => ({
    async run(t) {
      const manager = t.manager({ transport });
      const main = manager.socket("/");
      const custom = manager.socket("/custom");
      const dyn = manager.socket("/dynamic-abc");
      const dyn2 = manager.socket("/dynamic-x9");
      const bad = manager.socket("/nope");
      const qMain = new Queue(main, "auth");
      const qCustom = new Queue(custom, "auth");
      const qDyn = new Queue(dyn, "nsp");
      const qDyn2 = new Queue(dyn2, "nsp");
      const [err] = await once(bad, "connect_error", 5000);
      assert.equal(err.message, "Invalid namespace");
      assert.equal(err.data, undefined);
      assert.equal(bad.connected, false);
      assert.equal(bad.active, false);
      await Promise.all([main, custom, dyn, dyn2].map((s) => t.connected(s)));
      assert.deepEqual((await qMain.next())[0], {});
      assert.deepEqual((await qCustom.next())[0], {});
      assert.deepEqual((await qDyn.next())[0], "/dynamic-abc");
      assert.deepEqual((await qDyn2.next())[0], "/dynamic-x9");
      // one engine.io connection carries them all
      assert.equal(Object.keys(manager.nsps).length, 5);
      // each namespace socket has its own id
      const ids = new Set([main.id, custom.id, dyn.id, dyn2.id]);
      assert.equal(ids.size, 4);
      // the refused namespace did not hurt the others
      assert.equal(await ask(main, 2000, "message-with-ack", "still here"), "still here");
      assert.ok(custom.connected && dyn.connected && dyn2.connected);
      if (transport === "upgrade") await t.upgraded(main);
    },
  })),
);

tests.push(
  ...variants("sio: invalid namespaces are refused", PURE, (transport) => ({
    async run(t) {
      // names that look close to valid ones
      for (const nsp of ["/nope", "/dynamic-ABC", "/dynamic-", "/custom/sub", "/auth2"]) {
        const socket = t.sio(nsp, { transport });
        const { event, args } = await firstOf(socket, ["connect", "connect_error"], 5000);
        assert.equal(event, "connect_error", `namespace ${nsp}`);
        assert.equal(args[0].message, "Invalid namespace", `namespace ${nsp}`);
      }
    },
  })),
);

// ------------------------------------------------------------ disconnections
/** Connects an observer and a subject in two rooms; returns both. */
async function subject(t, transport, opts = {}) {
  const obs = await observer(t);
  const socket = t.sio("/", { transport, ...opts });
  await t.connected(socket);
  if (transport === "upgrade") await t.upgraded(socket);
  await ask(socket, 2000, "join", "zeta");
  await ask(socket, 2000, "join", "alpha");
  return { obs, socket, id: socket.id };
}

tests.push(
  ...variants("sio: client disconnect", ALL, (transport) => ({
    async run(t) {
      const { obs, socket, id } = await subject(t, transport);
      const dq = new Queue(socket, "disconnect");
      socket.disconnect();
      const [reason] = await dq.next();
      assert.equal(reason, "io client disconnect");
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "client namespace disconnect", rooms: ["zeta", "alpha"] });
    },
  })),
);

tests.push(
  ...variants("sio: server-disconnect", ALL, (transport) => ({
    async run(t) {
      const { obs, socket, id } = await subject(t, transport);
      const dq = new Queue(socket, "disconnect");
      socket.emit("server-disconnect", false);
      const [reason] = await dq.next();
      assert.equal(reason, "io server disconnect");
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "server namespace disconnect", rooms: ["zeta", "alpha"] });
      // a server disconnect is final for the client
      assert.equal(socket.active, false);
    },
  })),
);

tests.push(
  ...variants("sio: server-disconnect keeps the other namespaces", ALL, (transport) => ({
    async run(t) {
      const manager = t.manager({ transport });
      const main = manager.socket("/");
      const custom = manager.socket("/custom");
      await Promise.all([t.connected(main), t.connected(custom)]);
      const dq = new Queue(main, "disconnect");
      const cq = new Queue(custom, "disconnect");
      main.emit("server-disconnect", false);
      assert.equal((await dq.next())[0], "io server disconnect");
      await sleep(150);
      assert.equal(cq.length, 0);
      assert.ok(custom.connected);
      // the connection is still usable: reconnect "/" on the same manager
      main.connect();
      await t.connected(main);
      assert.equal(await ask(main, 2000, "message-with-ack", 7), 7);
    },
  })),
);

tests.push(
  ...variants("sio: server-disconnect(close) drops every namespace of the connection", ALL, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const manager = t.manager({ transport });
      const main = manager.socket("/");
      const custom = manager.socket("/custom");
      await Promise.all([t.connected(main), t.connected(custom)]);
      if (transport === "upgrade") await t.upgraded(main);
      const id = main.id;
      const dq = new Queue(main, "disconnect");
      const cq = new Queue(custom, "disconnect");
      main.emit("server-disconnect", true);
      // the server sends a DISCONNECT to each namespace before closing
      assert.equal((await dq.next())[0], "io server disconnect");
      assert.equal((await cq.next())[0], "io server disconnect");
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "server namespace disconnect", rooms: [] });
    },
  })),
);

tests.push(
  ...variants("sio: transport close seen by the server", ALL, (transport) => ({
    async run(t) {
      const { obs, socket, id } = await subject(t, transport);
      const dq = new Queue(socket, "disconnect");
      socket.io.engine.close();
      assert.equal((await dq.next())[0], "forced close");
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "transport close", rooms: ["zeta", "alpha"] });
    },
  })),
);

// ------------------------------------------------------------------ heartbeat
tests.push(
  ...variants("sio: server drops a client that holds back pongs", ALL, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const socket = t.sio("/", { transport });
      dropPongs(socket.io.engine);
      let openedAt = 0;
      socket.io.on("open", () => {
        openedAt = Date.now();
      });
      const dq = new Queue(socket, "disconnect");
      await t.connected(socket);
      const id = socket.id;
      const [reason, details] = await dq.next(3000);
      const elapsed = Date.now() - openedAt;
      t.note(`client: ${reason} ${JSON.stringify(details)} after ${elapsed} ms`);
      assert.equal(reason, "transport close");
      const limit = PING_INTERVAL + PING_TIMEOUT;
      assert.ok(elapsed >= limit - 100 && elapsed <= limit + 250, `disconnected after ${elapsed} ms`);
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "ping timeout", rooms: [] });
    },
  })),
);

tests.push(
  ...variants("sio: client ping timeout when it stops hearing the server", ALL, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const socket = t.sio("/", { transport });
      freezeClientHeartbeat(socket.io.engine);
      let openedAt = 0;
      socket.io.on("open", () => {
        openedAt = Date.now();
      });
      const dq = new Queue(socket, "disconnect");
      await t.connected(socket);
      const id = socket.id;
      const [reason] = await dq.next(3000);
      const elapsed = Date.now() - openedAt;
      // the client timer is pingInterval + pingTimeout from the handshake values
      assert.equal(reason, "ping timeout");
      const limit = PING_INTERVAL + PING_TIMEOUT;
      assert.ok(elapsed >= limit - 50 && elapsed <= limit + 200, `ping timeout after ${elapsed} ms`);
      // the server, which did get its pongs, sees the transport go away
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "transport close", rooms: [] });
    },
  })),
);

tests.push(
  ...variants("sio: connect timeout without a CONNECT packet", PURE, (transport) => ({
    async run(t) {
      // a bare engine.io connection to /socket.io/ that never connects a namespace
      const engine = t.eio({ transport, path: "/socket.io/" });
      let openedAt = 0;
      engine.on("open", () => {
        openedAt = Date.now();
      });
      const closed = new Queue(engine, "close");
      const messages = new Queue(engine, "message");
      const [reason] = await closed.next(CONNECT_TIMEOUT + 2000);
      const elapsed = Date.now() - openedAt;
      t.note(`closed after ${elapsed} ms: ${reason}`);
      assert.equal(reason, "transport close");
      assert.ok(elapsed >= CONNECT_TIMEOUT - 100 && elapsed <= CONNECT_TIMEOUT + 400, `closed after ${elapsed} ms`);
      assert.equal(messages.length, 0, "no socket.io packet was sent");
    },
  })),
);

tests.push(
  ...variants("sio: no connect timeout once a namespace is connected", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      await expectNoEvent(socket, "disconnect", CONNECT_TIMEOUT + 300);
      assert.ok(socket.connected);
    },
  })),
);

// --------------------------------------------------------------- reconnection
tests.push(
  ...variants("sio: reconnection after the server drops the client", ALL, (transport) => ({
    timeout: 15000,
    async run(t) {
      const obs = await observer(t);
      const socket = t.sio("/", {
        transport,
        reconnection: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 200,
        randomizationFactor: 0,
      });
      dropPongs(socket.io.engine); // only the first engine: the reconnected one is healthy
      const attempts = new Queue(socket.io, "reconnect_attempt");
      const reconnects = new Queue(socket.io, "reconnect");
      const connects = new Queue(socket, "connect");
      const dq = new Queue(socket, "disconnect");
      await connects.next(5000);
      const firstId = socket.id;
      assert.equal((await dq.next(3000))[0], "transport close");
      assert.deepEqual(await attempts.next(3000), [1]);
      assert.deepEqual(await reconnects.next(3000), [1]);
      await connects.next(3000);
      assert.ok(socket.connected);
      assert.notEqual(socket.id, firstId);
      const report = await obs.reportFor(firstId);
      assert.equal(report.reason, "ping timeout");
      assert.equal(await ask(socket, 2000, "message-with-ack", "again"), "again");
      // the new connection stays up across several heartbeats
      await expectNoEvent(socket, "disconnect", PING_INTERVAL * 3);
    },
  })),
);

// ------------------------------------------------ connection state recovery
tests.push(
  ...variants("sio: connection state recovery brings the socket back with what it missed", ALL, (transport) => ({
    async run(t) {
      const server = await t.dedicatedServer({ "connection-state-recovery": 60000 });
      const a = t.sio("/", {
        transport,
        reconnection: true,
        reconnectionDelay: 400,
        reconnectionDelayMax: 400,
        randomizationFactor: 0,
      }, server.url);
      const seen = [];
      a.onAny((event, ...args) => {
        const offset = args.pop();
        assert.equal(typeof offset, "string", `${event}: the offset comes last`);
        seen.push([event, ...args]);
      });
      await t.connected(a);
      if (transport === "upgrade") await t.upgraded(a);
      assert.equal(a.recovered, false);
      const id = a.id;
      await ask(a, 3000, "join", "r");
      const b = await t.sioConnected("/", { transport: "websocket" }, server.url);
      b.emit("to-room", "r", "one");
      await withTimeout(() => seen.some((e) => e[1] === "one"), "the first room message");
      // The connection drops; meanwhile the room gets more.
      const back = new Promise((resolve) => a.once("connect", resolve));
      a.io.engine.close();
      await sleep(100);
      b.emit("to-room", "r", "two");
      b.emit("emit-all", "three");
      await ask(b, 3000, "rooms");
      seen.length = 0;
      await back;
      await withTimeout(() => seen.length >= 3, "the missed packets and the welcome");
      await sleep(100);
      t.note(`recovered=${a.recovered}; after reconnect: ${JSON.stringify(seen)}`);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      assert.deepStrictEqual(seen, [
        ["room-message", "two"],
        ["broadcast", "three"],
        ["auth", { pid: seen[2][1].pid, offset: seen[2][1].offset }],
      ]);
      assert.deepStrictEqual(await ask(a, 3000, "recovered"), true);
      assert.deepStrictEqual(await ask(a, 3000, "rooms"), [id, "r"]);
      // Leaving on purpose keeps nothing new, but the session kept at the drop stays until it
      // expires: the client, which asks with its pid again, gets it back once more.
      a.disconnect();
      a.connect();
      await t.connected(a);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      assert.deepStrictEqual(await ask(a, 3000, "rooms"), [id, "r"]);
    },
  })),
);

async function withTimeout(check, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

module.exports = tests;

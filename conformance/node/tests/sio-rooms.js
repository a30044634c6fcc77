"use strict";
// Rooms and broadcasting, volatile events, handshake details.

const { assert, sleep, describe } = require("../lib/util");
const { variants, ALL, PURE } = require("../lib/defs");
const { ask } = require("../lib/sio");

const tests = [];

/** Records every incoming event of a socket, in order, as [event, ...args]. */
function record(socket) {
  const log = [];
  socket.onAny((...args) => log.push(args));
  return log;
}

/** Waits until `log` holds an event matching `pred`. */
async function waitFor(log, pred, what, ms = 3000) {
  const deadline = Date.now() + ms;
  while (!log.some(pred)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(describe(log))}`);
    await sleep(5);
  }
}

/** Events of a log that matter to a room test (drops the initial auth event). */
const relevant = (log) => log.filter(([ev]) => ev !== "auth");

/**
 * Sends `emit-all` with a unique sentinel from `from` and waits until every
 * socket got it: since a socket's events arrive in order, anything emitted
 * before the sentinel has arrived by then.
 */
async function fence(from, sockets, logs) {
  const tag = `fence-${Math.random().toString(36).slice(2)}`;
  from.emit("emit-all", tag);
  await Promise.all(logs.map((log) => waitFor(log, ([ev, arg]) => ev === "broadcast" && arg === tag, `fence ${tag}`)));
  return ["broadcast", tag];
}

/** Connects clients with the given transports, each with a recorded log. */
async function clients(t, transports) {
  const sockets = [];
  const logs = [];
  for (const transport of transports) {
    const s = t.sio("/", { transport });
    logs.push(record(s));
    sockets.push(s);
  }
  await Promise.all(sockets.map((s) => t.connected(s)));
  return { sockets, logs };
}

tests.push({
  name: "sio: join takes an array of rooms",
  async run(t) {
    const socket = await t.sioConnected("/", { transport: "websocket" });
    await ask(socket, 2000, "join", ["x-room", "y-room"]);
    assert.deepStrictEqual(await ask(socket, 2000, "rooms"), [socket.id, "x-room", "y-room"]);
  },
});

const MIXED = ["polling", "websocket", "upgrade", "websocket"];

tests.push(
  ...variants("sio: join, leave and rooms", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const id = socket.id;
      // every socket is in the room of its own id
      assert.deepStrictEqual(await ask(socket, 2000, "rooms"), [id]);
      // join acknowledges with no arguments
      const joinAck = await new Promise((resolve) => socket.emit("join", "b-room", (...args) => resolve(args)));
      assert.deepStrictEqual(joinAck, []);
      await ask(socket, 2000, "join", "a-room");
      await ask(socket, 2000, "join", "a-room");
      await ask(socket, 2000, "join", "Z-room");
      assert.deepStrictEqual(await ask(socket, 2000, "rooms"), [id, "b-room", "a-room", "Z-room"]);
      await ask(socket, 2000, "leave", "b-room");
      await ask(socket, 2000, "leave", "never-joined");
      assert.deepStrictEqual(await ask(socket, 2000, "rooms"), [id, "a-room", "Z-room"]);
      // room names are arbitrary strings
      await ask(socket, 2000, "join", "ünïcødé 😀 room");
      assert.deepStrictEqual(await ask(socket, 2000, "rooms"), [id, "a-room", "Z-room", "ünïcødé 😀 room"]);
    },
  })),
);

tests.push({
  name: "sio: to-room reaches the room members only",
  async run(t) {
    const { sockets, logs } = await clients(t, [...MIXED, "polling"]);
    const [a, b, c, outsider, sender] = sockets;
    for (const s of [a, b, c]) await ask(s, 2000, "join", "r");
    sender.emit("to-room", "r", 1, { x: "y" }, Buffer.from([7, 7]));
    const f = await fence(sender, sockets, logs);
    const expected = [["room-message", 1, { x: "y" }, { $bin: "Buffer", hex: "0707" }], f];
    for (const i of [0, 1, 2]) assert.deepStrictEqual(describe(relevant(logs[i])), expected, `member ${i}`);
    assert.deepStrictEqual(relevant(logs[3]), [f], "outsider");
    assert.deepStrictEqual(relevant(logs[4]), [f], "sender (not a member)");
    // after leaving, no more messages
    await ask(b, 2000, "leave", "r");
    sender.emit("to-room", "r", 2);
    const f2 = await fence(sender, sockets, logs);
    assert.deepStrictEqual(relevant(logs[0]).slice(2), [["room-message", 2], f2]);
    assert.deepStrictEqual(relevant(logs[1]).slice(2), [f2]);
    // a room nobody is in
    sender.emit("to-room", "empty-room", 3);
    const f3 = await fence(sender, sockets, logs);
    for (const log of logs) assert.deepStrictEqual(relevant(log).at(-1), f3);
    assert.ok(logs.every((log) => !relevant(log).some(([ev, n]) => ev === "room-message" && n === 3)));
  },
});

tests.push({
  name: "sio: to-room with several rooms delivers once",
  async run(t) {
    const { sockets, logs } = await clients(t, MIXED);
    const [a, b, c, sender] = sockets;
    await ask(a, 2000, "join", "r1");
    await ask(a, 2000, "join", "r2");
    await ask(b, 2000, "join", "r2");
    await ask(c, 2000, "join", "r3");
    sender.emit("to-room", ["r1", "r2"], "once");
    const f = await fence(sender, sockets, logs);
    assert.deepStrictEqual(relevant(logs[0]), [["room-message", "once"], f]);
    assert.deepStrictEqual(relevant(logs[1]), [["room-message", "once"], f]);
    assert.deepStrictEqual(relevant(logs[2]), [f]);
    assert.deepStrictEqual(relevant(logs[3]), [f]);
  },
});

tests.push({
  name: "sio: to-room-except",
  async run(t) {
    const { sockets, logs } = await clients(t, MIXED);
    const [a, b, c, sender] = sockets;
    for (const s of [a, b, c]) await ask(s, 2000, "join", "r");
    await ask(b, 2000, "join", "ex");
    await ask(sender, 2000, "join", "r");
    // except a room
    sender.emit("to-room-except", "r", "ex", "m1");
    // except a socket id (its own room)
    sender.emit("to-room-except", "r", c.id, "m2");
    // except several rooms
    sender.emit("to-room-except", "r", ["ex", a.id], "m3");
    const f = await fence(sender, sockets, logs);
    const rm = (m) => ["room-message", m];
    assert.deepStrictEqual(relevant(logs[0]), [rm("m1"), rm("m2"), f], "a");
    assert.deepStrictEqual(relevant(logs[1]), [rm("m2"), f], "b");
    assert.deepStrictEqual(relevant(logs[2]), [rm("m1"), rm("m3"), f], "c");
    // io.to(room) includes the sender when it is in the room
    assert.deepStrictEqual(relevant(logs[3]), [rm("m1"), rm("m2"), rm("m3"), f], "sender");
  },
});

tests.push({
  name: "sio: socket-to-room excludes the sender",
  async run(t) {
    const { sockets, logs } = await clients(t, MIXED);
    const [a, b, c, sender] = sockets;
    await ask(a, 2000, "join", "r");
    await ask(b, 2000, "join", "r");
    await ask(sender, 2000, "join", "r");
    sender.emit("socket-to-room", "r", "hi", [1, { two: 2 }]);
    // to a room the sender is not in
    c.emit("socket-to-room", "r", "from c");
    const f = await fence(sender, sockets, logs);
    await sleep(20);
    const hi = ["room-message", "hi", [1, { two: 2 }]];
    const fromC = ["room-message", "from c"];
    for (const i of [0, 1]) {
      const got = relevant(logs[i]);
      // two different senders: only the order of each sender's messages is fixed
      assert.deepStrictEqual(
        got.filter((e) => e[0] === "room-message").sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
        [fromC, hi],
        `member ${i}`,
      );
    }
    assert.deepStrictEqual(relevant(logs[2]), [f], "c is not in the room");
    assert.deepStrictEqual(relevant(logs[3]).filter((e) => e[0] === "room-message"), [fromC], "sender gets only c's message");
  },
});

tests.push({
  name: "sio: broadcast reaches everyone but the sender",
  async run(t) {
    const { sockets, logs } = await clients(t, MIXED);
    const sender = sockets[1];
    sender.emit("broadcast", "to all others", { bin: Buffer.from([1]) });
    const f = await fence(sender, sockets, logs);
    const msg = ["broadcast", "to all others", { bin: { $bin: "Buffer", hex: "01" } }];
    for (const i of [0, 2, 3]) {
      const got = describe(relevant(logs[i]));
      assert.deepStrictEqual(got.slice(-2), [msg, f], `client ${i}`);
    }
    assert.deepStrictEqual(describe(relevant(logs[1])).filter((e) => e[1] === "to all others"), [], "sender");
  },
});

tests.push({
  name: "sio: emit-all reaches everyone including the sender",
  async run(t) {
    const { sockets, logs } = await clients(t, MIXED);
    const sender = sockets[2];
    sender.emit("emit-all", "everyone", 42, Buffer.from([2, 3]));
    const f = await fence(sender, sockets, logs);
    const msg = ["broadcast", "everyone", 42, { $bin: "Buffer", hex: "0203" }];
    for (let i = 0; i < sockets.length; i++) {
      assert.deepStrictEqual(describe(relevant(logs[i])).slice(-2), [msg, f], `client ${i}`);
    }
  },
});

tests.push(
  ...variants("sio: volatile event on an idle connection is delivered", ["websocket"], (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const log = record(socket);
      for (let i = 0; i < 5; i++) {
        socket.emit("volatile", i, { i });
        await waitFor(log, ([ev, n]) => ev === "volatile-back" && n === i, `volatile-back ${i}`);
      }
      assert.deepStrictEqual(
        relevant(log),
        Array.from({ length: 5 }, (_, i) => ["volatile-back", i, { i }]),
      );
    },
  })),
);

// ------------------------------------------- the room named by a socket's id
/**
 * B joins the room named by A's id; A asks for `volatile` and `message` echoes and asks a
 * question (`ask`, answered by whoever gets it: "A" or "B"), then leaves its own room and asks
 * again. What A and B receive, in order (offsets dropped), and the two `ask` results.
 */
async function ownRoomScenario(t, url, offsets) {
  const sockets = [];
  const logs = [];
  for (const name of ["A", "B"]) {
    const s = t.sio("/", { transport: "websocket" }, url);
    const log = [];
    s.onAny((ev, ...args) => {
      if (typeof args[args.length - 1] === "function") args.pop()("from " + name);
      else if (offsets && ev !== "volatile-back") assert.equal(typeof args.pop(), "string", `${ev}: offset`);
      if (ev !== "auth") log.push([ev, ...args]);
    });
    sockets.push(s);
    logs.push(log);
  }
  await Promise.all(sockets.map((s) => t.connected(s)));
  const [a, b] = sockets;
  await ask(b, 2000, "join", a.id);
  a.emit("volatile", "v");
  a.emit("message", "m");
  const first = await ask(a, 3000, "ask", 500, "q1");
  await ask(a, 2000, "leave", a.id);
  a.emit("message", "m2");
  const second = await ask(a, 3000, "ask", 300, "q2");
  const f = await fence(b, sockets, logs);
  return { a: logs[0].filter((e) => e[0] !== "broadcast" || e[1] === f[1]), b: logs[1], first, second, fence: f };
}

tests.push({
  name: "sio: a socket's emits reach it alone, not the others in the room named by its id",
  async run(t) {
    const r = await ownRoomScenario(t, undefined, false);
    assert.deepStrictEqual(r.a, [
      ["volatile-back", "v"],
      ["message-back", "m"],
      ["question", "q1"],
      ["message-back", "m2"],
      ["question", "q2"],
      r.fence,
    ]);
    assert.deepStrictEqual(r.b, [r.fence]);
    assert.deepStrictEqual([r.first, r.second], [{ reply: ["from A"] }, { reply: ["from A"] }]);
  },
});

tests.push({
  name: "sio: with connection state recovery, a socket's emits go to the room named by its id",
  async run(t) {
    const server = await t.dedicatedServer({ "connection-state-recovery": 60000 });
    const r = await ownRoomScenario(t, server.url, true);
    // B gets what A gets while A is in its own room (B's answer is not A's), and A nothing once
    // it left it
    const before = [["volatile-back", "v"], ["message-back", "m"], ["question", "q1"]];
    assert.deepStrictEqual(r.a, [...before, r.fence]);
    assert.deepStrictEqual(r.b, [...before, ["message-back", "m2"], ["question", "q2"], r.fence]);
    assert.deepStrictEqual([r.first, r.second], [{ reply: ["from A"] }, { error: "operation has timed out" }]);
  },
});

// -------------------------------------------------------------------- handshake
tests.push(
  ...variants("sio: handshake details", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", {
        transport,
        auth: { token: "t0k", n: 1 },
        query: { foo: "bar", "sp ace": "é" },
        extraHeaders: { "x-custom": "custom value" },
      });
      const h = await ask(socket, 2000, "handshake");
      t.note(`handshake: ${JSON.stringify(h)}`);
      const first = transport === "websocket" ? "websocket" : "polling";
      assert.deepStrictEqual(h.auth, { token: "t0k", n: 1 });
      assert.equal(h.secure, false);
      // no Origin header sent by a Node client
      assert.equal(h.xdomain, false);
      // the query of the first HTTP request, engine.io's own parameters included
      const expectedQuery = { foo: "bar", "sp ace": "é", EIO: "4", transport: first };
      if (first === "polling") {
        assert.equal(typeof h.query.t, "string");
        expectedQuery.t = h.query.t;
      }
      assert.deepStrictEqual(h.query, expectedQuery);
      // the url of that request, as sent
      const prefix = "/socket.io/?foo=bar&sp%20ace=%C3%A9&EIO=4&transport=" + first;
      assert.equal(h.url, first === "polling" ? `${prefix}&t=${h.query.t}` : prefix);
      // node's XHR sends a user-agent, the ws client none
      const headers = { "x-custom": "custom value" };
      if (first === "polling") headers["user-agent"] = "node-XMLHttpRequest";
      assert.deepStrictEqual(h.headers, headers);
    },
  })),
);

tests.push(
  ...variants("sio: handshake xdomain with an Origin header", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", {
        transport,
        extraHeaders: { origin: "http://elsewhere.example" },
      });
      const h = await ask(socket, 2000, "handshake");
      assert.equal(h.xdomain, true);
      assert.deepStrictEqual(h.auth, {});
      assert.equal(h.secure, false);
    },
  })),
);

tests.push(
  ...variants("sio: adapter room events (create-room, join-room, leave-room, delete-room)", ALL, (transport) => ({
    async run(t) {
      const prefix = `rt-${Math.random().toString(36).slice(2)}-`;
      const a = await t.sioConnected("/guarded", { transport });
      const b = await t.sioConnected("/guarded", { transport });
      if (transport === "upgrade") await t.upgraded(a);
      const [r1, r2] = [`${prefix}1`, `${prefix}2`];
      await a.timeout(3000).emitWithAck("join", r1);
      await a.timeout(3000).emitWithAck("join", r1); // already in it: no event
      await b.timeout(3000).emitWithAck("join", r2);
      await b.timeout(3000).emitWithAck("join", r1);
      await a.timeout(3000).emitWithAck("join", r2);
      await a.timeout(3000).emitWithAck("leave", r1);
      await a.timeout(3000).emitWithAck("leave", r2);
      await a.timeout(3000).emitWithAck("leave", `${prefix}none`); // not in it: no event
      // b leaves its rooms in the order it joined them (r2 before r1), as the adapter's Set keeps them
      b.disconnect();
      const expected = [
        ["create-room", "self"],
        ["join-room", "self", "self"],
        ["create-room", r1],
        ["join-room", r1, "self"],
        ["create-room", r2],
        ["join-room", r2, "other"],
        ["join-room", r1, "other"],
        ["join-room", r2, "self"],
        ["leave-room", r1, "self"],
        ["leave-room", r2, "self"],
        ["leave-room", r2, "other"],
        ["delete-room", r2],
        ["leave-room", r1, "other"],
        ["delete-room", r1],
      ];
      let events;
      for (let i = 0; i < 100; i++) {
        events = await a.timeout(3000).emitWithAck("room-events", prefix);
        if (events.length >= expected.length) break;
        await sleep(20);
      }
      assert.deepStrictEqual(events, expected);
    },
  })),
);

module.exports = tests;

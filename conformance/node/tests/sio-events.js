"use strict";
// Socket.IO events and acknowledgements: JSON types, large payloads, binary
// attachments, acks both ways, broadcast acks, catch-all listeners.

const { assert, Queue, describe, sleep } = require("../lib/util");
const { variants, ALL, PURE, MAX_PAYLOAD } = require("../lib/defs");
const { ask, observer, firstOf } = require("../lib/sio");

const tests = [];

const JSON_VALUES = [
  null,
  true,
  false,
  0,
  -1,
  42,
  3.14159,
  -2.5e-7,
  1e21,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
  "",
  "plain",
  "héllo — 中文 — 😀🎉𝄞 (beyond the BMP)",
  "quotes \" and backslash \\ and \u0000 \u001e \u2028",
  [],
  {},
  [1, "two", null, [3, [4, [5]]], { six: 6 }],
  { a: { b: { c: { d: [true, false, null] } } }, "key with spaces": 1, "😀": "emoji key" },
];

tests.push(
  ...variants("sio: every JSON type round-trips in events", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      // one event per value, then all of them as the arguments of one event
      for (const v of JSON_VALUES) socket.emit("message", v);
      socket.emit("message", ...JSON_VALUES);
      for (const v of JSON_VALUES) assert.deepStrictEqual(await back.next(), [v]);
      assert.deepStrictEqual(await back.next(), JSON_VALUES);
      if (transport === "upgrade") await t.upgraded(socket);
    },
  })),
);

tests.push(
  ...variants("sio: events without arguments and with many", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      socket.emit("message");
      const many = Array.from({ length: 50 }, (_, i) => (i % 2 ? `s${i}` : i));
      socket.emit("message", ...many);
      assert.deepStrictEqual(await back.next(), []);
      assert.deepStrictEqual(await back.next(), many);
    },
  })),
);

tests.push(
  ...variants("sio: undefined arguments become null", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      socket.emit("message", 1, undefined, { u: undefined, n: null });
      assert.deepStrictEqual(await back.next(), [1, null, { n: null }]);
    },
  })),
);

tests.push(
  ...variants("sio: a plain object shaped like a placeholder is not replaced", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      socket.emit("message", { _placeholder: true, num: 0 });
      assert.deepStrictEqual(await back.next(), [{ _placeholder: true, num: 0 }]);
    },
  })),
);

tests.push(
  ...variants("sio: binary event with an invalid placeholder closes the connection", PURE, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const socket = await t.sioConnected("/", { transport });
      const id = socket.id;
      const back = new Queue(socket, "message-back");
      const dq = new Queue(socket, "disconnect");
      // attachment 3 does not exist: the packet is invalid
      socket.emit("message", { _placeholder: true, num: 3 }, Buffer.from([1]));
      assert.equal((await dq.next())[0], "transport close");
      assert.equal(back.length, 0);
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "forced close", rooms: [] });
    },
  })),
);

// ------------------------------------------------------------ large payloads
// `42["message","..."]` is 16 bytes plus the string: sized to hit the limit exactly
const OVERHEAD = '42["message",""]'.length;

tests.push(
  ...variants("sio: payload of exactly maxHttpBufferSize is delivered", PURE, (transport) => ({
    timeout: 15000,
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      const dq = new Queue(socket, "disconnect");
      for (const len of [MAX_PAYLOAD - OVERHEAD - 1000, MAX_PAYLOAD - OVERHEAD]) {
        const s = "x".repeat(len);
        socket.emit("message", s);
        const [got] = await back.next(5000);
        assert.equal(got.length, len);
        assert.equal(got, s);
      }
      assert.equal(dq.length, 0);
      assert.ok(socket.connected);
    },
  })),
);

tests.push(
  ...variants("sio: payload one byte over maxHttpBufferSize closes the connection", PURE, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const socket = await t.sioConnected("/", { transport });
      const id = socket.id;
      const back = new Queue(socket, "message-back");
      const dq = new Queue(socket, "disconnect");
      socket.emit("message", "x".repeat(MAX_PAYLOAD - OVERHEAD + 1));
      const [reason, details] = await dq.next(5000);
      t.note(`client: ${reason} ${JSON.stringify(details && (details.description || details))}`);
      assert.equal(back.length, 0);
      if (transport === "websocket") {
        assert.equal(reason, "transport close");
      } else {
        // polling: POST answered 413 ("transport error") and the pending GET
        // answered with a CLOSE packet ("transport close"): first one read wins
        assert.ok(["transport close", "transport error"].includes(reason), reason);
        if (reason === "transport error") assert.equal(details.description, 413);
      }
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "transport error", rooms: [] });
    },
  })),
);

tests.push(
  ...variants("sio: multi-byte characters count as bytes against maxHttpBufferSize", ["websocket"], (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      const dq = new Queue(socket, "disconnect");
      // 2-byte characters: half as many characters fit
      const fits = "é".repeat((MAX_PAYLOAD - OVERHEAD) / 2);
      socket.emit("message", fits);
      assert.equal((await back.next(5000))[0], fits);
      socket.emit("message", fits + "é");
      assert.equal((await dq.next(5000))[0], "transport close");
    },
  })),
);

// --------------------------------------------------------------------- binary
// 10 attachments: the official parser refuses more (see the test below)
function binaryPayload() {
  const u8 = new Uint8Array([10, 20, 30, 40, 50]);
  return [
    Buffer.from([1, 2, 3]),
    new Uint8Array([4, 5, 6]).buffer,
    new Uint8Array([7, 8]),
    new Uint16Array([0x0102, 0xfffe]),
    u8.subarray(1, 4),
    Buffer.alloc(0),
    {
      name: "nested",
      a: Buffer.from("first"),
      list: [Buffer.from([0xff]), { deep: new Uint8Array([0, 0, 1]).buffer }, "text", 7],
      none: null,
    },
    [Buffer.from([9]), ["x", { y: 1.5 }]],
    "and a string",
  ];
}

function expectedBinaryBack() {
  // observed on the official server with a Node client: every binary value
  // comes back as a Buffer holding the bytes of the view that was sent
  const B = (hex) => ({ $bin: "Buffer", hex });
  return [
    B("010203"),
    B("040506"),
    B("0708"),
    B("0201feff"),
    B("141e28"),
    B(""),
    {
      name: "nested",
      a: B(Buffer.from("first").toString("hex")),
      list: [B("ff"), { deep: B("000001") }, "text", 7],
      none: null,
    },
    [B("09"), ["x", { y: 1.5 }]],
    "and a string",
  ];
}

tests.push(
  ...variants("sio: binary attachments in events both ways", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      socket.emit("message", ...binaryPayload());
      assert.deepStrictEqual(describe(await back.next()), expectedBinaryBack());
      // one attachment alone, then text after binary keeps its order
      socket.emit("message", Buffer.from([0xde, 0xad]));
      socket.emit("message", "after");
      assert.deepStrictEqual(describe(await back.next()), [{ $bin: "Buffer", hex: "dead" }]);
      assert.deepStrictEqual(await back.next(), ["after"]);
      if (transport === "upgrade") await t.upgraded(socket);
    },
  })),
);

tests.push(
  ...variants("sio: binary attachments in acks", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const reply = await new Promise((resolve, reject) => {
        socket.timeout(3000).emit("message-with-ack", ...binaryPayload(), (err, ...args) => (err ? reject(err) : resolve(args)));
      });
      assert.deepStrictEqual(describe(reply), expectedBinaryBack());
    },
  })),
);

tests.push(
  ...variants("sio: more than 10 attachments in one packet close the connection", PURE, (transport) => ({
    async run(t) {
      const obs = await observer(t);
      const socket = await t.sioConnected("/", { transport });
      const id = socket.id;
      const back = new Queue(socket, "message-back");
      const dq = new Queue(socket, "disconnect");
      const ten = Array.from({ length: 10 }, (_, i) => Buffer.from([i]));
      socket.emit("message", ...ten);
      assert.deepStrictEqual(describe(await back.next()), ten.map((b) => ({ $bin: "Buffer", hex: b.toString("hex") })));
      socket.emit("message", ...ten, Buffer.from([10]));
      assert.equal((await dq.next())[0], "transport close");
      assert.equal(back.length, 0);
      const report = await obs.reportFor(id);
      assert.deepEqual(report, { id, reason: "forced close", rooms: [] });
    },
  })),
);

tests.push(
  ...variants("sio: large binary attachment", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      const big = Buffer.alloc(500000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
      socket.emit("message", { big, small: Buffer.from([1]) });
      const [got] = await back.next(5000);
      assert.ok(Buffer.isBuffer(got.big));
      assert.ok(got.big.equals(big));
      assert.ok(got.small.equals(Buffer.from([1])));
    },
  })),
);

tests.push(
  ...variants("sio: binary sent by the server in a server→client ack request", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const questions = new Queue(socket, "question");
      socket.on("question", (...args) => {
        const cb = args.pop();
        cb(...args, Buffer.from([0xab]));
      });
      const res = await ask(socket, 3000, "ask", 2000, Buffer.from([1, 2]), { b: new Uint8Array([3]) });
      const q = await questions.next();
      assert.deepStrictEqual(describe(q.slice(0, -1)), [{ $bin: "Buffer", hex: "0102" }, { b: { $bin: "Buffer", hex: "03" } }]);
      assert.deepStrictEqual(describe(res), {
        reply: [{ $bin: "Buffer", hex: "0102" }, { b: { $bin: "Buffer", hex: "03" } }, { $bin: "Buffer", hex: "ab" }],
      });
    },
  })),
);

// ----------------------------------------------------------------------- acks
tests.push(
  ...variants("sio: client→server ack (message-with-ack)", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const args = await new Promise((resolve) => socket.emit("message-with-ack", 1, "2", [3], { four: 4 }, null, (...a) => resolve(a)));
      assert.deepStrictEqual(args, [1, "2", [3], { four: 4 }, null]);
      const none = await new Promise((resolve) => socket.emit("message-with-ack", (...a) => resolve(a)));
      assert.deepStrictEqual(none, []);
      // several acks in flight at once are matched by id
      const all = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(socket, 3000, "message-with-ack", i)));
      assert.deepStrictEqual(all, Array.from({ length: 20 }, (_, i) => i));
    },
  })),
);

tests.push(
  ...variants("sio: emitWithAck with timeout", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      // resolves with the first argument of the ack
      assert.equal(await socket.timeout(2000).emitWithAck("message-with-ack", "first", "second"), "first");
      // "message" is never acknowledged by the server: the client times out
      const t0 = Date.now();
      await assert.rejects(socket.timeout(300).emitWithAck("message", 1), { message: "operation has timed out" });
      assert.ok(Date.now() - t0 >= 290);
      // and the late ack never shows up while the connection stays usable
      assert.equal(await socket.timeout(2000).emitWithAck("message-with-ack", "still"), "still");
    },
  })),
);

tests.push(
  ...variants("sio: server→client ack with reply (ask)", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const questions = new Queue(socket, "question");
      socket.on("question", (...args) => {
        const cb = args.pop();
        assert.equal(typeof cb, "function");
        cb("answer", ...args, { n: args.length });
      });
      assert.deepStrictEqual(await ask(socket, 3000, "ask", 2000, "q", 1, { x: [null] }), {
        reply: ["answer", "q", 1, { x: [null] }, { n: 3 }],
      });
      assert.deepStrictEqual((await questions.next()).slice(0, -1), ["q", 1, { x: [null] }]);
      assert.deepStrictEqual(await ask(socket, 3000, "ask", 2000), { reply: ["answer", { n: 0 }] });
      // answering with nothing
      socket.removeAllListeners("question");
      socket.on("question", (...args) => args.pop()());
      assert.deepStrictEqual(await ask(socket, 3000, "ask", 2000, "x"), { reply: [] });
    },
  })),
);

tests.push(
  ...variants("sio: server→client ack timeout (ask)", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const questions = new Queue(socket, "question");
      const t0 = Date.now();
      // nobody answers the question
      const res = await ask(socket, 3000, "ask", 200, "unanswered");
      const elapsed = Date.now() - t0;
      assert.deepStrictEqual(res, { error: "operation has timed out" });
      assert.ok(elapsed >= 180 && elapsed < 1500, `ack timeout after ${elapsed} ms`);
      const [q] = await questions.next();
      assert.equal(q, "unanswered");
      assert.equal(await ask(socket, 2000, "message-with-ack", "ok"), "ok");
    },
  })),
);

tests.push(
  ...variants("sio: late answer to a timed-out server ack is ignored", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      let late;
      socket.on("question", (...args) => {
        late = args.pop();
      });
      assert.deepStrictEqual(await ask(socket, 3000, "ask", 150, "slow"), { error: "operation has timed out" });
      late("too late");
      const dq = new Queue(socket, "disconnect");
      assert.equal(await ask(socket, 2000, "message-with-ack", "alive"), "alive");
      await sleep(100);
      assert.equal(dq.length, 0);
      assert.ok(socket.connected);
    },
  })),
);

// ask-all uses io.timeout().emit to every socket of "/": it runs on a dedicated
// server so that no other client is connected
tests.push({
  name: "sio: broadcast with acks, every client answers (ask-all)",
  async run(t) {
    const server = await t.dedicatedServer({});
    const sockets = [];
    const transports = ["polling", "websocket", "upgrade", "websocket"];
    for (let i = 0; i < transports.length; i++) {
      const s = await t.sioConnected("/", { transport: transports[i] }, server.url);
      s.on("question-all", (cb) => cb({ from: i, name: `client-${i}` }));
      sockets.push(s);
    }
    const res = await ask(sockets[0], 5000, "ask-all", 1000);
    assert.deepStrictEqual(res, {
      error: null,
      replies: [0, 1, 2, 3].map((i) => ({ from: i, name: `client-${i}` })),
    });
  },
});

tests.push({
  name: "sio: broadcast with acks, one client silent (ask-all timeout)",
  async run(t) {
    const server = await t.dedicatedServer({});
    const answering = [];
    for (const [i, transport] of [
      [0, "websocket"],
      [1, "polling"],
      [2, "upgrade"],
    ]) {
      const s = await t.sioConnected("/", { transport }, server.url);
      s.on("question-all", (cb) => cb(i === 1 ? [1, "b"] : i));
      answering.push(s);
    }
    const silent = await t.sioConnected("/", { transport: "websocket" }, server.url);
    const heard = new Queue(silent, "question-all");
    const t0 = Date.now();
    const res = await ask(answering[0], 5000, "ask-all", 400);
    const elapsed = Date.now() - t0;
    // replies sorted by JSON text: "0" < "2" < "[1,\"b\"]"
    assert.deepStrictEqual(res, { error: "operation has timed out", replies: [0, 2, [1, "b"]] });
    assert.ok(elapsed >= 380 && elapsed < 2000, `answered after ${elapsed} ms`);
    // the silent client did get the question, with an ack callback
    const [cb] = await heard.next();
    assert.equal(typeof cb, "function");
  },
});

// ------------------------------------------------------------------ catch-all
tests.push(
  ...variants("sio: onAny and onAnyOutgoing", ALL, (transport) => ({
    async run(t) {
      const socket = t.sio("/", { transport });
      const incoming = [];
      const outgoing = [];
      socket.onAny((...args) => incoming.push(args));
      socket.onAnyOutgoing((...args) => outgoing.push(args));
      await t.connected(socket);
      const back = new Queue(socket, "message-back");
      socket.emit("message", 1, { two: [2] });
      await back.next();
      const acked = await ask(socket, 2000, "message-with-ack", "x");
      assert.equal(acked, "x");
      await sleep(50);
      // the auth event, then the echo; acks are not events
      assert.deepStrictEqual(incoming, [
        ["auth", {}],
        ["message-back", 1, { two: [2] }],
      ]);
      assert.equal(outgoing.length, 2);
      assert.deepStrictEqual(outgoing[0], ["message", 1, { two: [2] }]);
      assert.deepStrictEqual(outgoing[1].slice(0, 2), ["message-with-ack", "x"]);
    },
  })),
);

tests.push(
  ...variants("sio: packet middlewares (socket.use) refuse, rename, and report to the error listener", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/guarded", { transport });
      const seen = new Queue(socket, "seen");
      const refused = new Queue(socket, "refused");
      const back = new Queue(socket, "echo-back");
      const skipped = new Queue(socket, "alias-handler-ran");
      let acked = false;
      // refused by the first middleware: the catch-all listener saw it, the ack never comes
      socket.emit("forbidden", 1, () => {
        acked = true;
      });
      assert.deepStrictEqual(await seen.next(), ["forbidden"]);
      assert.deepStrictEqual(await refused.next(), ["forbidden event"]);
      // renamed by the second: the handler of the new name runs, with the ack when there is one
      socket.emit("alias", "x");
      assert.deepStrictEqual(await seen.next(), ["alias"]);
      assert.deepStrictEqual(await back.next(), ["x"]);
      assert.deepStrictEqual(await socket.timeout(3000).emitWithAck("alias", { y: 1 }, 2), { y: 1 });
      assert.deepStrictEqual(await seen.next(), ["alias"]);
      if (transport === "upgrade") await t.upgraded(socket);
      socket.emit("echo", "z");
      assert.deepStrictEqual(await back.next(), ["z"]);
      assert.deepStrictEqual(await seen.next(), ["echo"]);
      assert.equal(acked, false);
      assert.equal(skipped.length, 0);
      assert.equal(refused.length, 0);
    },
  })),
);

tests.push(
  ...variants("sio: onAnyOutgoing sees the socket's own emits and broadcasts, not ack answers", ALL, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/guarded", { transport });
      const other = await t.sioConnected("/guarded", { transport });
      const shouted = new Queue(socket, "shouted");
      const otherShouted = new Queue(other, "shouted");
      const back = new Queue(socket, "echo-back");
      socket.emit("echo", "a", { b: [1] });
      assert.deepStrictEqual(await back.next(), ["a", { b: [1] }]);
      assert.deepStrictEqual(await socket.timeout(3000).emitWithAck("echo", 7), 7);
      other.emit("shout");
      await shouted.next();
      await otherShouted.next();
      if (transport === "upgrade") await t.upgraded(socket);
      const log = await socket.timeout(3000).emitWithAck("outgoing-log");
      assert.deepStrictEqual(log, [
        ["seen", "echo"],
        ["echo-back", "a", { b: [1] }],
        ["seen", "echo"],
        ["shouted"],
        ["seen", "outgoing-log"],
      ]);
    },
  })),
);

module.exports = tests;

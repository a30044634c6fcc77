"use strict";
// Ordering and integrity under load. These run on a dedicated server with
// relaxed heartbeat timings, so that a busy 2-core machine does not turn a
// slow pong into a spurious ping timeout.

const { assert, sleep } = require("../lib/util");
const { variants, PURE } = require("../lib/defs");
const { ask } = require("../lib/sio");

// connectTimeout too: under a burst of handshakes, a polling client's CONNECT
// packet can take more than the default second to arrive, and the official
// server then closes the connection (the client, without reconnection, just
// never connects)
const RELAXED = { "ping-interval": 25000, "ping-timeout": 20000, "connect-timeout": 20000 };

const tests = [];

tests.push({
  name: "sio load: 500 clients in one room x 100 fanout, nothing lost, duplicated or reordered",
  timeout: 90000,
  async run(t) {
    const server = await t.dedicatedServer(RELAXED);
    const CLIENTS = 500;
    const COUNT = 100;
    const sockets = [];
    const received = [];
    const errors = [];
    let total = 0;
    const t0 = Date.now();
    // connect in batches of 50 (4 in 5 on websocket, 1 in 5 on polling)
    for (let i = 0; i < CLIENTS; i += 50) {
      const batch = [];
      for (let j = i; j < Math.min(i + 50, CLIENTS); j++) {
        const transport = j % 5 === 4 ? "polling" : "websocket";
        const s = t.sio("/", { transport, timeout: 30000 }, server.url);
        const got = [];
        received.push(got);
        s.on("fanout", (n) => {
          got.push(n);
          total++;
        });
        s.on("connect_error", (e) => errors.push(`client ${j} (${transport}): connect_error ${e.message} ${e.description || ""}`));
        s.on("disconnect", (r) => errors.push(`client ${j} (${transport}): disconnect ${r}`));
        s.io.on("close", (r) => errors.push(`client ${j} (${transport}): connection closed: ${r}`));
        sockets.push(s);
        batch.push(s);
      }
      const deadline = Date.now() + 30000;
      while (!batch.every((s) => s.connected) && Date.now() < deadline && !errors.length) await sleep(10);
      if (errors.length || !batch.every((s) => s.connected)) {
        const missing = batch.filter((s) => !s.connected).length;
        assert.fail(`${missing} of batch ${i / 50} not connected after ${Date.now() - t0} ms; ${errors.slice(0, 5).join("; ")}`);
      }
    }
    for (let i = 0; i < CLIENTS; i += 100) {
      await Promise.all(sockets.slice(i, i + 100).map((s) => ask(s, 30000, "join", "fan")));
    }
    const t1 = Date.now();
    sockets[0].emit("fanout", "fan", COUNT);
    const deadline = Date.now() + 60000;
    while (total < CLIENTS * COUNT && Date.now() < deadline) await sleep(20);
    const t2 = Date.now();
    await sleep(300); // anything extra (duplicates) would show up now
    t.note(`connect+join ${t1 - t0} ms, fanout of ${CLIENTS * COUNT} events ${t2 - t1} ms`);
    const expected = Array.from({ length: COUNT }, (_, i) => i);
    let bad = 0;
    for (let i = 0; i < CLIENTS; i++) {
      const got = received[i];
      if (got.length !== COUNT || got.some((n, j) => n !== j)) {
        if (bad < 5) t.note(`client ${i}: ${got.length} events, first wrong at ${got.findIndex((n, j) => n !== j)}`);
        bad++;
      }
    }
    assert.equal(bad, 0, `${bad} of ${CLIENTS} clients did not get exactly 0..${COUNT - 1} in order`);
    assert.deepStrictEqual(received[0], expected);
    assert.equal(total, CLIENTS * COUNT);
    for (const s of sockets) assert.ok(s.connected);
    assert.deepStrictEqual(errors, []);
  },
});

tests.push(
  ...variants("sio load: 10,000 acks in order", PURE, (transport) => ({
    timeout: 60000,
    async run(t) {
      const server = await t.dedicatedServer(RELAXED);
      const socket = await t.sioConnected("/", { transport }, server.url);
      const N = 10000;
      const acks = [];
      const t0 = Date.now();
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${acks.length} of ${N} acks within 45 s`)), 45000);
        for (let i = 0; i < N; i++) {
          socket.emit("message-with-ack", i, `payload-${i}`, (n, s) => {
            acks.push([n, s]);
            if (acks.length === N) {
              clearTimeout(timer);
              resolve();
            }
          });
        }
      });
      t.note(`${N} acks in ${Date.now() - t0} ms`);
      await sleep(100);
      assert.equal(acks.length, N);
      for (let i = 0; i < N; i++) {
        if (acks[i][0] !== i || acks[i][1] !== `payload-${i}`) {
          assert.fail(`ack #${i} is ${JSON.stringify(acks[i])}`);
        }
      }
      assert.ok(socket.connected);
    },
  })),
);

module.exports = tests;

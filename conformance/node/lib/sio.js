"use strict";
// socket.io helpers shared by the tests.

const { Queue, withTimeout } = require("./util");

/** emitWithAck bounded in time. */
function ask(socket, ms, event, ...args) {
  return socket.timeout(ms).emitWithAck(event, ...args);
}

/**
 * An observer socket in room "observers": returns a function that waits for
 * the `peer-disconnect` report about one socket id.
 */
async function observer(t) {
  const o = await t.sioConnected("/", { transport: "websocket" });
  await ask(o, 3000, "join", "observers");
  const q = new Queue(o, "peer-disconnect");
  return {
    socket: o,
    async reportFor(id, ms = 3000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no peer-disconnect report for ${id} within ${ms} ms`);
        const [report] = await q.next(left);
        if (report && report.id === id) return report;
      }
    },
    /** every report received so far (drained) */
    drain() {
      return q.drain().map((a) => a[0]);
    },
  };
}

/** Waits for the first of several events on a socket: resolves { event, args }. */
function firstOf(socket, events, ms = 3000) {
  const listeners = {};
  const p = new Promise((resolve) => {
    for (const ev of events) {
      listeners[ev] = (...args) => resolve({ event: ev, args });
      socket.on(ev, listeners[ev]);
    }
  });
  return withTimeout(p, ms, `one of ${events.join(", ")}`).finally(() => {
    for (const ev of events) socket.off(ev, listeners[ev]);
  });
}

module.exports = { ask, observer, firstOf };

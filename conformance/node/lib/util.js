"use strict";
// Small helpers shared by the tests: bounded waits, event queues, value
// descriptions that make binary types visible to deepStrictEqual.

const assert = require("node:assert/strict");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class TimeoutError extends Error {}

/** Rejects with a TimeoutError after `ms` unless `promise` settles first. */
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves with the argument array of the next `event` on `emitter`. */
function once(emitter, event, ms = 3000) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (...args) => resolve(args);
    emitter.once(event, listener);
  });
  return withTimeout(p, ms, `event "${event}"`).finally(() => {
    if (typeof emitter.off === "function") emitter.off(event, listener);
  });
}

/**
 * Records every occurrence of `event` (argument arrays, in order) from the
 * moment it is created, so no event can be missed between two waits.
 */
class Queue {
  constructor(emitter, event) {
    this.event = event;
    this.items = [];
    this.waiters = [];
    this.listener = (...args) => {
      const w = this.waiters.shift();
      if (w) w(args);
      else this.items.push(args);
    };
    emitter.on(event, this.listener);
    this.emitter = emitter;
  }
  next(ms = 3000) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    let resolver;
    const p = new Promise((resolve) => {
      resolver = resolve;
      this.waiters.push(resolve);
    });
    return withTimeout(p, ms, `event "${this.event}"`).catch((e) => {
      const i = this.waiters.indexOf(resolver);
      if (i !== -1) this.waiters.splice(i, 1);
      throw e;
    });
  }
  /** Waits until `n` items are queued (without consuming them). */
  async waitCount(n, ms = 3000) {
    const deadline = Date.now() + ms;
    while (this.items.length < n) {
      if (Date.now() > deadline) {
        throw new TimeoutError(`timed out after ${ms} ms: ${this.items.length}/${n} "${this.event}" events`);
      }
      await sleep(5);
    }
  }
  get length() {
    return this.items.length;
  }
  drain() {
    const items = this.items;
    this.items = [];
    return items;
  }
  stop() {
    this.emitter.off(this.event, this.listener);
  }
}

const hex = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString("hex");

/**
 * Turns a value into plain JSON where every binary value is spelled out as
 * { $bin: <constructor name>, hex }, so that assert.deepStrictEqual compares
 * binary types and contents too.
 */
function describe(v) {
  if (v === null || typeof v !== "object") return v;
  if (Buffer.isBuffer(v)) return { $bin: "Buffer", hex: hex(v) };
  if (v instanceof ArrayBuffer) return { $bin: "ArrayBuffer", hex: Buffer.from(v).toString("hex") };
  if (ArrayBuffer.isView(v)) return { $bin: v.constructor.name, hex: hex(v) };
  if (typeof Blob !== "undefined" && v instanceof Blob) return { $bin: "Blob", size: v.size };
  if (Array.isArray(v)) return v.map(describe);
  const out = {};
  for (const k of Object.keys(v)) out[k] = describe(v[k]);
  return out;
}

/** Same as describe() but every binary value becomes { $bin: "binary", hex }. */
function describeBytes(v) {
  if (v === null || typeof v !== "object") return v;
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) {
    const d = describe(v);
    return { $bin: "binary", hex: d.hex };
  }
  if (Array.isArray(v)) return v.map(describeBytes);
  const out = {};
  for (const k of Object.keys(v)) out[k] = describeBytes(v[k]);
  return out;
}

/** Asserts `fn` (sync or async) keeps failing to produce `event` for `ms`. */
async function expectNoEvent(emitter, event, ms) {
  let seen = null;
  const listener = (...args) => {
    if (!seen) seen = args;
  };
  emitter.on(event, listener);
  await sleep(ms);
  emitter.off(event, listener);
  if (seen) assert.fail(`unexpected "${event}" event: ${JSON.stringify(describe(seen))}`);
}

function elapsedSince(t0) {
  return Date.now() - t0;
}

module.exports = {
  assert,
  sleep,
  withTimeout,
  once,
  Queue,
  describe,
  describeBytes,
  expectNoEvent,
  elapsedSince,
  TimeoutError,
};

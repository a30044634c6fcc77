"use strict";
// Per-test context: creates clients against the server under test and closes
// everything the test opened, whatever the outcome.

const { io, Manager } = require("socket.io-client");
const eioClient = require("engine.io-client");
const { startServer } = require("./servers");
const { once, sleep } = require("./util");

/** transport setting name -> client `transports` option (undefined = default: polling + upgrade) */
const TRANSPORTS = {
  polling: ["polling"],
  websocket: ["websocket"],
  upgrade: undefined,
};

class Context {
  constructor(server) {
    this.server = server; // { kind, url, ... }
    this.kind = server.kind;
    this.url = server.url;
    this.cleanups = [];
    this.notes = [];
  }

  /** Records a line shown with the failure details of this test. */
  note(line) {
    this.notes.push(line);
  }

  defer(fn) {
    this.cleanups.push(fn);
  }

  /** A socket.io-client socket with its own Manager; no reconnection unless asked. */
  sio(nsp = "/", opts = {}, url = this.url) {
    const { transport, ...rest } = opts;
    const options = {
      forceNew: true,
      reconnection: false,
      timeout: 5000,
      ...rest,
    };
    if (transport !== undefined) options.transports = TRANSPORTS[transport];
    const socket = io(url + nsp, options);
    this.defer(() => {
      socket.io.opts.reconnection = false;
      socket.io.reconnection(false);
      socket.disconnect();
      socket.io.engine && socket.io.engine.close();
    });
    return socket;
  }

  /** A socket.io-client Manager (for multiplexing several namespaces). */
  manager(opts = {}, url = this.url) {
    const { transport, ...rest } = opts;
    const options = { reconnection: false, timeout: 5000, ...rest };
    if (transport !== undefined) options.transports = TRANSPORTS[transport];
    const manager = new Manager(url, options);
    this.defer(() => {
      manager.reconnection(false);
      for (const s of Object.values(manager.nsps)) s.disconnect();
      manager.engine && manager.engine.close();
    });
    return manager;
  }

  /** Connects and resolves once `connect` fired; rejects on connect_error. */
  async connected(socket, ms = 5000) {
    if (socket.connected) return socket;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket ${socket.nsp} did not connect within ${ms} ms`)), ms);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("connect_error", (err) => {
        clearTimeout(timer);
        reject(new Error(`connect_error on ${socket.nsp}: ${err && err.message}`));
      });
    });
    return socket;
  }

  /** A connected socket.io-client socket. */
  async sioConnected(nsp = "/", opts = {}, url = this.url) {
    return this.connected(this.sio(nsp, opts, url));
  }

  /** An engine.io-client socket on /engine.io/ (or `path`). */
  eio(opts = {}, url = this.url) {
    const { transport, ...rest } = opts;
    const options = { path: "/engine.io/", ...rest };
    if (transport !== undefined && TRANSPORTS[transport]) options.transports = TRANSPORTS[transport];
    const socket = new eioClient.Socket(url, options);
    this.defer(() => socket.close());
    return socket;
  }

  async eioOpen(opts = {}, url = this.url) {
    const socket = this.eio(opts, url);
    await once(socket, "open", 5000);
    return socket;
  }

  /** Waits until the socket.io socket runs on the websocket transport. */
  async upgraded(socket, ms = 5000) {
    const engine = socket.io ? socket.io.engine : socket;
    if (engine.transport && engine.transport.name === "websocket") return;
    await once(engine, "upgrade", ms);
  }

  /** A dedicated server of the same kind, with extra flags; stopped after the test. */
  async dedicatedServer(flags) {
    const server = await startServer(this.kind, flags);
    this.defer(() => server.stop());
    return server;
  }

  async cleanup() {
    const fns = this.cleanups.reverse();
    this.cleanups = [];
    for (const fn of fns) {
      try {
        await fn();
      } catch {}
    }
    // give the server a moment to process the disconnections, so that the
    // next test starts on a quiet namespace
    await sleep(30);
  }
}

module.exports = { Context, TRANSPORTS };

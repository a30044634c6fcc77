"use strict";
// A real browser: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) loads a page from a small http server of this test, which
// is cross-origin to the server under test, and uses the official client bundle.

const http = require("node:http");
const fs = require("node:fs");
const path = require("node:path");
const { assert, withTimeout } = require("../lib/util");

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const BUNDLE = path.join(__dirname, "..", "node_modules", "socket.io-client", "dist", "socket.io.min.js");

// runs in the page
const PAGE_SCRIPT = `
function describe(v) {
  const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");
  if (v === null || typeof v !== "object") return v;
  if (v instanceof ArrayBuffer) return { $bin: "ArrayBuffer", hex: hex(new Uint8Array(v)) };
  if (ArrayBuffer.isView(v)) return { $bin: v.constructor.name, hex: hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  if (typeof Blob !== "undefined" && v instanceof Blob) return { $bin: "Blob", size: v.size };
  if (Array.isArray(v)) return v.map(describe);
  const out = {};
  for (const k of Object.keys(v)) out[k] = describe(v[k]);
  return out;
}
function within(ms, p, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("timeout: " + what)), ms))]);
}
window.runConformance = async function (url) {
  const out = { steps: [] };
  const socket = io(url, { forceNew: true, reconnection: false });
  window.__socket = socket;
  const authP = new Promise((r) => socket.once("auth", r));
  await within(5000, new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (e) => reject(new Error("connect_error " + e.message)));
  }), "connect");
  out.steps.push("connected");
  out.auth = await within(3000, authP, "auth");
  out.initialTransport = socket.io.engine.transport.name;
  if (socket.io.engine.transport.name !== "websocket") {
    await within(5000, new Promise((r) => socket.io.engine.once("upgrade", r)), "upgrade");
  }
  out.transport = socket.io.engine.transport.name;
  out.steps.push("upgraded");

  const backP = new Promise((r) => socket.once("message-back", (...args) => r(args)));
  socket.emit("message", "text 😀", 1.5, { a: [true, null] }, new Uint8Array([1, 2, 3]), { nested: new Uint8Array([4]).buffer });
  out.messageBack = describe(await within(3000, backP, "message-back"));

  out.ack = describe(await within(3000, new Promise((r) =>
    socket.emit("message-with-ack", new Uint8Array([9, 8]).buffer, "x", (...args) => r(args))), "ack"));

  socket.on("question", (...args) => { const cb = args.pop(); cb("from browser", ...args, new Uint8Array([0xaa])); });
  out.ask = describe(await within(3000, socket.timeout(2000).emitWithAck("ask", 1000, new Uint8Array([5]), "q"), "ask"));

  out.handshake = await within(3000, socket.timeout(2000).emitWithAck("handshake"), "handshake");

  await socket.timeout(2000).emitWithAck("join", "browser-room");
  out.rooms = await within(3000, socket.timeout(2000).emitWithAck("rooms"), "rooms");
  out.id = socket.id;

  // polling only, with a custom header: the browser sends a CORS preflight
  const p = io(url, { forceNew: true, reconnection: false, transports: ["polling"], extraHeaders: { "x-custom": "from-browser" } });
  await within(5000, new Promise((resolve, reject) => {
    p.once("connect", resolve);
    p.once("connect_error", (e) => reject(new Error("polling connect_error " + e.message)));
  }), "polling connect");
  out.pollingHandshake = await within(3000, p.timeout(2000).emitWithAck("handshake"), "polling handshake");
  out.pollingEcho = describe(await within(3000, p.timeout(2000).emitWithAck("message-with-ack", new Uint8Array([1, 255]), "é😀"), "polling ack"));
  out.pollingTransport = p.io.engine.transport.name;
  p.disconnect();

  const dP = new Promise((r) => socket.once("disconnect", (reason) => r(reason)));
  socket.emit("server-disconnect", false);
  out.disconnect = await within(3000, dP, "disconnect");
  return out;
};
window.runLargeMessages = async function (url) {
  const socket = io(url, { forceNew: true, reconnection: false, transports: ["websocket"] });
  await within(5000, new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (e) => reject(new Error("connect_error " + e.message)));
  }), "connect");
  const text = "large message ".repeat(1000);
  const bytes = new Uint8Array(20000).map((_, i) => i % 13);
  const [textBack, bytesBack] = await within(3000, new Promise((resolve, reject) =>
    socket.timeout(2000).emit("message-with-ack", text, bytes, (err, ...args) => (err ? reject(err) : resolve(args)))), "ack");
  const back = new Uint8Array(bytesBack);
  socket.disconnect();
  return { text: textBack === text, bytes: back.length === bytes.length && back.every((b, i) => b === bytes[i]) };
};
`;

function pageServer() {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>conformance</title>
<script src="/socket.io.min.js"></script><script>${PAGE_SCRIPT}</script></head><body>conformance</body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(html);
    } else if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "application/javascript" });
      fs.createReadStream(BUNDLE).pipe(res);
    } else if (req.url === "/favicon.ico") {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** Runs `window[fn](url)` in a page of a fresh headless Chromium; its result. */
async function inBrowser(t, fn, url) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  }
  const { chromium } = require("playwright-core");
  const web = await pageServer();
  t.defer(() => new Promise((r) => web.close(r)));
  web.closeAllConnections && t.defer(() => web.closeAllConnections());
  const browser = await withTimeout(
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS }),
    20000,
    "chromium to start",
  );
  t.defer(() => browser.close());
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`http://127.0.0.1:${web.address().port}/`);
  try {
    return await withTimeout(page.evaluate(({ fn, url }) => window[fn](url), { fn, url }), 25000, "the page");
  } finally {
    for (const l of consoleLines) t.note(`console ${l}`);
  }
}

module.exports = [
  {
    name: "browser: chromium connects cross-origin, upgrades, events, binary, acks",
    timeout: 40000,
    async run(t) {
      const out = await inBrowser(t, "runConformance", t.url);
      t.note(`page result: ${JSON.stringify(out)}`);
      assert.deepStrictEqual(out.auth, {});
      // (the upgrade may complete before "connect" fires: the first transport
      // is checked through the handshake query below)
      assert.equal(out.transport, "websocket");
      // a browser client decodes binary as ArrayBuffer (official server)
      const AB = (hex) => ({ $bin: "ArrayBuffer", hex });
      assert.deepStrictEqual(out.messageBack, ["text 😀", 1.5, { a: [true, null] }, AB("010203"), { nested: AB("04") }]);
      assert.deepStrictEqual(out.ack, [AB("0908"), "x"]);
      assert.deepStrictEqual(out.ask, { reply: ["from browser", AB("05"), "q", AB("aa")] });
      const h = out.handshake;
      assert.deepStrictEqual(h.auth, {});
      assert.equal(h.secure, false);
      // the page is on another origin: the browser sends Origin
      assert.equal(h.xdomain, true);
      assert.equal(h.query.EIO, "4");
      assert.equal(h.query.transport, "polling");
      assert.match(h.headers["user-agent"], /Chrome/);
      assert.ok(h.url.startsWith("/socket.io/?EIO=4&transport=polling&t="), h.url);
      assert.deepStrictEqual(out.rooms, [out.id, "browser-room"]);
      // polling with extraHeaders: preflighted cross-origin requests
      assert.equal(out.pollingTransport, "polling");
      assert.equal(out.pollingHandshake.headers["x-custom"], "from-browser");
      assert.equal(out.pollingHandshake.query.transport, "polling");
      assert.equal(out.pollingHandshake.xdomain, true);
      assert.deepStrictEqual(out.pollingEcho, AB("01ff"));
      assert.equal(out.disconnect, "io server disconnect");
    },
  },
  {
    name: "browser: chromium with perMessageDeflate on: large messages both ways over a compressed WebSocket",
    timeout: 40000,
    async run(t) {
      const server = await t.dedicatedServer({ "per-message-deflate": 1 });
      const out = await inBrowser(t, "runLargeMessages", server.url);
      t.note(`page result: ${JSON.stringify(out)}`);
      assert.deepStrictEqual(out, { text: true, bytes: true });
    },
  },
];

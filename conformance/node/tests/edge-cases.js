"use strict";
// Edge cases of the wire protocols, mostly driven by raw WebSocket / HTTP
// requests because the client libraries never produce them (or hide what the
// server answers). Every expectation was observed on the official server.

const http = require("node:http");
const { EventEmitter } = require("node:events");
const WebSocket = require("ws");
const { assert, Queue, sleep, withTimeout } = require("../lib/util");
const { variants, PURE, PING_INTERVAL, PING_TIMEOUT } = require("../lib/defs");

const tests = [];

// ------------------------------------------------------------------ helpers

/**
 * A raw WebSocket on `path` (default query: a new engine.io session).
 * Server pings ("2") are answered with "3" unless answerPings is false; they
 * are queued on `pings` (arrival times), never on `frames`.
 * `frames` queues { text } / { binary: [bytes] } with their arrival time `at`.
 */
function rawWs(t, path, opts = {}) {
  const { query = "?EIO=4&transport=websocket", answerPings = true, headers, protocols } = opts;
  const url = `${t.url.replace(/^http/, "ws")}${path}${query}`;
  const ws = new WebSocket(url, protocols || [], headers ? { headers } : {});
  t.defer(() => ws.terminate());
  const ev = new EventEmitter();
  const c = { ws, frames: new Queue(ev, "frame"), pings: new Queue(ev, "ping"), all: [] };
  ws.on("message", (data, isBinary) => {
    const at = Date.now();
    const f = isBinary ? { binary: [...data], at } : { text: data.toString(), at };
    if (f.text === "2") {
      ev.emit("ping", at);
      if (answerPings && ws.readyState === WebSocket.OPEN) ws.send("3");
      return;
    }
    c.all.push(f);
    ev.emit("frame", f);
  });
  c.closed = new Promise((resolve) => ws.on("close", (code) => resolve({ code, at: Date.now() })));
  c.opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  c.opened.catch(() => {});
  ws.on("error", () => {});
  c.send = (data) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(data);
  };
  return c;
}

/**
 * Resolves with the time the server closed the WebSocket: its close frame was
 * received (readyState CLOSING) or the connection ended, whichever is seen first.
 */
function serverClosed(c, ms, what = "the server to close the websocket") {
  let timer;
  const p = new Promise((resolve) => {
    const check = () => {
      if (c.ws.readyState === WebSocket.CLOSING || c.ws.readyState === WebSocket.CLOSED) resolve(Date.now());
    };
    timer = setInterval(check, 5);
    c.ws.once("close", check);
    check();
  });
  return withTimeout(p, ms, what).finally(() => clearInterval(timer));
}

/** The next frame, which must be a text frame; returns its text. */
async function nextText(c, ms = 2000) {
  const [f] = await c.frames.next(ms);
  assert.ok(f.text !== undefined, `expected a text frame, got binary [${f.binary}]`);
  return f.text;
}

/** Raw engine.io WebSocket: waits for the open packet. */
async function eioWs(t, opts) {
  const c = rawWs(t, "/engine.io/", opts);
  const open = await nextText(c, 3000);
  assert.equal(open[0], "0", `open packet: ${open}`);
  return c;
}

/** Raw socket.io WebSocket connected to "/" (CONNECT answered, the `auth` event consumed). */
async function sioWs(t, opts) {
  const c = rawWs(t, "/socket.io/", opts);
  const open = await nextText(c, 3000);
  assert.equal(open[0], "0", `open packet: ${open}`);
  c.send("40");
  const connect = await nextText(c);
  assert.ok(connect.startsWith('40{"sid":'), `CONNECT reply: ${connect}`);
  assert.equal(await nextText(c), '42["auth",{}]');
  return c;
}

/** Raw HTTP request (node:http, no agent: headers exactly as given). */
function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (d) => chunks.push(d));
      res.on("end", () => {
        const raw = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body: raw.toString("utf8"), raw });
      });
      res.on("error", reject);
    });
    req.setTimeout(3000, () => req.destroy(new Error(`no answer to ${method} ${url} within 3 s`)));
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function pollingSid(t, path = "/engine.io/") {
  const r = await request(`${t.url}${path}?EIO=4&transport=polling`);
  assert.equal(r.status, 200);
  assert.equal(r.body[0], "0", r.body);
  return JSON.parse(r.body.slice(1)).sid;
}

// ------------------------------------------- 1. lone UTF-16 surrogate in a string
tests.push(
  ...variants("edge: sio string with a lone surrogate is echoed, connection kept", PURE, (transport) => ({
    async run(t) {
      const socket = await t.sioConnected("/", { transport });
      const back = new Queue(socket, "message-back");
      const disconnects = new Queue(socket, "disconnect");
      const cut = "ab😀".slice(0, 3); // "ab\ud83d": an emoji cut in half
      socket.emit("message", cut);
      const args = await back.next(2000);
      t.note(`message-back args: ${JSON.stringify(args)}`);
      assert.equal(args.length, 1);
      assert.equal(typeof args[0], "string");
      // the official server echoes "ab\ud83d"; U+FFFD in place of the surrogate is fine too
      assert.ok(args[0].startsWith("ab"), JSON.stringify(args[0]));
      assert.equal(args[0].length, 3);
      socket.emit("message", "after", 1);
      assert.deepStrictEqual(await back.next(2000), ["after", 1]);
      assert.equal(disconnects.length, 0, "no disconnect");
      assert.ok(socket.connected);
    },
  })),
);

// ------------------- 2. probing websocket of a session that dies is closed too
tests.push({
  name: "edge: eio probing websocket (no upgrade packet) is closed when the session dies",
  async run(t) {
    const sid = await pollingSid(t);
    const t0 = Date.now();
    const c = rawWs(t, "/engine.io/", { query: `?EIO=4&transport=websocket&sid=${sid}`, answerPings: false });
    await withTimeout(c.opened, 2000, "the websocket to open");
    c.send("2probe");
    assert.equal(await nextText(c), "3probe");
    // never "5", never a poll: the polling side leaves the ping unanswered, the
    // session dies of ping timeout (~pingInterval + pingTimeout after the handshake)
    const limit = PING_INTERVAL + PING_TIMEOUT + 1000;
    const closedAt = await serverClosed(c, limit - (Date.now() - t0), "the server to close the probing websocket");
    t.note(`probing websocket closed ${closedAt - t0} ms after the handshake; frames: ${JSON.stringify(c.all.map((f) => f.text))}`);
    // nothing but the probe answer came on it
    assert.deepStrictEqual(c.all.map((f) => f.text), ["3probe"]);
    const after = await request(`${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.equal(after.status, 400);
    assert.deepStrictEqual(JSON.parse(after.body), { code: 1, message: "Session ID unknown" });
  },
});

// ----------------------- 3. a packet while waiting for the pong refreshes pingTimeout once
tests.push({
  name: "edge: eio first packet while waiting for a pong refreshes the ping timeout once",
  async run(t) {
    const c = await eioWs(t, { answerPings: false });
    const [pingAt] = await c.pings.next(PING_INTERVAL + 1000);
    let helloAt = 0;
    let againAt = 0;
    const h1 = setTimeout(() => {
      helloAt = Date.now();
      c.send("4hello");
    }, 150);
    const h2 = setTimeout(() => {
      if (c.ws.readyState !== WebSocket.OPEN) return;
      againAt = Date.now();
      c.send("4again");
    }, 300);
    t.defer(() => {
      clearTimeout(h1);
      clearTimeout(h2);
    });
    const closedAt = await serverClosed(c, 2000);
    t.note(
      `after the ping: 4hello sent at +${helloAt - pingAt} ms, 4again at ${againAt ? `+${againAt - pingAt} ms` : "(not sent, closed)"}, ` +
        `closed at +${closedAt - pingAt} ms; frames: ${JSON.stringify(c.all.map((f) => f.text))}`,
    );
    assert.ok(helloAt > 0, "4hello was sent before the close");
    // without the refresh the server closes pingTimeout (200 ms) after its ping;
    // with it, pingTimeout after 4hello arrived (~+350 ms)
    assert.ok(closedAt - pingAt >= PING_TIMEOUT + 70, `closed ${closedAt - pingAt} ms after the ping: not refreshed`);
    assert.ok(closedAt - helloAt >= PING_TIMEOUT - 30, `closed ${closedAt - helloAt} ms after 4hello`);
    // refreshed once only: a second message (4again) does not push it further
    assert.ok(closedAt - helloAt <= PING_TIMEOUT + 300, `closed ${closedAt - helloAt} ms after 4hello: too late`);
    // the message itself was delivered (echoed)
    assert.equal(c.all[1] && c.all[1].text, "4hello");
  },
});

// --------------------------------------------------- 4. WebSocket subprotocols
tests.push({
  name: "edge: websocket subprotocol: the first offered is selected",
  async run(t) {
    for (const path of ["/engine.io/", "/socket.io/"]) {
      const url = `${t.url}${path}?EIO=4&transport=websocket`;
      const offered = await upgradeAnswer(url, { "Sec-WebSocket-Protocol": "chat, superchat" });
      t.note(`${path} with protocols: ${offered.status} ${JSON.stringify(offered.headers)}`);
      assert.equal(offered.status, 101, path);
      assert.equal(offered.headers["sec-websocket-protocol"], "chat", path);
      const plain = await upgradeAnswer(url, {});
      assert.equal(plain.status, 101, path);
      assert.equal(plain.headers["sec-websocket-protocol"], undefined, `${path} without protocols`);
    }
    // a client that requires a subprotocol opens fine
    const c = rawWs(t, "/engine.io/", { protocols: ["chat"] });
    await withTimeout(c.opened, 2000, "the websocket with protocols [chat] to open");
    assert.equal(c.ws.protocol, "chat");
    const open = await nextText(c);
    assert.equal(open[0], "0");
    c.send("4sub");
    assert.equal(await nextText(c), "4sub");
  },
});

/** An upgrade request's answer with its body (a refusal has one). */
function upgradeAnswer(url, extraHeaders) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      agent: false,
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        ...extraHeaders,
      },
    });
    req.setTimeout(3000, () => req.destroy(new Error("no answer to the upgrade request within 3 s")));
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: "" });
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

tests.push({
  name: "edge: websocket handshake refusals say what is wrong, as ws does",
  async run(t) {
    const url = `${t.url}/engine.io/?EIO=4&transport=websocket`;
    const version8 = await upgradeAnswer(url, { "Sec-WebSocket-Version": "8" });
    assert.equal(version8.status, 101, "version 8 is accepted");
    const cases = [
      [{ "Sec-WebSocket-Version": "12" }, "Missing or invalid Sec-WebSocket-Version header"],
      [{ "Sec-WebSocket-Key": "abc" }, "Missing or invalid Sec-WebSocket-Key header"],
      [{ "Sec-WebSocket-Protocol": "chat, chat" }, "Invalid Sec-WebSocket-Protocol header"],
    ];
    for (const [headers, message] of cases) {
      const answer = await upgradeAnswer(url, headers);
      t.note(`${JSON.stringify(headers)}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.status, 400, JSON.stringify(headers));
      assert.equal(answer.body, message, JSON.stringify(headers));
    }
    const version12 = await upgradeAnswer(url, { "Sec-WebSocket-Version": "12" });
    assert.equal(version12.headers["sec-websocket-version"], "13, 8");

    // the cors option's headers go out on the 101, never on a refused upgrade
    const origin = { Origin: "https://app.example" };
    const accepted = await upgradeAnswer(url, origin);
    assert.equal(accepted.status, 101);
    assert.equal(accepted.headers["access-control-allow-origin"], "*");
    for (const [target, headers] of [
      [`${url}&sid=unknown`, origin],
      [url, { ...origin, "Sec-WebSocket-Key": "abc" }],
    ]) {
      const refused = await upgradeAnswer(target, headers);
      t.note(`${target} ${JSON.stringify(headers)}: ${refused.status} ${JSON.stringify(refused.headers)}`);
      assert.equal(refused.status, 400);
      assert.deepStrictEqual(
        Object.keys(refused.headers).filter((name) => name.startsWith("access-control-")),
        [],
      );
    }
  },
});

// ---------------------- 5. socket.io packets that do not fit the connection state
/** Sends `packets` then a fence event; the server must close without answering anything. */
async function expectSioClose(t, label, c, packets) {
  const before = c.all.length;
  const sentAt = Date.now();
  for (const p of packets) c.send(p);
  c.send('42["message","fence"]');
  const closedAt = await serverClosed(c, 700, `the server to close the connection (${label})`);
  await sleep(20);
  const after = c.all.slice(before).map((f) => (f.text !== undefined ? f.text : `binary [${f.binary}]`));
  t.note(`${label}: closed ${closedAt - sentAt} ms after; frames after the packet: ${JSON.stringify(after)}`);
  assert.deepStrictEqual(after, [], `${label}: nothing answered`);
}

tests.push({
  name: "edge: sio packets that do not fit the connection state close it",
  async run(t) {
    const cases = [
      ["second CONNECT to /", ["40"]],
      ["EVENT for a namespace never joined", ['42/custom,["x"]']],
      ["CONNECT_ERROR sent by the client", ['44{"message":"x"}']],
      ["DISCONNECT for a namespace never joined", ["41/custom,"]],
    ];
    for (const [label, packets] of cases) {
      const c = await sioWs(t);
      await expectSioClose(t, label, c, packets);
    }
    // an EVENT before any CONNECT (a CONNECT follows it: it must not be answered)
    const c = rawWs(t, "/socket.io/");
    const open = await nextText(c, 3000);
    assert.equal(open[0], "0");
    await expectSioClose(t, "EVENT before any CONNECT", c, ['42["message","early"]', "40"]);
  },
});

// -------------------------------------------- 6. sid requests with a bad EIO
tests.push({
  name: "edge: eio request with a sid but EIO missing or not 4 is a bad request; empty sid is a handshake",
  async run(t) {
    const bad = { code: 3, message: "Bad request" };
    for (const [method, query] of [
      ["GET", "transport=polling"],
      ["GET", "EIO=3&transport=polling"],
      ["POST", "transport=polling"],
      ["POST", "EIO=3&transport=polling"],
    ]) {
      const sid = await pollingSid(t);
      const r = await request(`${t.url}/engine.io/?${query}&sid=${sid}`, method === "POST" ? { method, body: "4hi" } : {});
      t.note(`${method} ?${query}&sid=…: ${r.status} ${r.body}`);
      assert.equal(r.status, 400, `${method} ?${query}`);
      assert.deepStrictEqual(JSON.parse(r.body), bad, `${method} ?${query}`);
    }
    // an empty sid is no sid: a new session
    const r = await request(`${t.url}/engine.io/?EIO=4&transport=polling&sid=`);
    t.note(`GET ?EIO=4&transport=polling&sid=: ${r.status} ${r.body}`);
    assert.equal(r.status, 200);
    assert.equal(r.body[0], "0");
    const hs = JSON.parse(r.body.slice(1));
    assert.equal(typeof hs.sid, "string");
    assert.ok(hs.sid.length > 0);
    assert.deepStrictEqual(hs.upgrades, ["websocket"]);
  },
});

// ------------------------------------- 7. BINARY_EVENT announcing 0 attachments
tests.push({
  name: "edge: sio BINARY_EVENT with 0 attachments closes the connection",
  async run(t) {
    const c = await sioWs(t);
    await expectSioClose(t, "450-", c, ['450-["message","x"]']);
  },
});

// -------------------------------------------- 8. polling response headers
tests.push({
  name: "edge: eio polling responses carry Cache-Control no-store (and X-XSS-Protection 0 for Trident)",
  async run(t) {
    const ie = "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko";
    const other = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0";
    for (const ua of [ie, other]) {
      const headers = { "user-agent": ua };
      const base = `${t.url}/engine.io/?EIO=4&transport=polling`;
      const hs = await request(base, { headers });
      assert.equal(hs.status, 200);
      const sid = JSON.parse(hs.body.slice(1)).sid;
      const post = await request(`${base}&sid=${sid}`, { method: "POST", headers, body: "4hello" });
      assert.equal(post.status, 200);
      assert.equal(post.body, "ok");
      const poll = await request(`${base}&sid=${sid}`, { headers });
      assert.equal(poll.status, 200);
      assert.equal(poll.body, "4hello");
      for (const [what, r] of [["handshake", hs], ["POST", post], ["GET", poll]]) {
        const label = `${what} (${ua === ie ? "Trident" : "other"} user agent)`;
        t.note(`${label}: ${JSON.stringify(r.headers)}`);
        assert.equal(r.headers["cache-control"], "no-store", label);
        assert.equal(r.headers["x-xss-protection"], ua === ie ? "0" : undefined, label);
      }
    }
  },
});

// ------------------------------------- 9. numbers echoed as JavaScript prints them
tests.push({
  name: "edge: sio JSON numbers are echoed as JavaScript prints them",
  async run(t) {
    const c = await sioWs(t);
    const cases = [
      ["1.0", "1"],
      ["-0", "0"],
      ["1e20", "100000000000000000000"],
      ["0.000001", "0.000001"],
      ["1.5", "1.5"],
      ["1e21", "1e+21"],
      // beyond a double: JSON.parse reads Infinity, which JSON.stringify writes as null
      ["1e400", "null"],
      ["[-1E+400]", "[null]"],
      // integers beyond Number.MAX_SAFE_INTEGER are read as the nearest double
      ["9007199254740991", "9007199254740991"],
      ["9007199254740993", "9007199254740992"],
      ['{"a":[-12345678901234567890]}', '{"a":[-12345678901234567000]}'],
    ];
    for (const [sent, expected] of cases) {
      c.send(`42["message",${sent}]`);
      assert.equal(await nextText(c), `42["message-back",${expected}]`, `number ${sent}`);
    }
  },
});

// ------------------------------- 9b. placeholders as the official parser resolves them
tests.push({
  name: "edge: sio attachments are resolved through their placeholders, whatever the num's spelling",
  async run(t) {
    const c = await sioWs(t);
    const frame = async () => {
      const [f] = await c.frames.next(2000);
      return f.text !== undefined ? f.text : `binary [${f.binary}]`;
    };
    const echo = async (text, attachments, expected) => {
      c.send(text);
      for (const a of attachments) c.send(Buffer.from(a));
      const got = [];
      for (let i = 0; i < expected.length; i++) got.push(await frame());
      assert.deepStrictEqual(got, expected, text);
    };
    const ph = (n) => `{"_placeholder":true,"num":${n}}`;
    // any number equal to an index names that attachment
    for (const n of ["0", "-0", "0.0", "0e5"]) {
      await echo(`451-["message",${ph(n)}]`, [[7]], [`451-["message-back",${ph(0)}]`, "binary [7]"]);
    }
    // a number in range but not whole names nothing: undefined, null in an array, no key in an object
    await echo(`452-["message",${ph("0.5")},{"k":${ph("1e-7")},"j":1}]`, [[1], [2]], [
      '42["message-back",null,{"j":1}]',
    ]);
    // attachments nobody names are dropped; one named twice is sent twice, in the order of the arguments
    await echo(`453-["message",{"x":${ph(2)}},${ph(0)},${ph(2)}]`, [[1], [2], [3]], [
      `453-["message-back",{"x":${ph(0)}},${ph(1)},${ph(2)}]`,
      "binary [3]",
      "binary [1]",
      "binary [3]",
    ]);
    await echo('452-["message"]', [[1], [2]], ['42["message-back"]']);
  },
});

// ----------------------------------- 9d. object keys in the order JavaScript holds them
tests.push({
  name: "edge: sio object keys come back in JavaScript's order (array indices first)",
  async run(t) {
    const c = await sioWs(t);
    c.send('42["message",{"a":1,"10":2,"2":3,"01":4,"b":{"z":1,"0":2},"4294967295":5}]');
    assert.equal(
      await nextText(c),
      '42["message-back",{"2":3,"10":2,"a":1,"01":4,"b":{"0":2,"z":1},"4294967295":5}]',
    );
  },
});

// ------------------------ 9c. a client close ends a session the server is closing
tests.push({
  name: "edge: eio a close packet ends a polling session the server closed before a poll fetched its close",
  async run(t) {
    const base = `${t.url}/socket.io/?EIO=4&transport=polling`;
    for (const ending of ["1", "4x\x1e1"]) {
      const hs = await request(base);
      const q = `${base}&sid=${JSON.parse(hs.body.slice(1)).sid}`;
      const post = async (body) => assert.equal((await request(q, { method: "POST", body })).body, "ok", body);
      await post("40");
      const connected = await request(q);
      assert.ok(connected.body.startsWith('40{"sid":'), connected.body);
      // an invalid packet: the server closes the connection and waits for a poll to say so
      await post("47");
      await post(ending);
      const after = await request(q);
      assert.equal(after.status, 400, `after ${JSON.stringify(ending)}: ${after.body}`);
      assert.deepStrictEqual(JSON.parse(after.body), { code: 1, message: "Session ID unknown" });
    }
  },
});

/** A polling session with a poll waiting on the server, and an open WebSocket that asks to take it over. */
async function upgradingWithAWaitingPoll(t) {
  const sid = await pollingSid(t);
  const poll = request(`${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`);
  await sleep(100); // the poll is waiting on the server
  const c = rawWs(t, "/engine.io/", { query: `?EIO=4&transport=websocket&sid=${sid}` });
  await c.opened;
  return { poll, c };
}

// ------------------------- 9e. a poll still waiting when the upgrade completes
tests.push({
  name: "edge: eio a poll still waiting when a WebSocket upgrades without a probe gets a close packet",
  async run(t) {
    const { poll, c } = await upgradingWithAWaitingPoll(t);
    c.send("5");
    const answer = await withTimeout(poll, 2000, "the waiting poll to be answered");
    assert.equal(answer.status, 200);
    assert.equal(answer.body, "1");
    c.send("4after");
    assert.equal(await nextText(c), "4after");
  },
});

// ------------------------- 9g. the noop that ends a waiting poll during an upgrade
tests.push({
  name: "edge: eio a poll waiting during an upgrade gets its noop from a check ~100 ms after the probe",
  async run(t) {
    const { poll, c } = await upgradingWithAWaitingPoll(t);
    const probedAt = Date.now();
    c.send("2probe");
    assert.equal(await nextText(c), "3probe");
    const answer = await withTimeout(poll, 2000, "the waiting poll to be answered");
    const after = Date.now() - probedAt;
    t.note(`noop ${after} ms after the probe`);
    assert.equal(answer.body, "6");
    // Node's check runs every 100 ms once the probe is answered; the official client's test
    // "should not emit a packet twice in the 'connect' handler" counts packets within 100 ms
    assert.ok(after >= 90, `the noop came ${after} ms after the probe`);
    c.send("5");
    c.send("4after");
    assert.equal(await nextText(c), "4after");
  },
});

// ------------------- 9f. closing a connection disconnects its namespaces in connect order
tests.push({
  name: "edge: sio a server-closed connection disconnects its namespaces in the order they connected",
  async run(t) {
    const c = rawWs(t, "/socket.io/");
    assert.equal((await nextText(c, 3000))[0], "0");
    for (const nsp of ["/custom", "/", "/dynamic-b1"]) {
      const prefix = nsp === "/" ? "" : `${nsp},`;
      c.send(`40${prefix}`);
      const connect = await nextText(c);
      assert.ok(connect.startsWith(`40${prefix}{"sid":`), `CONNECT reply: ${connect}`);
      // the greeting each of these namespaces sends on connection
      const greeting = nsp.startsWith("/dynamic-") ? `["nsp","${nsp}"]` : '["auth",{}]';
      assert.equal(await nextText(c), `42${prefix}${greeting}`);
    }
    c.send('42["server-disconnect",true]');
    assert.deepStrictEqual(
      [await nextText(c), await nextText(c), await nextText(c)],
      ["41/custom,", "41", "41/dynamic-b1,"],
    );
    await serverClosed(c, 2000);
  },
});

// ------------- 9g. packets sent to a namespace the server is leaving are dropped
tests.push({
  name: "edge: sio events in the payload that makes the server leave a namespace are dropped, the connection kept",
  async run(t) {
    const base = `${t.url}/socket.io/?EIO=4&transport=polling`;
    const hs = await request(base);
    const q = `${base}&sid=${JSON.parse(hs.body.slice(1)).sid}`;
    const post = async (body) => assert.equal((await request(q, { method: "POST", body })).body, "ok", body);
    /** Polls until `want` arrives; returns every packet seen, answering pings. */
    const pollFor = async (want) => {
      const seen = [];
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        const r = await request(q);
        assert.equal(r.status, 200, r.body);
        for (const p of r.body.split("\x1e")) {
          if (p === "2") await post("3");
          else seen.push(p);
        }
        if (seen.some((p) => p.startsWith(want))) return seen;
      }
      throw new Error(`no ${want} within 3 s; saw ${JSON.stringify(seen)}`);
    };
    await post("40\x1e40/custom,");
    await pollFor("40/custom,");
    // one payload: the first event makes the server disconnect "/", the next ones reach "/"
    // after that, before the client could read the DISCONNECT
    await post('42["server-disconnect",false]\x1e42["message","dropped"]\x1e421["message-with-ack","x"]');
    const seen = await pollFor("41");
    // the connection stays: "/" connects again and answers, "/custom" was never touched
    await post("40");
    await post('42["message","after"]');
    seen.push(...(await pollFor('42["message-back","after"]')));
    assert.deepStrictEqual(
      // (both namespaces greet with an "auth" event on connection)
      seen.filter((p) => !p.startsWith("40") && !/^42(\/custom,)?\["auth"/.test(p)),
      ["41", '42["message-back","after"]'],
    );
  },
});

// ------------------------------------------- 9h. the path without its trailing slash
tests.push({
  name: "edge: eio the path without its trailing slash is not served (addTrailingSlash default)",
  async run(t) {
    for (const path of ["/socket.io", "/engine.io", "/socket.iox/"]) {
      const r = await request(`${t.url}${path}?EIO=4&transport=polling`);
      assert.equal(r.status, 404, `${path}: ${r.status} ${r.body}`);
    }
    const served = await request(`${t.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(served.status, 200);
  },
});

// ------------------------------------------------ 10. empty Origin: not xdomain
/** socket.handshake (the `handshake` ack) of a raw polling connection to "/" opened with `headers`. */
async function pollingHandshakeAck(t, headers) {
  const base = `${t.url}/socket.io/?EIO=4&transport=polling`;
  const hs = await request(base, { headers });
  assert.equal(hs.status, 200);
  const q = `${base}&sid=${JSON.parse(hs.body.slice(1)).sid}`;
  const post = async (body) => assert.equal((await request(q, { method: "POST", headers, body })).body, "ok");
  await post("40");
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const r = await request(q, { headers });
    assert.equal(r.status, 200, r.body);
    for (const p of r.body.split("\x1e")) {
      if (p === "2") await post("3");
      else if (p.startsWith('40{"sid":')) await post('421["handshake"]');
      else if (p.startsWith("431[")) {
        await post("1");
        return JSON.parse(p.slice(3))[0];
      }
    }
  }
  throw new Error("no answer to the handshake event within 3 s");
}

tests.push(
  ...variants("edge: sio handshake.xdomain is false with an empty Origin header", PURE, (transport) => ({
    async run(t) {
      let h;
      if (transport === "websocket") {
        const c = await sioWs(t, { headers: { Origin: "" } });
        c.send('421["handshake"]');
        const ack = await nextText(c);
        assert.ok(ack.startsWith("431["), ack);
        [h] = JSON.parse(ack.slice(3));
      } else {
        h = await pollingHandshakeAck(t, { Origin: "" });
      }
      t.note(`handshake: ${JSON.stringify(h)}`);
      assert.equal(h.xdomain, false);
      assert.equal(h.query.transport, transport);
    },
  })),
);

// ------------------------------------ 10b. header bytes beyond ASCII read as Latin-1
tests.push(
  ...variants("edge: sio handshake headers read bytes beyond ASCII as Latin-1", PURE, (transport) => ({
    async run(t) {
      // node:http writes "é" as the single byte 0xE9
      const headers = { "x-custom": "caf\u00e9" };
      let h;
      if (transport === "websocket") {
        const c = await sioWs(t, { headers });
        c.send('421["handshake"]');
        const ack = await nextText(c);
        assert.ok(ack.startsWith("431["), ack);
        [h] = JSON.parse(ack.slice(3));
      } else {
        h = await pollingHandshakeAck(t, headers);
      }
      assert.equal(h.headers["x-custom"], "caf\u00e9");
    },
  })),
);

tests.push({
  name: "edge: sio handshake.headers joins a repeated custom header, as Node's req.headers does",
  async run(t) {
    const h = await pollingHandshakeAck(t, { "X-Custom": ["v1", "v2"] });
    t.note(`headers: ${JSON.stringify(h.headers)}`);
    assert.equal(h.headers["x-custom"], "v1, v2");
  },
});

// ------------------------------ 11. text frame "b…" on websocket is base64 binary
tests.push({
  name: "edge: eio websocket text frame bAQI= is a binary message",
  async run(t) {
    const c = await eioWs(t);
    c.send("bAQI=");
    const [f] = await c.frames.next(2000);
    t.note(`frame: ${JSON.stringify(f)}`);
    assert.deepStrictEqual(f.binary, [1, 2]);
    // still usable
    c.send("4after");
    assert.equal(await nextText(c), "4after");
  },
});

// ----------------------------- 12. polling base64 without its padding is accepted
tests.push({
  name: "edge: eio polling binary packet without base64 padding is accepted",
  async run(t) {
    const sid = await pollingSid(t);
    const q = `${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const post = await request(q, { method: "POST", body: "bAQI" });
    assert.equal(post.status, 200);
    assert.equal(post.body, "ok");
    const poll = await request(q);
    t.note(`poll: ${poll.status} ${JSON.stringify(poll.body)}`);
    assert.equal(poll.status, 200);
    assert.equal(poll.body, "bAQI=");
  },
});

// ------------------------- 13. large polling answers are compressed (httpCompression)
tests.push({
  name: "edge: eio polling answers of 1024 bytes or more are compressed as the client accepts",
  async run(t) {
    const zlib = require("zlib");
    const decoders = { gzip: zlib.gunzipSync, deflate: zlib.inflateSync };
    const cases = [
      // [Accept-Encoding, message length (the answer is one byte longer), expected coding]
      ["gzip, deflate, br", 1023, "gzip"],
      ["gzip", 1022, undefined],
      ["deflate, gzip", 3000, "deflate"],
      ["gzip;q=0.5, deflate", 3000, "deflate"],
      ["*", 3000, "gzip"],
      ["br", 3000, undefined],
      ["gzip;q=0", 3000, undefined],
      [undefined, 3000, undefined],
    ];
    for (const [accept, length, expected] of cases) {
      const sid = await pollingSid(t);
      const q = `${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`;
      const message = "4" + "abcdefgh".repeat(length).slice(0, length);
      assert.equal((await request(q, { method: "POST", body: message })).body, "ok");
      const headers = accept === undefined ? {} : { "accept-encoding": accept };
      const poll = await request(q, { headers });
      const label = `Accept-Encoding ${JSON.stringify(accept)}, ${length + 1} bytes`;
      t.note(`${label}: Content-Encoding ${poll.headers["content-encoding"]}, ${poll.raw.length} bytes`);
      assert.equal(poll.status, 200, label);
      assert.equal(poll.headers["content-encoding"], expected, label);
      assert.equal(poll.headers["content-type"], "text/plain; charset=UTF-8", label);
      const body = expected ? decoders[expected](poll.raw).toString("utf8") : poll.body;
      assert.equal(body, message, label);
      await request(q, { method: "POST", body: "1" });
    }
  },
});

// ------------- 14. a client ack passed to an echoing handler travels with its arguments
tests.push(
  ...variants("edge: sio the client's ack given to message / broadcast goes on with the arguments", PURE, (transport) => ({
    async run(t) {
      const a = await t.sioConnected("/", { transport });
      const b = await t.sioConnected("/", { transport });
      // message: the echo asks the client for an ack, and that answer answers the client's own event
      a.once("message-back", (...args) => {
        assert.equal(args.length, 2);
        assert.equal(args[0], "x");
        assert.equal(typeof args[1], "function", "message-back carries an ack request");
        args[1]("from the client", 2);
      });
      const reply = await withTimeout(new Promise((resolve) => a.emit("message", "x", (...r) => resolve(r))), 2000, "the ack of message");
      t.note(`ack of message: ${JSON.stringify(reply)}`);
      assert.deepStrictEqual(reply, ["from the client", 2]);
      // broadcast: the receivers are asked for an ack; with no timeout set the sender's ack is
      // answered at once with the timed-out error (serialized as {}) and no answers
      const received = new Promise((resolve) => b.once("broadcast", (...args) => resolve(args)));
      const answer = await withTimeout(new Promise((resolve) => a.emit("broadcast", "b", (...r) => resolve(r))), 2000, "the ack of broadcast");
      const args = await withTimeout(received, 2000, "the broadcast");
      t.note(`ack of broadcast: ${JSON.stringify(answer)}; receiver got ${args.length} args`);
      assert.deepStrictEqual(answer, [{}, []]);
      assert.equal(args[0], "b");
      assert.equal(typeof args[1], "function", "the broadcast carries an ack request");
      // a broadcast that reaches nobody has nothing to wait for: no error, no answers
      const none = await withTimeout(new Promise((resolve) => a.emit("to-room", "nobody-here", "c", (...r) => resolve(r))), 2000, "the ack of an empty broadcast");
      assert.deepStrictEqual(none, [null, []]);
    },
  })),
);

// ------------- 15. b64: binary goes to the client as "b" + base64 text frames over WebSocket
tests.push({
  name: "edge: eio websocket with b64 set sends binary as b + base64 text frames",
  async run(t) {
    const c = await eioWs(t, { query: "?EIO=4&transport=websocket&b64=1" });
    c.ws.send(Buffer.from([1, 2, 3]));
    assert.equal(await nextText(c), "bAQID");
    c.send("b/wA=");
    assert.equal(await nextText(c), "b/wA=");
    // socket.io binary attachments too (forceBase64 sets b64=1)
    const s = rawWs(t, "/socket.io/", { query: "?EIO=4&transport=websocket&b64=1" });
    await nextText(s, 3000);
    s.send("40");
    await nextText(s);
    assert.equal(await nextText(s), '42["auth",{}]');
    s.send('451-["message",{"_placeholder":true,"num":0}]');
    s.ws.send(Buffer.from([250, 0]));
    assert.equal(await nextText(s), '451-["message-back",{"_placeholder":true,"num":0}]');
    assert.equal(await nextText(s), "b+gA=");
    // an empty b64 is not set
    const plain = await eioWs(t, { query: "?EIO=4&transport=websocket&b64=" });
    plain.ws.send(Buffer.from([7]));
    const [f] = await plain.frames.next(2000);
    assert.deepStrictEqual(f.binary, [7]);
  },
});

// ------------- 16. EVENT / ACK without payload are well-formed: dropped, or an ack with no args
tests.push({
  name: "edge: sio EVENT and ACK without payload do not close the connection",
  async run(t) {
    const c = await sioWs(t);
    c.send("42");
    c.send("4212");
    c.send('421["ask",2000,"q"]');
    const question = await nextText(c);
    const m = /^42(\d+)\["question","q"\]$/.exec(question);
    assert.ok(m, `question: ${question}`);
    c.send(`43${m[1]}`);
    assert.equal(await nextText(c), '431[{"reply":[]}]');
    c.send('42["message",1]');
    assert.equal(await nextText(c), '42["message-back",1]');
  },
});

// ------------- 17. an Upgrade header without "Connection: upgrade" is a plain HTTP request
tests.push({
  name: "edge: eio an Upgrade header without Connection: upgrade is served as plain HTTP",
  async run(t) {
    const sid = await pollingSid(t);
    const q = `${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const post = await request(q, { method: "POST", body: "4hello" });
    assert.equal(post.status, 200);
    const poll = await request(q, { headers: { upgrade: "websocket" } });
    t.note(`poll: ${poll.status} ${JSON.stringify(poll.body)}`);
    assert.equal(poll.status, 200);
    assert.equal(poll.body, "4hello");
    const handshake = await request(`${t.url}/engine.io/?EIO=4&transport=websocket`, {
      headers: { upgrade: "websocket", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
    });
    t.note(`websocket handshake without Connection: ${handshake.status} ${handshake.body}`);
    assert.equal(handshake.status, 400);
    assert.deepStrictEqual(JSON.parse(handshake.body), { code: 3, message: "Bad request" });
  },
});

// ------------- 18. a WebSocket asked for the polling transport: accepted, then closed at once
tests.push({
  name: "edge: eio a WebSocket asked for transport=polling is accepted then closed, no session",
  async run(t) {
    const fresh = rawWs(t, "/engine.io/", { query: "?EIO=4&transport=polling" });
    const closed = await withTimeout(fresh.closed, 3000, "the close of the fresh WebSocket");
    t.note(`no sid: close ${closed.code}, frames ${JSON.stringify(fresh.all)}`);
    assert.equal(closed.code, 1005);
    assert.deepStrictEqual(fresh.all, []);
    const sid = await pollingSid(t);
    const named = rawWs(t, "/engine.io/", { query: `?EIO=4&transport=polling&sid=${sid}` });
    const closedNamed = await withTimeout(named.closed, 3000, "the close of the WebSocket naming a sid");
    assert.equal(closedNamed.code, 1005);
    const q = `${t.url}/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    assert.equal((await request(q, { method: "POST", body: "4still" })).body, "ok");
    assert.equal((await request(q)).body, "4still");
  },
});

// ------------------------------------------------ the client bundle (serveClient)
// The official server serves its client bundle under its path; the Rust server does when it is
// given the same files (`--serve-client 1`: the socket.io package's client-dist/).
const CLIENT_DIST = require("node:path").join(__dirname, "..", "node_modules", "socket.io", "client-dist");
const SOCKET_IO_VERSION = require("socket.io/package.json").version;

tests.push({
  name: "edge: sio client bundle: files, ETag and 304, codings, CORS, methods; other names are engine.io's",
  async run(t) {
    const zlib = require("node:zlib");
    const fs = require("node:fs");
    const server = await t.dedicatedServer({ "serve-client": 1 });
    const base = `${server.url}/socket.io`;
    const etag = `"${SOCKET_IO_VERSION}"`;
    const file = (name) => fs.readFileSync(`${CLIENT_DIST}/${name}`);

    for (const name of ["socket.io.js", "socket.io.min.js", "socket.io.esm.min.js", "socket.io.msgpack.min.js.map"]) {
      const r = await request(`${base}/${name}`);
      assert.equal(r.status, 200, name);
      const type = name.endsWith(".map") ? "application/json" : "application/javascript";
      assert.equal(r.headers["content-type"], `${type}; charset=utf-8`, name);
      assert.equal(r.headers["cache-control"], "public, max-age=0", name);
      assert.equal(r.headers.etag, etag, name);
      assert.equal(r.headers["content-encoding"], undefined, name);
      assert.equal(r.headers["access-control-allow-origin"], "*", name);
      assert.ok(r.raw.equals(file(name)), `${name}: the file as it is`);
    }
    // a query string is not part of the name
    assert.equal((await request(`${base}/socket.io.js?v=${SOCKET_IO_VERSION}`)).status, 200);

    // If-None-Match: the ETag, strong or weak, gets an empty 304
    for (const tag of [etag, `W/${etag}`]) {
      const r = await request(`${base}/socket.io.js`, { headers: { "If-None-Match": tag } });
      assert.equal(r.status, 304, tag);
      assert.equal(r.body, "", tag);
      assert.equal(r.headers.etag, undefined, tag);
    }
    assert.equal((await request(`${base}/socket.io.js`, { headers: { "If-None-Match": '"0.0.1"' } })).status, 200);

    // Accept-Encoding, ranked as the official `accepts` ranks it among br, gzip and deflate
    const decode = { br: zlib.brotliDecompressSync, gzip: zlib.gunzipSync, deflate: zlib.inflateSync };
    for (const [accept, coding] of [
      ["gzip, deflate, br, zstd", "gzip"],
      ["deflate, gzip, br", "deflate"],
      ["br;q=1, gzip;q=0.5", "br"],
      ["*", "br"],
      ["identity", undefined],
    ]) {
      const r = await request(`${base}/socket.io.min.js`, { headers: { "Accept-Encoding": accept } });
      assert.equal(r.status, 200, accept);
      assert.equal(r.headers["content-encoding"], coding, accept);
      const body = coding ? decode[coding](r.raw) : r.raw;
      assert.ok(body.equals(file("socket.io.min.js")), `${accept}: decodes to the file`);
    }

    // any method gets the file; a preflight gets the CORS answer
    const post = await request(`${base}/socket.io.js`, { method: "POST", body: "x" });
    assert.equal(post.status, 200);
    assert.ok(post.raw.equals(file("socket.io.js")));
    const head = await request(`${base}/socket.io.js`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(head.headers.etag, etag);
    const preflight = await request(`${base}/socket.io.js`, {
      method: "OPTIONS",
      headers: { Origin: "http://example.com", "Access-Control-Request-Method": "GET" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], "*");
    assert.equal(preflight.body, "");

    // other names under the path are engine.io requests
    for (const name of ["socket.io.slim.js", "socket.io.js/x", "", "SOCKET.IO.JS"]) {
      const r = await request(`${base}/${name}`);
      t.note(`/socket.io/${name}: ${r.status} ${r.body}`);
      assert.equal(r.status, 400, name);
      assert.deepStrictEqual(JSON.parse(r.body), { code: 0, message: "Transport unknown" }, name);
    }
    // and without serveClient, the bundle's names too (the suite's main server)
    const off = await request(`${t.url}/socket.io/socket.io.js`);
    assert.equal(off.status, 400);
    assert.deepStrictEqual(JSON.parse(off.body), { code: 0, message: "Transport unknown" });
  },
});

// ------------------------------------------------ WebSocket compression (perMessageDeflate)
tests.push({
  name: "edge: perMessageDeflate: messages of 1024 bytes or more travel compressed both ways; offers checked as ws does",
  async run(t) {
    const server = await t.dedicatedServer({ "per-message-deflate": 1 });
    const wsUrl = `${server.url.replace(/^http/, "ws")}/engine.io/?EIO=4&transport=websocket`;

    // engine.io echo with ws's default offer ("permessage-deflate; client_max_window_bits")
    const ws = new WebSocket(wsUrl);
    t.defer(() => ws.terminate());
    const frames = [];
    const ev = new EventEmitter();
    ws.on("message", (data, isBinary) => {
      frames.push({ data, isBinary });
      ev.emit("frame");
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    assert.equal(ws.extensions, "permessage-deflate", "the offer is accepted");
    const next = async () => {
      while (frames.length === 0) await withTimeout(new Promise((r) => ev.once("frame", r)), 3000, "a frame");
      return frames.shift();
    };
    assert.equal((await next()).data.toString()[0], "0", "the open packet");
    const socket = ws._socket;
    const exchange = async (data) => {
      const [read, written] = [socket.bytesRead, socket.bytesWritten];
      ws.send(data);
      const echo = await next();
      return { echo, read: socket.bytesRead - read, written: socket.bytesWritten - written };
    };
    const long = "4" + "compress me ".repeat(500);
    const text = await exchange(long);
    assert.equal(text.echo.data.toString(), long);
    t.note(`6001-byte text: ${text.written} bytes sent, ${text.read} bytes received`);
    assert.ok(text.read < 200 && text.written < 200, "sent and received compressed");
    const small = "4" + "x".repeat(900);
    const plain = await exchange(small);
    assert.equal(plain.echo.data.toString(), small);
    // Below the threshold it depends on the context kept: the official server keeps one and then
    // compresses every message (ws applies the threshold only without context takeover); this
    // server keeps none and sends it plain. Both are valid.
    t.note(`901-byte text: ${plain.written} bytes sent, ${plain.read} bytes received`);
    const binary = Buffer.alloc(5000, 7);
    const bin = await exchange(binary);
    assert.ok(bin.echo.isBinary && Buffer.compare(bin.echo.data, binary) === 0, "binary echo");
    assert.ok(bin.read < 200, "binary compressed too");

    // socket.io-client (which offers compression on Node) gets the same answers
    const sio = await t.sioConnected("/", { transport: "websocket" }, server.url);
    const payload = { text: "é".repeat(3000), list: new Array(300).fill("item") };
    const reply = await sio.timeout(3000).emitWithAck("message-with-ack", payload);
    assert.deepStrictEqual(reply, payload);

    // a malformed offer is refused before the upgrade; no offer gets no extension
    const url = `${server.url}/engine.io/?EIO=4&transport=websocket`;
    for (const offer of [
      "permessage-deflate; unknown",
      "permessage-deflate; server_max_window_bits",
      "permessage-deflate; client_max_window_bits=16",
      "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
      "permessage-deflate; client_max_window_bits = 10",
      "permessage-deflate,",
    ]) {
      const answer = await upgradeAnswer(url, { "Sec-WebSocket-Extensions": offer });
      t.note(`${offer}: ${answer.status} ${JSON.stringify(answer.body)}`);
      assert.equal(answer.status, 400, offer);
      assert.equal(answer.body, "Invalid or unacceptable Sec-WebSocket-Extensions header", offer);
    }
    for (const offer of ["x-other", "permessage-deflate; client_max_window_bits=010, x"]) {
      const answer = await upgradeAnswer(url, { "Sec-WebSocket-Extensions": offer });
      assert.equal(answer.status, 101, offer);
      assert.equal(
        answer.headers["sec-websocket-extensions"] !== undefined,
        offer.startsWith("permessage-deflate"),
        offer,
      );
    }
    assert.equal((await upgradeAnswer(url, {})).headers["sec-websocket-extensions"], undefined);

    // without the option, offers are not even read
    const off = await upgradeAnswer(`${t.url}/engine.io/?EIO=4&transport=websocket`, {
      "Sec-WebSocket-Extensions": "permessage-deflate; unknown",
    });
    assert.equal(off.status, 101);
    assert.equal(off.headers["sec-websocket-extensions"], undefined);
  },
});

// ---------------------------------- the per-packet compress flag: socket.compress(false)
tests.push({
  name: "edge: socket.compress(false): a polling answer of such packets is not gzipped; over a compressed websocket they arrive whole",
  async run(t) {
    const zlib = require("zlib");
    const long = "compress me ".repeat(500);

    // polling: the answer is gzipped only when one of its packets has the flag on
    const open = await request(`${t.url}/socket.io/?EIO=4&transport=polling`);
    const q = `${t.url}/socket.io/?EIO=4&transport=polling&sid=${JSON.parse(open.body.slice(1)).sid}`;
    assert.equal((await request(q, { method: "POST", body: "40" })).body, "ok");
    const connected = (await request(q)).body;
    assert.ok(connected.startsWith('40{"sid":'), connected);
    if (!connected.includes("auth")) assert.equal((await request(q)).body, '42["auth",{}]');
    const gzip = { "accept-encoding": "gzip" };
    for (const [event, back, coding] of [
      ["uncompressed", "uncompressed-back", undefined],
      ["message", "message-back", "gzip"],
    ]) {
      const body = `42${JSON.stringify([event, long])}`;
      assert.equal((await request(q, { method: "POST", body })).body, "ok");
      const poll = await request(q, { headers: gzip });
      t.note(`polling ${event}: Content-Encoding ${poll.headers["content-encoding"]}, ${poll.raw.length} bytes`);
      assert.equal(poll.headers["content-encoding"], coding, event);
      const text = coding ? zlib.gunzipSync(poll.raw).toString("utf8") : poll.body;
      assert.equal(text, `42${JSON.stringify([back, long])}`);
    }

    // websocket with perMessageDeflate: both arrive whole. The official server's websocket
    // transport (engine.io 6.6) no longer reads the flag and compresses both; this one leaves
    // the first uncompressed, as the flag's documentation says (the byte counts are noted).
    const server = await t.dedicatedServer({ "per-message-deflate": 1 });
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`);
    t.defer(() => ws.terminate());
    const frames = new Queue(ws, "message");
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    assert.equal(ws.extensions, "permessage-deflate");
    const text = async () => (await frames.next(3000))[0].toString();
    assert.equal((await text())[0], "0", "the open packet");
    ws.send("40");
    assert.ok((await text()).startsWith('40{"sid":'));
    assert.equal(await text(), '42["auth",{}]');
    for (const [event, back] of [
      ["uncompressed", "uncompressed-back"],
      ["message", "message-back"],
    ]) {
      const read = ws._socket.bytesRead;
      ws.send(`42${JSON.stringify([event, long])}`);
      assert.equal(await text(), `42${JSON.stringify([back, long])}`);
      const received = ws._socket.bytesRead - read;
      t.note(`websocket ${event}: ${received} bytes received for a ${long.length + 26}-byte message`);
      if (event === "message") assert.ok(received < 500, `compressed: ${received} bytes`);
    }
  },
});

// ------------------------------------------ request heads over 16 KiB get 431 (Node's http limit)
tests.push({
  name: "edge: a request head of 16,408 bytes is read, one byte more gets 431 and the connection closed",
  async run(t) {
    const net = require("node:net");
    const { port } = new URL(t.url);
    const statusFor = (headLength) =>
      new Promise((resolve, reject) => {
        const start = "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\nX-Filler: ";
        const head = start + "a".repeat(headLength - start.length - 4) + "\r\n\r\n";
        assert.equal(head.length, headLength);
        const socket = net.connect(Number(port), "127.0.0.1", () => socket.write(head));
        let answer = "";
        socket.setTimeout(3000, () => socket.destroy(new Error("no answer within 3 s")));
        socket.on("data", (chunk) => {
          answer += chunk;
          if (answer.includes("\r\n\r\n")) {
            socket.destroy();
            resolve(answer.split("\r\n")[0]);
          }
        });
        socket.on("error", reject);
      });
    for (const [length, status] of [
      [16408, "HTTP/1.1 200 OK"],
      [16409, "HTTP/1.1 431 Request Header Fields Too Large"],
    ]) {
      const line = await statusFor(length);
      t.note(`${length}-byte head: ${line}`);
      assert.equal(line, status, `${length}-byte head`);
    }
  },
});

tests.push({
  name: "edge: an invalid packet reaches the socket's error listener, whose emit goes out before the close",
  async run(t) {
    const cases = [
      [['42/guarded,["echo"'], "invalid payload"],
      [['5x-/guarded,["echo"]'], "Illegal attachments"],
      [['511-/guarded,["echo"]'], "too many attachments"],
      [["9"], "unknown packet type 9"],
      [["x"], "unknown packet type NaN"],
      [['51-/guarded,["echo",{"_placeholder":true,"num":0}]', '42/guarded,["echo"]'], "got plaintext data when reconstructing a packet"],
      [[Buffer.from([1, 2, 3])], "got binary data when not reconstructing a packet"],
    ];
    for (const [sent, message] of cases) {
      const c = rawWs(t, "/socket.io/");
      assert.equal((await nextText(c, 3000))[0], "0");
      c.send("40/guarded,");
      assert.ok((await nextText(c)).startsWith('40/guarded,{"sid":'));
      for (const data of sent) c.send(typeof data === "string" ? `4${data}` : data);
      assert.equal(await nextText(c), `42/guarded,["refused","${message}"]`, `after ${sent[sent.length - 1]}`);
      await withTimeout(c.closed, 3000, "close");
    }
  },
});

module.exports = tests;

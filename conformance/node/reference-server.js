#!/usr/bin/env node
// Reference implementation of conformance/SERVER.md on the official packages.
//
//   node reference-server.js [--port N] [--ping-interval MS] [--ping-timeout MS]
//                            [--connect-timeout MS] [--max-payload BYTES]
//                            [--connection-state-recovery MS] [--serve-client 0|1]
//                            [--per-message-deflate 0|1]
//
// `/engine.io/` is a plain engine.io server that echoes every message;
// `/socket.io/` is socket.io with the handlers listed in SERVER.md.
"use strict";

const http = require("node:http");
const engine = require("engine.io");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = {
    port: 3000,
    pingInterval: 300,
    pingTimeout: 200,
    connectTimeout: 1000,
    maxPayload: 1e6,
    connectionStateRecovery: 0,
    serveClient: 0,
    perMessageDeflate: 0,
  };
  const names = {
    "--port": "port",
    "--ping-interval": "pingInterval",
    "--ping-timeout": "pingTimeout",
    "--connect-timeout": "connectTimeout",
    "--max-payload": "maxPayload",
    "--connection-state-recovery": "connectionStateRecovery",
    "--serve-client": "serveClient",
    "--per-message-deflate": "perMessageDeflate",
  };
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value;
    const eq = arg.indexOf("=");
    if (eq !== -1) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    } else {
      value = argv[++i];
    }
    const key = names[arg];
    if (!key) {
      console.error(`unknown option ${arg}`);
      process.exit(2);
    }
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) {
      console.error(`bad value for ${arg}: ${value}`);
      process.exit(2);
    }
    opts[key] = n;
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

const timings = {
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  perMessageDeflate: opts.perMessageDeflate === 1,
  cors: { origin: "*" },
  // two engine.io servers share one http server: neither may destroy the
  // other's upgrade requests
  destroyUpgrade: false,
};

// Requests for neither path get 404, as on the official standalone server (`new Server(port)`)
// and on the Rust server.
const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
// The two attachments leave each other's upgrade requests alone (destroyUpgrade: false); an
// upgrade for neither path is refused (the official standalone server ends it after 1 s).
httpServer.on("upgrade", (req, socket) => {
  if (!req.url.startsWith("/engine.io/") && !req.url.startsWith("/socket.io/")) {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  }
});

// ---------------------------------------------------------------- /engine.io/
const eio = new engine.Server({ ...timings });
eio.attach(httpServer, { path: "/engine.io/", destroyUpgrade: false });
eio.on("connection", (socket) => {
  socket.on("message", (data) => {
    socket.send(data);
  });
});

// ---------------------------------------------------------------- /socket.io/
const io = new Server(httpServer, {
  ...timings,
  path: "/socket.io/",
  connectTimeout: opts.connectTimeout,
  serveClient: opts.serveClient === 1,
  ...(opts.connectionStateRecovery > 0
    ? { connectionStateRecovery: { maxDisconnectionDuration: opts.connectionStateRecovery } }
    : {}),
});

function byJson(a, b) {
  const x = JSON.stringify(a);
  const y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

io.of("/").on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);

  socket.on("message", (...args) => {
    socket.emit("message-back", ...args);
  });

  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });

  joinLeaveHandlers(socket);

  socket.on("rooms", (ack) => {
    if (typeof ack === "function") ack([...socket.rooms]);
  });

  socket.on("broadcast", (...args) => {
    socket.broadcast.emit("broadcast", ...args);
  });

  socket.on("emit-all", (...args) => {
    io.emit("broadcast", ...args);
  });

  socket.on("to-room", (room, ...args) => {
    io.to(room).emit("room-message", ...args);
  });

  socket.on("to-room-except", (room, except, ...args) => {
    io.to(room).except(except).emit("room-message", ...args);
  });

  socket.on("socket-to-room", (room, ...args) => {
    socket.to(room).emit("room-message", ...args);
  });

  socket.on("volatile", (...args) => {
    socket.volatile.emit("volatile-back", ...args);
  });

  socket.on("uncompressed", (...args) => {
    socket.compress(false).emit("uncompressed-back", ...args);
  });

  socket.on("fanout", (room, count) => {
    for (let i = 0; i < count; i++) io.to(room).emit("fanout", i);
  });

  socket.on("server-disconnect", (close) => {
    socket.disconnect(close === true);
  });

  socket.on("ask", (timeoutMs, ...rest) => {
    const ack = rest.pop();
    if (typeof ack !== "function") return;
    socket.timeout(timeoutMs).emit("question", ...rest, (err, ...reply) => {
      ack(err ? { error: err.message } : { reply });
    });
  });

  socket.on("ask-all", (timeoutMs, ack) => {
    if (typeof ack !== "function") return;
    io.timeout(timeoutMs).emit("question-all", (err, replies) => {
      ack({ error: err ? err.message : null, replies: [...replies].sort(byJson) });
    });
  });

  socket.on("recovered", (ack) => {
    if (typeof ack === "function") ack(socket.recovered);
  });

  socket.on("handshake", (ack) => {
    if (typeof ack !== "function") return;
    const h = socket.handshake;
    ack({
      auth: h.auth,
      query: h.query,
      headers: {
        "user-agent": h.headers["user-agent"],
        "x-custom": h.headers["x-custom"],
      },
      url: h.url,
      secure: h.secure,
      xdomain: h.xdomain,
    });
  });

  let roomsAtDisconnecting = [];
  socket.on("disconnecting", () => {
    roomsAtDisconnecting = [...socket.rooms].filter((r) => r !== socket.id);
  });
  socket.on("disconnect", (reason) => {
    io.to("observers").emit("peer-disconnect", {
      id: socket.id,
      reason,
      rooms: roomsAtDisconnecting,
    });
  });
});

/** `join` (room, ack) and `leave` (room, ack), on `/` and `/guarded`. */
function joinLeaveHandlers(socket) {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack();
  });
  socket.on("leave", (room, ack) => {
    socket.leave(room);
    if (typeof ack === "function") ack();
  });
}

io.of("/custom").on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
});

const authNsp = io.of("/auth");
authNsp.use((socket, next) => {
  const auth = socket.handshake.auth;
  if (auth && auth.token === "secret") return next();
  const err = new Error("not authorized");
  err.data = { reason: "bad token" };
  next(err);
});
authNsp.on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
});

// Room events of /guarded's adapter, as [type, room, sid?].
const guardedRoomEvents = [];
const guardedAdapter = io.of("/guarded").adapter;
guardedAdapter.on("create-room", (room) => guardedRoomEvents.push(["create-room", room]));
guardedAdapter.on("join-room", (room, sid) => guardedRoomEvents.push(["join-room", room, sid]));
guardedAdapter.on("leave-room", (room, sid) => guardedRoomEvents.push(["leave-room", room, sid]));
guardedAdapter.on("delete-room", (room) => guardedRoomEvents.push(["delete-room", room]));

io.of("/guarded").on("connection", (socket) => {
  socket.onAny((event) => socket.emit("seen", event));
  socket.use(([event], next) => (event === "forbidden" ? next(new Error("forbidden event")) : next()));
  socket.use((event, next) => {
    if (event[0] === "alias") event[0] = "echo";
    next();
  });
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
    else socket.emit("echo-back", ...args);
  });
  socket.on("alias", () => socket.emit("alias-handler-ran"));
  // Only the server's own errors: a client's "error" event reaches this listener too on the
  // official server, the Rust server's on_error never sees those.
  socket.on("error", (err) => {
    if (err instanceof Error) socket.emit("refused", err.message);
  });
  const outgoing = [];
  socket.onAnyOutgoing((event, ...args) => outgoing.push([event, ...args]));
  socket.on("shout", () => io.of("/guarded").emit("shouted"));
  socket.on("outgoing-log", (ack) => {
    if (typeof ack === "function") ack(outgoing);
  });
  joinLeaveHandlers(socket);
  socket.on("room-events", (prefix, ack) => {
    if (typeof prefix !== "string" || typeof ack !== "function") return;
    const mine = (v) => (v === socket.id ? "self" : v);
    ack(
      guardedRoomEvents
        .filter(([, room]) => room === socket.id || String(room).startsWith(prefix))
        .map(([type, room, ...sid]) => [type, mine(room), ...sid.map((id) => (id === socket.id ? "self" : "other"))]),
    );
  });
});

io.of(/^\/dynamic-[a-z0-9]+$/).on("connection", (socket) => {
  socket.emit("nsp", socket.nsp.name);
});

httpServer.listen(opts.port, "127.0.0.1", () => {
  process.stdout.write(`listening on ${httpServer.address().port}\n`);
});

function shutdown() {
  io.close();
  eio.close();
  httpServer.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

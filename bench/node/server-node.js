"use strict";
// socket.io 4.8 on Node's http module with the ws WebSocket server (its default).
const http = require("node:http");
const { Server } = require("socket.io");
const { options, port, setup } = require("./handlers");

const httpServer = http.createServer();
const io = new Server(httpServer, { ...options });
setup(io);
const p = port();
httpServer.listen(p, "127.0.0.1", () => {
  console.error(`server-node (socket.io on http+ws, node ${process.version}) listening on 127.0.0.1:${p}`);
});

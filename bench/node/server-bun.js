// socket.io 4.8 on Bun with @socket.io/bun-engine (wiring from that package's README:
// io.bind(engine), then Bun.serve with engine.handler()).
import { Server as Engine } from "@socket.io/bun-engine";
import { Server } from "socket.io";
import handlers from "./handlers.js";

const { options, port, setup } = handlers;
if (typeof Bun === "undefined") {
  console.error("server-bun.js must run under Bun (node_modules/.bin/bun server-bun.js)");
  process.exit(2);
}
const io = new Server({ ...options });
const engine = new Engine({
  path: "/socket.io/",
  pingInterval: options.pingInterval,
  pingTimeout: options.pingTimeout,
  maxHttpBufferSize: options.maxHttpBufferSize,
});
io.bind(engine);
setup(io);
const p = port();
const handler = engine.handler();
Bun.serve({
  ...handler,
  hostname: "127.0.0.1",
  port: p,
  // Bun's WebSocket permessage-deflate is off unless asked for; say so explicitly.
  websocket: { ...handler.websocket, perMessageDeflate: false },
});
console.error(`server-bun (socket.io on Bun ${Bun.version} + @socket.io/bun-engine) listening on 127.0.0.1:${p}`);

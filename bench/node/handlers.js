"use strict";
// The handlers every bench server implements on "/": on connect join room "all"; "echo" → ack with
// the same arguments; "broadcast" → emit "broadcast" with the same arguments to room "all".

/** Settings shared by the three socket.io servers (the same as the Rust servers). */
exports.options = {
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  cors: undefined,
};

exports.port = function port() {
  return Number(process.argv[2] || process.env.PORT || 3000);
};

exports.setup = function setup(io) {
  io.on("connection", (socket) => {
    socket.join("all");
    socket.on("echo", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
    socket.on("broadcast", (...args) => {
      io.to("all").emit("broadcast", ...args);
    });
  });
};

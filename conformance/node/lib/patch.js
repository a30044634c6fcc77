"use strict";
// Ways to make an engine.io-client socket misbehave on purpose.

/** The engine stops sending PONG packets (it still receives and handles PINGs). */
function dropPongs(engine) {
  const original = engine._sendPacket;
  if (typeof original !== "function") throw new Error("engine.io-client has no _sendPacket: patch outdated");
  engine._sendPacket = function (type, ...rest) {
    if (type === "pong") return;
    return original.call(this, type, ...rest);
  };
  return () => {
    engine._sendPacket = original;
  };
}

/**
 * The engine keeps answering PINGs but its own heartbeat timer is never reset
 * after the handshake, so it declares "ping timeout" pingInterval + pingTimeout
 * after the handshake even though the server is alive.
 */
function freezeClientHeartbeat(engine) {
  const original = engine._resetPingTimeout;
  if (typeof original !== "function") throw new Error("engine.io-client has no _resetPingTimeout: patch outdated");
  let calls = 0;
  engine._resetPingTimeout = function (...args) {
    calls++;
    // the first call is the one made by onHandshake
    if (calls === 1 && !this._pingTimeoutTimer) return original.apply(this, args);
  };
}

module.exports = { dropPongs, freezeClientHeartbeat };

"use strict";
// Test definition helpers.

const ALL = ["polling", "websocket", "upgrade"];
const PURE = ["polling", "websocket"];

/**
 * One test per transport setting: name "<base> [<transport>]".
 * fn(transport) returns { run, timeout? }.
 */
function variants(base, transports, fn) {
  return transports.map((transport) => ({ name: `${base} [${transport}]`, ...fn(transport) }));
}

// timings of the shared servers (SERVER.md defaults)
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const CONNECT_TIMEOUT = 1000;
const MAX_PAYLOAD = 1e6;

module.exports = { variants, ALL, PURE, PING_INTERVAL, PING_TIMEOUT, CONNECT_TIMEOUT, MAX_PAYLOAD };

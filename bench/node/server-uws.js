"use strict";
// socket.io 4.8 attached to uWebSockets.js with io.attachApp(app).
//
// "uWebSockets.js" maps to @trufflesuite/uws-js-unofficial, whose entry point silently falls back
// to a pure-JS emulation (built on ws) when the native addon fails to load, or when
// UWS_USE_FALLBACK is set. We refuse to start unless the native addon is really in use:
//   1. UWS_USE_FALLBACK must be unset;
//   2. the object `require("uWebSockets.js")` returned must be the exports of a `.node` file
//      present in require.cache (native addons are cached under their file name), and the
//      fallback's dist/index.js must not have been loaded;
//   3. that `.node` shared object must be mapped into this process (/proc/self/maps), i.e. the
//      dynamic loader really opened it.
const fs = require("node:fs");
const path = require("node:path");

if (process.env.UWS_USE_FALLBACK !== undefined) {
  console.error("server-uws: UWS_USE_FALLBACK is set; refusing to run the JS emulation");
  process.exit(2);
}
const uWS = require("uWebSockets.js");

function nativeAddonPath() {
  for (const [file, mod] of Object.entries(require.cache)) {
    if (mod && mod.exports === uWS && file.endsWith(".node")) return file;
  }
  return null;
}
const addon = nativeAddonPath();
const fallbackLoaded = Object.keys(require.cache).some((f) =>
  f.includes(`${path.sep}uWebSockets.js${path.sep}dist${path.sep}`) ||
  f.includes(`${path.sep}uws-js-unofficial${path.sep}dist${path.sep}`));
let mapped = false;
if (addon) {
  const real = fs.realpathSync(addon);
  mapped = fs.readFileSync("/proc/self/maps", "utf8").includes(real);
}
if (!addon || fallbackLoaded || !mapped) {
  console.error(
    `server-uws: the native uWebSockets.js addon is NOT loaded (addon=${addon}, ` +
    `fallbackLoaded=${fallbackLoaded}, mapped=${mapped}); refusing to run the JS emulation`);
  process.exit(2);
}

const { Server } = require("socket.io");
const { options, port, setup } = require("./handlers");

const app = uWS.App();
const io = new Server({ ...options });
io.attachApp(app, { compression: uWS.DISABLED });
setup(io);
const p = port();
app.listen("127.0.0.1", p, (token) => {
  if (!token) {
    console.error(`server-uws: cannot listen on 127.0.0.1:${p}`);
    process.exit(1);
  }
  console.error(`server-uws (socket.io on native uWebSockets.js ${path.basename(addon)}, node ${process.version}) listening on 127.0.0.1:${p}`);
});

#!/usr/bin/env node
'use strict';
// End-to-end tests of the sessions-app server (issue 5's contract) with the official socket.io-client
// and headless Chromium. `node run.js [--grep text]`.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  BIN, sleep, assert, eq, portOpen, freePort, spawnApp, startServer, runApp, killAll, tmpDir,
  now, jwt, decodeJwt, Client, closeAllClients, expectRefused, httpRequest, httpGet, parseMetrics,
} = require('./lib');

const SECRET = `e2e-secret-${crypto.randomBytes(8).toString('hex')}`;
const ISS = 'https://issuer.e2e.example';
const AUD = 'sessions-e2e';
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// ---------------------------------------------------------------------------------------------
// Keys and the servers the tests share (started on first use)

const dir = tmpDir();
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaOther = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecOther = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
const rsaPkcs1Pem = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' });
const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' });
const rsaPath = path.join(dir, 'rsa.pem');
const rsaPkcs1Path = path.join(dir, 'rsa-pkcs1.pem');
const ecPath = path.join(dir, 'ec.pem');
fs.writeFileSync(rsaPath, rsaPem);
fs.writeFileSync(rsaPkcs1Path, rsaPkcs1Pem);
fs.writeFileSync(ecPath, ecPem);

const serverDefs = {
  secret: () => startServer(['--jwt-secret', SECRET, '--ping-interval-ms', '1000', '--ping-timeout-ms', '1000']),
  rsa: () => startServer(['--jwt-public-key', rsaPath]),
  rsaPkcs1: () => startServer([], { JWT_PUBLIC_KEY_FILE: rsaPkcs1Path }),
  ec: () => startServer(['--jwt-public-key', ecPath]),
  issAud: () => startServer(['--jwt-secret', SECRET, '--jwt-issuer', ISS, '--jwt-audience', AUD]),
  limit: () => startServer(['--jwt-secret', SECRET, '--max-sessions-per-user', '2']),
  proxy: () => startServer(['--jwt-secret', SECRET, '--trust-proxy']),
  proxyEnv: () => startServer([], { JWT_SECRET: SECRET, TRUST_PROXY: 'true' }),
  cors: () => startServer(['--jwt-secret', SECRET, '--cors-origin', 'http://good.example']),
  // Secret from the environment, every other setting at its default.
  defaults: () => startServer([], { JWT_SECRET: SECRET }),
};
const servers = {};
const server = (name) => (servers[name] = servers[name] || serverDefs[name]());

let userSeq = 0;
const user = (prefix = 'u') => `${prefix}-${++userSeq}-${crypto.randomBytes(3).toString('hex')}`;
/** A valid HS256 token of the secret servers. */
const tok = (sub, extra = {}, opts = {}) => jwt({ sub, iat: now(), exp: now() + 3600, ...extra }, { key: SECRET, ...opts });

function checkEntry(entry, expected) {
  eq(Object.keys(entry), ['socketId', 'connectedAt', 'metadata'], 'session entry keys');
  eq(Object.keys(entry.metadata), ['ip', 'userAgent', 'context'], 'metadata keys');
  assert(TS.test(entry.connectedAt), `connectedAt ${entry.connectedAt} is like Date.toJSON`);
  const at = Date.parse(entry.connectedAt);
  assert(Math.abs(at - Date.now()) < 60000, `connectedAt ${entry.connectedAt} is about now`);
  eq(new Date(at).toJSON(), entry.connectedAt, 'connectedAt round-trips through Date.toJSON');
  for (const [k, v] of Object.entries(expected)) {
    if (k === 'socketId') eq(entry.socketId, v, 'socketId');
    else eq(entry.metadata[k], v, `metadata.${k}`);
  }
}
const ids = (list) => list.map((s) => s.socketId);

// ---------------------------------------------------------------------------------------------
// Tests

const tests = [];
const test = (name, fn, timeout = 30000) => tests.push({ name, fn, timeout });

test('connect: sessions:ready first, then sessions:update to every socket of the user, oldest first', async () => {
  const srv = await server('secret');
  const u = user();
  const a = new Client(srv.url, { auth: { token: tok(u), context: 'laptop' } });
  const ra = await a.ready();
  eq(Object.keys(ra).sort(), ['sessions', 'socketId'], 'sessions:ready keys');
  eq(ra.socketId, a.id, 'ready.socketId is the Socket.IO socket id');
  assert(ra.socketId !== a.socket.io.engine.id, 'socketId is not the Engine.IO session id');
  eq(ids(ra.sessions), [a.id], 'ready lists the new socket');
  checkEntry(ra.sessions[0], { socketId: a.id, ip: '127.0.0.1', context: 'laptop' });
  await a.updateWith([a.id]);
  const first = a.events().slice(0, 2).map((e) => e.name);
  eq(first, ['sessions:ready', 'sessions:update'], 'first two events');

  await sleep(15);
  const b = new Client(srv.url, { auth: { token: tok(u), context: 'phone' } });
  const rb = await b.ready();
  eq(ids(rb.sessions), [a.id, b.id], "second socket's ready lists both, oldest first");
  const ua = await a.updateWith([a.id, b.id]);
  const ub = await b.updateWith([a.id, b.id]);
  eq(b.events().slice(0, 2).map((e) => e.name), ['sessions:ready', 'sessions:update'], 'second socket: ready then update');
  for (const list of [rb.sessions, ua, ub]) {
    assert(Date.parse(list[0].connectedAt) <= Date.parse(list[1].connectedAt), 'connectedAt order');
    eq(list[0].connectedAt, ra.sessions[0].connectedAt, 'connectedAt of a session never changes');
    checkEntry(list[0], { socketId: a.id, context: 'laptop', ip: '127.0.0.1' });
    checkEntry(list[1], { socketId: b.id, context: 'phone', ip: '127.0.0.1' });
  }
  eq(await a.ack('sessions:list'), ua, 'sessions:list of the first equals the update');
  eq(await b.ack('sessions:list'), ua, 'sessions:list of the second equals the update');
  // A third, to see the order hold with more than two.
  await sleep(15);
  const c = new Client(srv.url, { auth: { token: tok(u) } });
  await c.ready();
  for (const x of [a, b, c]) await x.updateWith([a.id, b.id, c.id]);
});

test('metadata: userAgent from the header or null, context from auth.context or the context query', async () => {
  const srv = await server('secret');
  const u = user();
  const withUa = new Client(srv.url, {
    transports: ['polling'], extraHeaders: { 'User-Agent': 'e2e-agent/1.0 (test)' }, auth: { token: tok(u) },
  });
  const r1 = await withUa.ready();
  checkEntry(r1.sessions[0], { socketId: withUa.id, userAgent: 'e2e-agent/1.0 (test)', ip: '127.0.0.1', context: null });
  withUa.close();

  // Node's WebSocket client sends no User-Agent: null.
  const noUa = new Client(srv.url, { transports: ['websocket'], auth: { token: tok(u) } });
  const r2 = await noUa.ready();
  checkEntry(r2.sessions.find((s) => s.socketId === noUa.id), { userAgent: null, context: null });
  noUa.close();

  const cases = [
    [{ auth: { token: tok(u), context: 'desk' } }, 'desk'],
    [{ auth: { token: tok(u) }, query: { context: 'from-query' } }, 'from-query'],
    [{ auth: { token: tok(u), context: 'auth-wins' }, query: { context: 'query-loses' } }, 'auth-wins'],
    [{ auth: { token: tok(u), context: { device: 'tv', n: 2 } } }, { device: 'tv', n: 2 }],
    [{ auth: { token: tok(u) } }, null],
  ];
  for (const [opts, context] of cases) {
    const c = new Client(srv.url, opts);
    const r = await c.ready();
    checkEntry(r.sessions.find((s) => s.socketId === c.id), { context });
    c.close();
  }
});

test('isolation: two users never see each other, and cannot revoke each other', async () => {
  const srv = await server('secret');
  const alice = user('alice');
  const bob = user('bob');
  const a1 = new Client(srv.url, { auth: { token: tok(alice) } });
  await a1.ready();
  const b1 = new Client(srv.url, { auth: { token: tok(bob) } });
  await b1.ready();
  const a2 = new Client(srv.url, { auth: { token: tok(alice) } });
  await a2.ready();
  const b2 = new Client(srv.url, { auth: { token: tok(bob) } });
  await b2.ready();
  await a1.updateWith([a1.id, a2.id]);
  await b1.updateWith([b1.id, b2.id]);
  await a2.updateWith([a1.id, a2.id]);
  await b2.updateWith([b1.id, b2.id]);
  const mineA = [a1.id, a2.id];
  const mineB = [b1.id, b2.id];

  const bobUpdates = b1.events('sessions:update').length;
  eq(await a1.ack('sessions:revoke', { socketId: b1.id }), { ok: false, error: 'not_found' }, "revoking another user's socket");
  eq(await a1.ack('sessions:revoke', { socketId: b2.id }), { ok: false, error: 'not_found' }, "revoking another user's socket");
  eq(ids(await a1.ack('sessions:list')), [a1.id, a2.id], "alice's list");
  eq(ids(await b1.ack('sessions:list')), [b1.id, b2.id], "bob's list");
  await sleep(300);
  assert(b1.socket.connected && b2.socket.connected, "bob's sockets untouched");
  eq(b1.events('sessions:error').length + b2.events('sessions:error').length, 0, 'bob received no sessions:error');
  eq(b1.events('sessions:update').length, bobUpdates, 'bob received no update');
  // Alice signs out everything else of hers: only her own.
  eq(await a1.ack('sessions:revoke-others'), { ok: true, revoked: 1 }, 'revoke-others counts only her own');
  await a1.updateWith([a1.id]);
  await expectRefusedAfterReady(a2, 'revoked');
  assert(b1.socket.connected && b2.socket.connected, "bob's sockets untouched by alice's revoke-others");
  a1.close();
  b2.close();
  await b1.updateWith([b1.id]);
  for (const [c, mine, who] of [[a1, mineA, 'a1'], [a2, mineA, 'a2'], [b1, mineB, 'b1'], [b2, mineB, 'b2']]) {
    for (const id of c.seenIds()) assert(mine.includes(id), `${who} saw a foreign session ${id} (own ${mine}); log ${JSON.stringify(c.log)}`);
  }
});

test('token sources: auth.token, Authorization bearer header, token query, and their order', async () => {
  const srv = await server('secret');
  const u = user();
  const base = new Client(srv.url, { auth: { token: tok(u) } });
  await base.ready();
  const polling = (extraHeaders, extra = {}) => new Client(srv.url, { transports: ['polling'], extraHeaders, ...extra });
  const accepted = async (c, what) => {
    const r = await c.ready().catch((e) => { throw new Error(`${what}: ${e.message}`); });
    assert(ids(r.sessions).includes(base.id) && ids(r.sessions).includes(c.id), `${what}: joined the same user's list`);
    c.close();
  };
  await accepted(polling({ Authorization: `Bearer ${tok(u)}` }), 'Authorization: Bearer header');
  await accepted(polling({ authorization: `bearer ${tok(u)}` }), 'lowercase bearer scheme');
  await accepted(new Client(srv.url, { query: { token: tok(u) } }), 'token query parameter');
  await accepted(polling({ Authorization: 'Bearer garbage.garbage.garbage' }, { auth: { token: tok(u) } }), 'auth.token wins over a bad header');
  await accepted(polling({ Authorization: `Bearer ${tok(u)}` }, { auth: { token: '' } }), 'empty auth.token falls through to the header');
  await accepted(polling({ Authorization: `Bearer ${tok(u)}` }, { query: { token: 'garbage' } }), 'header wins over a bad query token');
  await accepted(new Client(srv.url, { auth: { token: '' }, query: { token: tok(u) } }), 'empty auth.token and no header: query');
  await accepted(polling({ Authorization: 'Bearer ' }, { query: { token: tok(u) } }), 'empty bearer falls through to the query');
  await accepted(polling({ Authorization: `Bearer ${tok(u)}` }, { auth: { token: tok(u, { exp: now() + 7200 }) } }), 'both good');
  // The first present source is the one used: a bad auth.token is not rescued by a good header or query.
  await expectRefused(polling({ Authorization: `Bearer ${tok(u)}` }, { auth: { token: 'garbage' }, query: { token: tok(u) } }), 'invalid_token', 300);
  await expectRefused(polling({ Authorization: 'Bearer garbage' }, { query: { token: tok(u) } }), 'invalid_token', 300);
  eq(ids(await base.ack('sessions:list')), [base.id], 'only the base socket remains');
});

test('refused: missing_token (no token anywhere, empty ones, non-bearer header)', async () => {
  const srv = await server('secret');
  await Promise.all([
    expectRefused(new Client(srv.url, {}), 'missing_token'),
    expectRefused(new Client(srv.url, { auth: { token: '' }, query: { token: '' } }), 'missing_token'),
    expectRefused(new Client(srv.url, { transports: ['polling'], extraHeaders: { Authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } }), 'missing_token'),
  ]);
});

test('refused: invalid_token for every kind of bad token, never listed', async () => {
  const srv = await server('secret');
  const u = user();
  const watcher = new Client(srv.url, { auth: { token: tok(u) } });
  await watcher.ready();
  const claims = { sub: u, exp: now() + 3600 };
  const bad = {
    garbage: 'not-a-jwt',
    'three garbage segments': 'aaa.bbb.ccc',
    'bad signature': jwt(claims, { key: 'another-secret' }),
    'tampered payload': (() => { const [h, , s] = tok(u).split('.'); return `${h}.${jwt({ sub: u, admin: true }, { key: 'x' }).split('.')[1]}.${s}`; })(),
    'nbf in the future': tok(u, { nbf: now() + 600 }),
    'alg none': jwt(claims, { alg: 'none' }),
    'alg None': jwt(claims, { alg: 'None' }),
    'alg none with the HS signature kept': `${jwt(claims, { alg: 'none' }).slice(0, -1)}${tok(u).split('.')[2]}`,
    'missing sub': jwt({ exp: now() + 3600 }, { key: SECRET }),
    'empty sub': tok(''),
    'numeric sub': jwt({ sub: 42, exp: now() + 3600 }, { key: SECRET }),
    'null sub': jwt({ sub: null, exp: now() + 3600 }, { key: SECRET }),
    'object sub': jwt({ sub: { id: u }, exp: now() + 3600 }, { key: SECRET }),
    'payload not JSON': jwt('{"sub":', { key: SECRET }),
    'RS256 header on a secret server': jwt(claims, { alg: 'RS256', key: rsa.privateKey }),
  };
  const clients = Object.entries(bad).map(([name, token]) => [name, new Client(srv.url, { auth: { token } })]);
  const results = await Promise.allSettled(clients.map(([, c]) => expectRefused(c, 'invalid_token')));
  const failures = results.map((r, i) => (r.status === 'rejected' ? `${clients[i][0]}: ${r.reason.message}` : null)).filter(Boolean);
  assert(failures.length === 0, failures.join('\n'));
  eq(ids(await watcher.ack('sessions:list')), [watcher.id], 'no refused socket in the list');
  eq(watcher.events('sessions:update').length, 1, 'the watcher got no update from refused sockets');
  const refusedIds = clients.map(([, c]) => c.log.find((e) => e.kind === 'connect')).filter(Boolean).map((e) => e.id);
  for (const id of refusedIds) assert(!watcher.seenIds().has(id), `refused ${id} was listed`);
});

test('refused: invalid_token for a wrong issuer or audience; right ones accepted', async () => {
  const srv = await server('issAud');
  const u = user();
  const sign = (extra) => jwt({ sub: u, exp: now() + 3600, ...extra }, { key: SECRET });
  const good = new Client(srv.url, { auth: { token: sign({ iss: ISS, aud: AUD }) } });
  await good.ready();
  const good2 = new Client(srv.url, { auth: { token: sign({ iss: ISS, aud: AUD }) } });
  await good2.ready();
  const bad = {
    'wrong iss': sign({ iss: 'https://evil.example', aud: AUD }),
    'wrong aud': sign({ iss: ISS, aud: 'other-app' }),
    'wrong iss and aud': sign({ iss: 'x', aud: 'y' }),
    'aud list without ours': sign({ iss: ISS, aud: ['other-app', 'third'] }),
    'iss with different case': sign({ iss: ISS.toUpperCase(), aud: AUD }),
  };
  const clients = Object.entries(bad).map(([name, token]) => [name, new Client(srv.url, { auth: { token } })]);
  const results = await Promise.allSettled(clients.map(([, c]) => expectRefused(c, 'invalid_token')));
  const failures = results.map((r, i) => (r.status === 'rejected' ? `${clients[i][0]}: ${r.reason.message}` : null)).filter(Boolean);
  assert(failures.length === 0, failures.join('\n'));
  eq(ids(await good.ack('sessions:list')), [good.id, good2.id], 'only the good ones are listed');
});

test('refused: invalid_token for a token without iss/aud when --jwt-issuer/--jwt-audience are set', async () => {
  // "when set, iss / aud must match": a token that carries none does not match.
  const srv = await server('issAud');
  const u = user();
  const sign = (extra) => jwt({ sub: u, exp: now() + 3600, ...extra }, { key: SECRET });
  const good = new Client(srv.url, { auth: { token: sign({ iss: ISS, aud: AUD }) } });
  await good.ready();
  const bad = {
    'missing iss': sign({ aud: AUD }),
    'missing aud': sign({ iss: ISS }),
    'neither iss nor aud': sign({}),
  };
  const clients = Object.entries(bad).map(([name, token]) => [name, new Client(srv.url, { auth: { token } })]);
  const results = await Promise.allSettled(clients.map(([, c]) => expectRefused(c, 'invalid_token')));
  const failures = results.map((r, i) => (r.status === 'rejected' ? `${clients[i][0]}: ${r.reason.message}` : null)).filter(Boolean);
  assert(failures.length === 0, failures.join('\n'));
  eq(ids(await good.ack('sessions:list')), [good.id], 'only the good one is listed');
});

test('refused: token_expired for an exp in the past', async () => {
  const srv = await server('secret');
  const u = user();
  const watcher = new Client(srv.url, { auth: { token: tok(u) } });
  await watcher.ready();
  await Promise.all([
    expectRefused(new Client(srv.url, { auth: { token: tok(u, { exp: now() - 30 }) } }), 'token_expired'),
    expectRefused(new Client(srv.url, { auth: { token: tok(u, { exp: now() - 86400 * 365 }) } }), 'token_expired'),
    expectRefused(new Client(srv.url, { query: { token: tok(u, { exp: now() - 30 }) } }), 'token_expired'),
  ]);
  eq(ids(await watcher.ack('sessions:list')), [watcher.id], 'expired ones are never listed');
  eq(watcher.events('sessions:update').length, 1, 'no update for refused sockets');
});

test('refused: session_limit (max 2: the third is refused, never listed; a freed slot is usable)', async () => {
  const srv = await server('limit');
  const u = user();
  const a = new Client(srv.url, { auth: { token: tok(u) } });
  await a.ready();
  const b = new Client(srv.url, { auth: { token: tok(u) } });
  await b.ready();
  await a.updateWith([a.id, b.id]);
  const c = new Client(srv.url, { auth: { token: tok(u) } });
  await expectRefused(c, 'session_limit');
  const cId = c.log.find((e) => e.kind === 'connect')?.id;
  for (const x of [a, b]) {
    if (cId) assert(!x.seenIds().has(cId), 'the refused socket never appears in a list');
    eq(ids(await x.ack('sessions:list')), [a.id, b.id], 'list after the refusal');
  }
  // Another user is not limited by this one.
  const other = new Client(srv.url, { auth: { token: tok(user()) } });
  await other.ready();
  // Free a slot: the next connection is accepted.
  b.close();
  await a.updateWith([a.id]);
  const d = new Client(srv.url, { auth: { token: tok(u) } });
  const rd = await d.ready();
  eq(ids(rd.sessions), [a.id, d.id], 'a freed slot can be used');
  await expectRefused(new Client(srv.url, { auth: { token: tok(u) } }), 'session_limit', 200);
});

test('jwt attacks: algorithm confusion (HS256 keyed with the RSA/EC public key PEM) is invalid_token', async () => {
  const [rsaSrv, ecSrv] = await Promise.all([server('rsa'), server('ec')]);
  const u = user();
  const claims = { sub: u, exp: now() + 3600 };
  const cases = [
    [rsaSrv, 'HS256 with the RSA PEM', jwt(claims, { alg: 'HS256', key: rsaPem })],
    [rsaSrv, 'HS256 with the RSA PEM, no final newline', jwt(claims, { alg: 'HS256', key: rsaPem.trim() })],
    [rsaSrv, 'HS512 with the RSA PEM', jwt(claims, { alg: 'HS512', key: rsaPem })],
    [rsaSrv, 'HS256 with the RSA DER', jwt(claims, { alg: 'HS256', key: rsa.publicKey.export({ type: 'spki', format: 'der' }) })],
    [ecSrv, 'HS256 with the EC PEM', jwt(claims, { alg: 'HS256', key: ecPem })],
    [ecSrv, 'HS256 with the EC PEM, no final newline', jwt(claims, { alg: 'HS256', key: ecPem.trim() })],
    [rsaSrv, 'alg none on the RSA server', jwt(claims, { alg: 'none' })],
    [ecSrv, 'alg none on the EC server', jwt(claims, { alg: 'none' })],
    [rsaSrv, 'RS256 signed by another key', jwt(claims, { alg: 'RS256', key: rsaOther.privateKey })],
    [ecSrv, 'ES256 signed by another key', jwt(claims, { alg: 'ES256', key: ecOther.privateKey })],
    [rsaSrv, 'ES256 on the RSA server', jwt(claims, { alg: 'ES256', key: ec.privateKey })],
    [ecSrv, 'RS256 on the EC server', jwt(claims, { alg: 'RS256', key: rsa.privateKey })],
    [ecSrv, 'ES256 DER signature instead of JOSE', (() => {
      const t = jwt(claims, { alg: 'ES256', key: ec.privateKey });
      const input = t.split('.').slice(0, 2).join('.');
      return `${input}.${crypto.sign('sha256', Buffer.from(input), ec.privateKey).toString('base64url')}`;
    })()],
  ];
  const clients = cases.map(([srv, name, token]) => [name, new Client(srv.url, { auth: { token } })]);
  const results = await Promise.allSettled(clients.map(([, c]) => expectRefused(c, 'invalid_token')));
  const failures = results.map((r, i) => (r.status === 'rejected' ? `${clients[i][0]}: ${r.reason.message}` : null)).filter(Boolean);
  assert(failures.length === 0, failures.join('\n'));
});

test('jwt: valid RS256/RS512/PS256 (SPKI and PKCS#1 key files) and ES256 tokens are accepted', async () => {
  const [rsaSrv, pkcs1Srv, ecSrv] = await Promise.all([server('rsa'), server('rsaPkcs1'), server('ec')]);
  const u = user();
  const claims = () => ({ sub: u, exp: now() + 3600 });
  const rs = new Client(rsaSrv.url, { auth: { token: jwt(claims(), { alg: 'RS256', key: rsa.privateKey }) } });
  const r1 = await rs.ready();
  const rs512 = new Client(rsaSrv.url, { auth: { token: jwt(claims(), { alg: 'RS512', key: rsa.privateKey }) } });
  await rs512.ready();
  const ps = new Client(rsaSrv.url, { auth: { token: jwt(claims(), { alg: 'PS256', key: rsa.privateKey }) } });
  const r3 = await ps.ready();
  eq(ids(r3.sessions), [rs.id, rs512.id, ps.id], 'the RSA tokens are one user');
  eq(ids(r1.sessions), [rs.id], 'first RSA session');
  const pk = new Client(pkcs1Srv.url, { auth: { token: jwt(claims(), { alg: 'RS256', key: rsa.privateKey }) } });
  await pk.ready();
  const es = new Client(ecSrv.url, { auth: { token: jwt(claims(), { alg: 'ES256', key: ec.privateKey }) } });
  const r4 = await es.ready();
  eq(ids(r4.sessions), [es.id], 'ES256 session');
  // An expired RS256 token is token_expired, not invalid_token.
  await expectRefused(new Client(rsaSrv.url, { auth: { token: jwt({ sub: u, exp: now() - 60 }, { alg: 'RS256', key: rsa.privateKey }) } }), 'token_expired', 200);
  // HS tokens keyed with the shared secret of other servers mean nothing here.
  await expectRefused(new Client(rsaSrv.url, { auth: { token: tok(u) } }), 'invalid_token', 200);
});

test('jwt: HS384 and HS512 with the secret are accepted', async () => {
  const srv = await server('secret');
  const u = user();
  const a = new Client(srv.url, { auth: { token: tok(u, {}, { alg: 'HS384' }) } });
  await a.ready();
  const b = new Client(srv.url, { auth: { token: tok(u, {}, { alg: 'HS512' }) } });
  eq(ids((await b.ready()).sessions), [a.id, b.id], 'both listed');
});

test('expiry while connected: sessions:error token_expired, io server disconnect, others updated', async () => {
  const srv = await server('secret');
  const u = user();
  const watcher = new Client(srv.url, { auth: { token: tok(u) } });
  await watcher.ready();
  const exp = now() + 2;
  const short = new Client(srv.url, { auth: { token: tok(u, { exp }) } });
  await short.ready();
  await watcher.updateWith([watcher.id, short.id]);
  const shortId = short.id;
  const err = await short.waitEvent('sessions:error', () => true, 6000);
  assert(err.t >= exp * 1000 - 50, `token_expired sent ${exp * 1000 - err.t} ms before exp`);
  await expectRefusedAfterReady(short, 'token_expired');
  await watcher.updateWith([watcher.id]);
  assert(!(await watcher.ack('sessions:list')).some((s) => s.socketId === shortId), 'expired socket no longer listed');
  assert(watcher.socket.connected, 'the watcher stays connected');
});

/** Like expectRefused, for a socket that was accepted first and then signed out. */
async function expectRefusedAfterReady(client, code) {
  const err = await client.waitEvent('sessions:error', () => true, 6000);
  eq(err.args[0].code, code, 'sessions:error code');
  assert(typeof err.args[0].message === 'string' && err.args[0].message, 'message is a non-empty string');
  const disc = await client.waitFor((x) => x.kind === 'disconnect', 'disconnect', 5000);
  eq(disc.reason, 'io server disconnect', `disconnect reason after ${code}`);
  assert(client.log.indexOf(err) < client.log.indexOf(disc), 'sessions:error comes before the disconnect');
  await sleep(1000);
  assert(!client.socket.connected, `still disconnected 1 s after ${code}`);
  eq(client.log.filter((x) => x.kind === 'reconnect_attempt').length, 0, 'no reconnect attempt');
  eq(client.log.filter((x) => x.kind === 'connect').length, 1, 'connected only once');
}

test('sessions:list answers the bare array', async () => {
  const srv = await server('secret');
  const u = user();
  const a = new Client(srv.url, { auth: { token: tok(u) } });
  await a.ready();
  const list = await a.ack('sessions:list');
  assert(Array.isArray(list), `ack is an array: ${JSON.stringify(list)}`);
  eq(ids(list), [a.id], 'list');
  checkEntry(list[0], { socketId: a.id });
  // The ack carries exactly one argument.
  const args = await new Promise((resolve) => a.socket.timeout(3000).emit('sessions:list', (err, ...rest) => resolve([err, rest])));
  eq(args[0], null, 'no ack timeout');
  eq(args[1].length, 1, 'ack argument count');
});

test('sessions:revoke: another live own session is signed out, the rest updated', async () => {
  const srv = await server('secret');
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  const B = new Client(srv.url, { auth: { token: tok(u) } });
  await B.ready();
  const C = new Client(srv.url, { auth: { token: tok(u) } });
  await C.ready();
  await A.updateWith([A.id, B.id, C.id]);
  const bId = B.id;
  eq(await A.ack('sessions:revoke', { socketId: bId }), { ok: true }, 'revoke ack');
  await expectRefusedAfterReady(B, 'revoked');
  await A.updateWith([A.id, C.id]);
  await C.updateWith([A.id, C.id]);
  eq(await A.ack('sessions:revoke', { socketId: bId }), { ok: false, error: 'not_found' }, 'revoking it again');
  eq(ids(await C.ack('sessions:list')), [A.id, C.id], 'list after revoke');
});

test('sessions:revoke: own id, unknown, malformed and missing payloads answer not_found and touch nothing', async () => {
  const srv = await server('secret');
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  const B = new Client(srv.url, { auth: { token: tok(u) } });
  await B.ready();
  await A.updateWith([A.id, B.id]);
  const updatesBefore = A.events('sessions:update').length;
  const notFound = { ok: false, error: 'not_found' };
  eq(await A.ack('sessions:revoke', { socketId: A.id }), notFound, 'own id');
  eq(await A.ack('sessions:revoke', { socketId: 'no-such-socket' }), notFound, 'unknown id');
  eq(await A.ack('sessions:revoke', { socketId: A.socket.io.engine.id }), notFound, 'the Engine.IO id is not a session id');
  eq(await A.ack('sessions:revoke', { socketId: '' }), notFound, 'empty id');
  eq(await A.ack('sessions:revoke', { socketId: 12 }), notFound, 'numeric id');
  eq(await A.ack('sessions:revoke', { socketId: null }), notFound, 'null id');
  eq(await A.ack('sessions:revoke', { socketId: [B.id] }), notFound, 'array id');
  eq(await A.ack('sessions:revoke', { id: B.id }), notFound, 'wrong key');
  eq(await A.ack('sessions:revoke', B.id), notFound, 'bare string payload');
  eq(await A.ack('sessions:revoke', [B.id]), notFound, 'array payload');
  eq(await A.ack('sessions:revoke', 42), notFound, 'number payload');
  eq(await A.ack('sessions:revoke', null), notFound, 'null payload');
  eq(await A.ack('sessions:revoke', {}), notFound, 'empty object');
  eq(await A.ack('sessions:revoke', Buffer.from(B.id)), notFound, 'binary payload');
  eq(await A.ack('sessions:revoke'), notFound, 'missing payload');
  await sleep(200);
  assert(A.socket.connected && B.socket.connected, 'nobody was disconnected');
  eq(A.events('sessions:error').length + B.events('sessions:error').length, 0, 'no sessions:error');
  eq(A.events('sessions:update').length, updatesBefore, 'no update');
  eq(ids(await B.ack('sessions:list')), [A.id, B.id], 'list unchanged');
});

test('sessions:revoke-others: revokes every other session, answers {ok, revoked: N}, N may be 0', async () => {
  const srv = await server('secret');
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  eq(await A.ack('sessions:revoke-others'), { ok: true, revoked: 0 }, 'alone');
  const B = new Client(srv.url, { auth: { token: tok(u) } });
  await B.ready();
  const C = new Client(srv.url, { auth: { token: tok(u) } });
  await C.ready();
  await A.updateWith([A.id, B.id, C.id]);
  eq(await A.ack('sessions:revoke-others'), { ok: true, revoked: 2 }, 'two others');
  await Promise.all([expectRefusedAfterReady(B, 'revoked'), expectRefusedAfterReady(C, 'revoked')]);
  await A.updateWith([A.id]);
  eq(ids(await A.ack('sessions:list')), [A.id], 'only the caller is left');
  eq(await A.ack('sessions:revoke-others'), { ok: true, revoked: 0 }, 'again: none left');
  assert(A.socket.connected, 'the caller stays connected');
  eq(A.events('sessions:error').length, 0, 'the caller got no sessions:error');
});

test('robustness: events without ack, wrong shapes, unknown events, garbage packets crash nothing', async () => {
  const srv = await server('secret');
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  const B = new Client(srv.url, { auth: { token: tok(u) } });
  await B.ready();
  await A.updateWith([A.id, B.id]);
  const s = A.socket;
  s.emit('sessions:list');
  s.emit('sessions:list', 'unexpected', { payload: true });
  s.emit('sessions:revoke');
  s.emit('sessions:revoke', { socketId: 'nope' });
  s.emit('sessions:revoke', 'x', 'y', 'z');
  s.emit('sessions:revoke', Buffer.from([0, 1, 2, 255]));
  s.emit('sessions:revoke', { socketId: { nested: [1, 2, { deep: null }] } });
  s.emit('sessions:unknown', 1, 2, 3);
  s.emit('sessions:ready', { socketId: B.id, sessions: [] });
  s.emit('sessions:update', []);
  s.emit('sessions:error', { code: 'revoked' });
  eq(await A.ack('sessions:list', 'ignored-extra'), (await A.ack('sessions:list')), 'list with an extra argument');
  eq(ids(await A.ack('sessions:list')), [A.id, B.id], 'server still answers, nothing revoked');
  assert(B.socket.connected, 'B untouched');
  // Garbage at the Socket.IO level from another socket of the user: whatever happens to it, the server lives.
  const G = new Client(srv.url, { auth: { token: tok(u) }, reconnection: false });
  await G.ready();
  for (const raw of ['42/sessions,[', '42/sessions,{"a":1}', '43/sessions,99["x"]', '4Z', '42/sessions,[123]', '45/sessions,1-["x",{"_placeholder":true,"num":0}]']) {
    G.socket.io.engine.write(raw);
  }
  await sleep(500);
  G.close();
  eq(ids(await A.ack('sessions:list')).filter((id) => id !== G.id), [A.id, B.id], 'server still answers after garbage');
  const r = await httpGet(`${srv.url}/healthz`);
  eq(r.status, 200, 'healthz after garbage');
  const D = new Client(srv.url, { auth: { token: tok(u) } });
  await D.ready();
  await A.updateWith([A.id, B.id, D.id], 6000);
});

test('disconnect: a client that leaves (namespace disconnect or transport drop) is removed from every list', async () => {
  const srv = await server('secret');
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  const B = new Client(srv.url, { auth: { token: tok(u) } });
  await B.ready();
  const C = new Client(srv.url, { auth: { token: tok(u) }, reconnection: false, transports: ['websocket'] });
  await C.ready();
  const D = new Client(srv.url, { auth: { token: tok(u) }, reconnection: false, transports: ['polling'] });
  await D.ready();
  await A.updateWith([A.id, B.id, C.id, D.id]);
  B.socket.disconnect();
  await A.updateWith([A.id, C.id, D.id]);
  await C.updateWith([A.id, C.id, D.id]);
  // The WebSocket of C dies without a goodbye.
  C.socket.io.engine.transport.ws.terminate();
  await A.updateWith([A.id, D.id]);
  D.socket.io.engine.close();
  await A.updateWith([A.id]);
  eq(ids(await A.ack('sessions:list')), [A.id], 'list');
});

test('disconnect: a polling client that stops answering pings is dropped after pingInterval+pingTimeout', async () => {
  const srv = await server('secret'); // ping 1000 / 1000
  const u = user();
  const A = new Client(srv.url, { auth: { token: tok(u) } });
  await A.ready();
  // A raw Engine.IO polling client that connects to /sessions and then goes silent.
  const base = `${srv.url}/socket.io/?EIO=4&transport=polling`;
  const open = await httpGet(base);
  eq(open.status, 200, 'handshake status');
  const hs = JSON.parse(open.body.slice(1));
  eq([hs.pingInterval, hs.pingTimeout], [1000, 1000], 'configured heartbeat in the handshake');
  const post = await httpRequest(`${base}&sid=${hs.sid}`, { method: 'POST', body: `40/sessions,${JSON.stringify({ token: tok(u) })}`, headers: { 'content-type': 'text/plain;charset=UTF-8' } });
  eq(post.status, 200, 'POST status');
  let received = '';
  for (let i = 0; i < 5 && !received.includes('sessions:ready'); i++) received += (await httpGet(`${base}&sid=${hs.sid}`)).body + '\x1e';
  assert(received.includes('sessions:ready'), `raw client got sessions:ready: ${received}`);
  const m = /"socketId":"([^"]+)"/.exec(received);
  const rawId = m && m[1];
  assert(rawId && rawId !== hs.sid, `socketId ${rawId} differs from the Engine.IO sid ${hs.sid}`);
  await A.updateWith([A.id, rawId]);
  const t0 = Date.now();
  await A.updateWith([A.id], 6000);
  const waited = Date.now() - t0;
  assert(waited < 4500, `dropped in ${waited} ms`);
});

test('token subcommand: prints a verifiable HS256 token (1h default, --ttl 90s, iss/aud) accepted by the server', async () => {
  const srv = await server('issAud');
  const plain = runApp(['token', '--sub', 'alice', '--jwt-secret', SECRET]);
  eq(plain.code, 0, `exit code (stderr: ${plain.stderr})`);
  const token = plain.stdout.trim();
  assert(/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token), `stdout is one JWT: ${JSON.stringify(plain.stdout)}`);
  const d = decodeJwt(token);
  eq(d.header.alg, 'HS256', 'alg');
  eq(crypto.createHmac('sha256', SECRET).update(d.input).digest('base64url'), d.signature, 'HS256 signature with the secret');
  eq(d.claims.sub, 'alice', 'sub');
  assert(Math.abs(d.claims.exp - (now() + 3600)) <= 5, `exp ≈ now + 1h: ${d.claims.exp - now()}`);
  assert(d.claims.iss === undefined && d.claims.aud === undefined, 'no iss/aud when not configured');

  const ttl = runApp(['token', '--sub', 'bob', '--ttl', '90s'], { JWT_SECRET: SECRET });
  eq(ttl.code, 0, `exit code --ttl (stderr: ${ttl.stderr})`);
  const dt = decodeJwt(ttl.stdout.trim());
  assert(Math.abs(dt.claims.exp - (now() + 90)) <= 5, `--ttl 90s: exp - now = ${dt.claims.exp - now()}`);
  eq(crypto.createHmac('sha256', SECRET).update(dt.input).digest('base64url'), dt.signature, 'signed with JWT_SECRET from the environment');

  // Flags override the environment.
  const over = runApp(['token', '--sub', 'carol', '--jwt-secret', SECRET], { JWT_SECRET: 'the-env-secret' });
  const dov = decodeJwt(over.stdout.trim());
  eq(crypto.createHmac('sha256', SECRET).update(dov.input).digest('base64url'), dov.signature, '--jwt-secret wins over JWT_SECRET');

  const u = user();
  const withIssAud = runApp(['token', '--sub', u, '--jwt-secret', SECRET, '--jwt-issuer', ISS, '--jwt-audience', AUD]);
  eq(withIssAud.code, 0, 'exit code with iss/aud');
  const t2 = withIssAud.stdout.trim();
  const d2 = decodeJwt(t2);
  eq([d2.claims.iss, d2.claims.aud], [ISS, AUD], 'iss/aud carried');
  const a = new Client(srv.url, { auth: { token: t2 } });
  eq(ids((await a.ready()).sessions), [a.id], 'the printed token is accepted');
  // And a plain secret server accepts the plain one.
  const sec = await server('secret');
  const b = new Client(sec.url, { auth: { token: ttl.stdout.trim() } });
  await b.ready();
});

test('http: /healthz, / page, 404 for unknown paths', async () => {
  const srv = await server('secret');
  const h = await httpGet(`${srv.url}/healthz`);
  eq(h.status, 200, '/healthz status');
  eq(JSON.parse(h.body), { status: 'ok' }, '/healthz body');
  assert(/json/.test(h.headers['content-type'] || ''), `/healthz content-type ${h.headers['content-type']}`);
  const page = await httpGet(`${srv.url}/`);
  eq(page.status, 200, '/ status');
  assert(/text\/html/.test(page.headers['content-type'] || ''), '/ is HTML');
  for (const id of ['id="token"', 'id="connect"', 'id="login"', 'id="status"', 'id="sessions"', 'id="revoke-others"']) {
    assert(page.body.includes(id), `page has ${id}`);
  }
  for (const p of ['/nope', '/healthz/x', '/metricsx', '/favicon.ico']) {
    eq((await httpGet(srv.url + p)).status, 404, `GET ${p}`);
  }
});

test('metrics: every family present; gauges, handshakes, auth failures by code, packets and bytes move', async () => {
  const srv = await startServer(['--jwt-secret', SECRET]);
  try {
    const scrape = async () => {
      const r = await httpGet(`${srv.url}/metrics`);
      eq(r.status, 200, '/metrics status');
      assert(/^text\/plain/.test(r.headers['content-type'] || ''), `content-type ${r.headers['content-type']}`);
      return parseMetrics(r.body);
    };
    const m0 = await scrape();
    const fam = {
      sessions_connected_sockets: 'gauge', sessions_connected_users: 'gauge', sessions_handshakes_total: 'counter',
      sessions_auth_failures_total: 'counter', sessions_packets_total: 'counter', sessions_bytes_total: 'counter',
    };
    for (const [name, type] of Object.entries(fam)) eq(m0.types.get(name), type, `# TYPE ${name}`);
    const v = (m, k) => m.samples.get(k);
    for (const k of ['sessions_connected_sockets', 'sessions_connected_users', 'sessions_handshakes_total',
      'sessions_packets_total{direction="in"}', 'sessions_packets_total{direction="out"}',
      'sessions_bytes_total{direction="in"}', 'sessions_bytes_total{direction="out"}']) {
      assert(Number.isFinite(v(m0, k)), `sample ${k} present`);
    }
    eq([v(m0, 'sessions_connected_sockets'), v(m0, 'sessions_connected_users')], [0, 0], 'gauges at start');
    const alice = user('alice');
    const a1 = new Client(srv.url, { auth: { token: tok(alice) } });
    await a1.ready();
    const a2 = new Client(srv.url, { auth: { token: tok(alice) } });
    await a2.ready();
    const b1 = new Client(srv.url, { auth: { token: tok(user('bob')) } });
    await b1.ready();
    await a1.ack('sessions:list');
    const m1 = await scrape();
    eq([v(m1, 'sessions_connected_sockets'), v(m1, 'sessions_connected_users')], [3, 2], 'gauges with 3 sockets of 2 users');
    assert(v(m1, 'sessions_handshakes_total') >= v(m0, 'sessions_handshakes_total') + 3, 'handshakes counted');
    for (const d of ['in', 'out']) {
      assert(v(m1, `sessions_packets_total{direction="${d}"}`) > v(m0, `sessions_packets_total{direction="${d}"}`), `packets ${d} moved`);
      assert(v(m1, `sessions_bytes_total{direction="${d}"}`) > v(m0, `sessions_bytes_total{direction="${d}"}`), `bytes ${d} moved`);
    }
    const fail = (m, code) => v(m, `sessions_auth_failures_total{code="${code}"}`) || 0;
    await expectRefused(new Client(srv.url, {}), 'missing_token', 100);
    await expectRefused(new Client(srv.url, { auth: { token: 'garbage' } }), 'invalid_token', 100);
    await expectRefused(new Client(srv.url, { auth: { token: 'garbage' } }), 'invalid_token', 100);
    await expectRefused(new Client(srv.url, { auth: { token: tok(alice, { exp: now() - 60 }) } }), 'token_expired', 100);
    const m2 = await scrape();
    eq(fail(m2, 'missing_token') - fail(m1, 'missing_token'), 1, 'missing_token failures');
    eq(fail(m2, 'invalid_token') - fail(m1, 'invalid_token'), 2, 'invalid_token failures');
    eq(fail(m2, 'token_expired') - fail(m1, 'token_expired'), 1, 'token_expired failures');
    eq(fail(m2, 'session_limit') - fail(m1, 'session_limit'), 0, 'session_limit failures');
    eq([v(m2, 'sessions_connected_sockets'), v(m2, 'sessions_connected_users')], [3, 2], 'refused sockets are not counted');
    a2.close();
    await a1.updateWith([a1.id]);
    b1.close();
    a1.close();
    const deadline = Date.now() + 3000;
    let m3;
    do { await sleep(50); m3 = await scrape(); } while (v(m3, 'sessions_connected_sockets') !== 0 && Date.now() < deadline);
    eq([v(m3, 'sessions_connected_sockets'), v(m3, 'sessions_connected_users')], [0, 0], 'gauges after everyone left');
  } finally {
    await srv.stop();
  }
});

test('trust-proxy: ip from the first X-Forwarded-For entry only with --trust-proxy (or TRUST_PROXY)', async () => {
  const [proxy, proxyEnv, plain] = await Promise.all([server('proxy'), server('proxyEnv'), server('secret')]);
  const xff = { 'X-Forwarded-For': '203.0.113.7, 10.0.0.1' };
  for (const [srv, expected, what] of [[proxy, '203.0.113.7', '--trust-proxy'], [proxyEnv, '203.0.113.7', 'TRUST_PROXY=true'], [plain, '127.0.0.1', 'no --trust-proxy']]) {
    const c = new Client(srv.url, { transports: ['polling'], extraHeaders: xff, auth: { token: tok(user()) } });
    const r = await c.ready();
    eq(r.sessions[0].metadata.ip, expected, `ip with ${what}`);
    c.close();
  }
  // Without the header, the peer address even behind --trust-proxy.
  const c = new Client(proxy.url, { auth: { token: tok(user()) } });
  eq((await c.ready()).sessions[0].metadata.ip, '127.0.0.1', 'ip without X-Forwarded-For');
});

test('cors: same-origin only by default; --cors-origin allows exactly the listed origin', async () => {
  const [plain, cors] = await Promise.all([server('secret'), server('cors')]);
  const hs = (srv, origin) => httpGet(`${srv.url}/socket.io/?EIO=4&transport=polling`, { Origin: origin });
  const p = await hs(plain, 'http://evil.example');
  assert(!p.headers['access-control-allow-origin'], `no ACAO by default: ${p.headers['access-control-allow-origin']}`);
  const good = await hs(cors, 'http://good.example');
  eq(good.headers['access-control-allow-origin'], 'http://good.example', 'ACAO for the listed origin');
  const evil = await hs(cors, 'http://evil.example');
  const acao = evil.headers['access-control-allow-origin'];
  assert(!acao || acao === 'http://good.example', `an unlisted origin is not allowed: ${acao}`);
  assert(acao !== '*' && acao !== 'http://evil.example', 'no wildcard / reflected origin');
});

test('heartbeat: --ping-interval-ms/--ping-timeout-ms reach the handshake; defaults 25000/20000', async () => {
  const [custom, defaults] = await Promise.all([server('secret'), server('defaults')]);
  const hs = async (srv) => JSON.parse((await httpGet(`${srv.url}/socket.io/?EIO=4&transport=polling`)).body.slice(1));
  const c = await hs(custom);
  eq([c.pingInterval, c.pingTimeout], [1000, 1000], 'custom heartbeat');
  const d = await hs(defaults);
  eq([d.pingInterval, d.pingTimeout], [25000, 20000], 'default heartbeat');
  // The default server takes JWT_SECRET from the environment and max 100 sessions per user.
  const u = user();
  const socks = [];
  for (let i = 0; i < 100; i++) socks.push(new Client(defaults.url, { auth: { token: tok(u) }, transports: ['websocket'] }));
  await Promise.all(socks.map((s) => s.ready(10000)));
  await expectRefused(new Client(defaults.url, { auth: { token: tok(u) } }), 'session_limit', 200);
  eq((await socks[0].ack('sessions:list')).length, 100, '100 sessions listed');
}, 40000);

test('config errors: unreadable/invalid key file and bad listen address exit non-zero without listening', async () => {
  const port = await freePort();
  const listen = `127.0.0.1:${port}`;
  const garbage = path.join(dir, 'garbage.pem');
  fs.writeFileSync(garbage, '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n');
  const missing = path.join(dir, 'does-not-exist.pem');
  const cases = [
    [['--listen', listen, '--jwt-public-key', missing], {}, /does-not-exist\.pem|key/i, 'missing key file'],
    [['--listen', listen], { JWT_PUBLIC_KEY_FILE: dir }, /key|directory/i, 'key path is a directory (env)'],
    [['--listen', listen, '--jwt-public-key', garbage], {}, /key/i, 'not a key'],
    [['--listen', 'not-an-address', '--jwt-secret', SECRET], {}, /listen|address|not-an-address/i, 'bad listen address'],
    [['--listen', '127.0.0.1:99999', '--jwt-secret', SECRET], {}, /listen|address|99999/i, 'port out of range'],
    [['--jwt-secret', SECRET], { SESSIONS_LISTEN: 'nonsense' }, /listen|address|nonsense/i, 'bad SESSIONS_LISTEN'],
  ];
  for (const [args, env, msg, what] of cases) {
    const p = spawnApp(args, env);
    let listened = false;
    const watch = (async () => { while (!p.exit) { if (await portOpen(port)) listened = true; await sleep(20); } })();
    const exit = await Promise.race([p.exited, sleep(5000).then(() => null)]);
    await watch.catch(() => {});
    if (!exit) { p.child.kill('SIGKILL'); throw new Error(`${what}: still running after 5 s\n${p.output()}`); }
    assert(exit.code !== 0 && exit.code !== null, `${what}: exit code ${JSON.stringify(exit)}`);
    assert(msg.test(p.stderr), `${what}: a clear message on stderr: ${p.stderr}`);
    assert(!listened, `${what}: it listened on ${listen}`);
  }
  // A port already taken: non-zero as well.
  const busy = await server('secret');
  const p = spawnApp(['--listen', `127.0.0.1:${busy.port}`, '--jwt-secret', SECRET]);
  const exit = await Promise.race([p.exited, sleep(5000).then(() => null)]);
  if (!exit) p.child.kill('SIGKILL');
  assert(exit && exit.code !== 0, `port in use: exit ${JSON.stringify(exit)}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal}: clients see the engine close, the process exits 0 within 10 s`, async () => {
    const srv = await startServer(['--jwt-secret', SECRET]);
    const u = user();
    const ws = new Client(srv.url, { auth: { token: tok(u) }, transports: ['websocket'], reconnectionDelay: 5000 });
    await ws.ready();
    // Another user: see the next test for a polling socket whose user has other sockets.
    const poll = new Client(srv.url, { auth: { token: tok(user()) }, transports: ['polling'], reconnectionDelay: 5000 });
    await poll.ready();
    // Let the polling client park its next GET: a client between two polls cannot be told (the listener
    // is closed at once), see README.
    await sleep(300);
    const t0 = Date.now();
    srv.child.kill(signal);
    const exit = await Promise.race([srv.exited, sleep(10000).then(() => null)]);
    if (!exit) srv.child.kill('SIGKILL');
    assert(exit, `${signal}: still running after 10 s`);
    eq([exit.code, exit.signal], [0, null], `${signal}: exit status`);
    assert(Date.now() - t0 < 10000, 'within 10 s');
    for (const [c, what] of [[ws, 'websocket'], [poll, 'polling']]) {
      const d = await c.waitFor((x) => x.kind === 'disconnect', `${what} disconnect`, 3000);
      eq(d.reason, "transport close", `${what} client disconnect reason (details ${JSON.stringify(d.details && (d.details.description && d.details.description.message || d.details.description || d.details.context))})`);
      assert(d.t - t0 < 10000, `${what} told in time`);
    }
    eq(ws.events('sessions:error').length, 0, 'no sessions:error on shutdown');
    assert(!(await portOpen(srv.port)), 'no longer listening');
  });
}

test('SIGTERM: a polling socket is told too when other sockets of its user close first (24 trials)', async () => {
  // On shutdown every socket disconnects; the others' disconnects can send this socket a sessions:update
  // on its pending GET. The engine close must still reach it (transport close), not a refused next poll
  // (transport error). The race is timing-dependent (~15 % of shutdowns), so the scenario runs 24 times, 4 at once.
  const outcomes = [];
  const trial = async () => {
    const srv = await startServer(['--jwt-secret', SECRET]);
    const u = user();
    const all = [];
    try {
      for (let i = 0; i < 4; i++) {
        const c = new Client(srv.url, { auth: { token: tok(u) }, transports: ['websocket'], reconnectionDelay: 5000 });
        all.push(c);
        await c.ready();
      }
      const poll = new Client(srv.url, { auth: { token: tok(u) }, transports: ['polling'], reconnectionDelay: 5000 });
      all.push(poll);
      await poll.ready();
      await sleep(300);
      const updatesBefore = poll.events('sessions:update').length;
      srv.child.kill('SIGTERM');
      const exit = await Promise.race([srv.exited, sleep(10000).then(() => null)]);
      if (!exit) srv.child.kill('SIGKILL');
      eq(exit && [exit.code, exit.signal], [0, null], 'exit status');
      const d = await poll.waitFor((x) => x.kind === 'disconnect', 'polling disconnect', 3000);
      const detail = d.details && d.details.context && d.details.context.statusText && d.details.context.statusText.code;
      outcomes.push(`${d.reason}${detail ? ` (${detail})` : ''} after ${poll.events('sessions:update').length - updatesBefore} update(s) during shutdown`);
      for (const c of all.slice(0, 4)) eq((await c.waitFor((x) => x.kind === 'disconnect', 'ws disconnect', 3000)).reason, 'transport close', 'websocket client reason');
    } finally {
      all.forEach((c) => c.close());
      await srv.stop('SIGKILL');
    }
  };
  await Promise.all([0, 1, 2, 3].map(async () => { for (let i = 0; i < 6; i++) await trial(); }));
  const bad = outcomes.filter((o) => !o.startsWith('transport close'));
  assert(bad.length === 0, `the polling client was not told in ${bad.length}/${outcomes.length} trials: ${bad.join('; ')}`);
}, 60000);

test('dev mode: no secret or key → loud warning and a token on stdout that the same server accepts', async () => {
  const port = await freePort();
  const p = spawnApp(['--listen', `127.0.0.1:${port}`]);
  try {
    const deadline = Date.now() + 10000;
    let m;
    while (!(m = /([\w-]{10,}\.[\w-]{10,}\.[\w-]{10,})/.exec(p.stdout))) {
      if (p.exit || Date.now() > deadline) throw new Error(`no token on stdout\n${p.output()}`);
      await sleep(20);
    }
    const all = p.stdout + p.stderr;
    assert(/WARN/.test(p.stderr) && /development/i.test(all), `a loud development-mode warning:\n${p.output()}`);
    const token = m[1];
    const claims = decodeJwt(token).claims;
    assert(typeof claims.sub === 'string' && claims.sub, 'the token has a sub');
    while (!(await portOpen(port))) { if (Date.now() > deadline) throw new Error('not listening'); await sleep(20); }
    const url = `http://127.0.0.1:${port}`;
    const a = new Client(url, { auth: { token } });
    eq(ids((await a.ready()).sessions), [a.id], 'the printed token is accepted');
    // Its secret is its own: a token with any guessable secret is refused.
    await expectRefused(new Client(url, { auth: { token: jwt({ sub: claims.sub, exp: now() + 60 }, { key: '' }) } }), 'invalid_token', 200);
    await expectRefused(new Client(url, { auth: { token: jwt({ sub: claims.sub, exp: now() + 60 }, { key: SECRET }) } }), 'invalid_token', 200);
    assert(!p.stderr.includes(token), 'the token is not in the log (stderr)');
  } finally {
    if (!p.exit) p.child.kill('SIGTERM');
    await p.exited;
  }
});

test('logs: one line per connect and disconnect with user, socket id and reason; no token logged', async () => {
  const srv = await startServer(['--jwt-secret', SECRET]);
  try {
    const u = user('logged');
    const token = tok(u);
    const a = new Client(srv.url, { auth: { token } });
    await a.ready();
    const id = a.id;
    a.close();
    await expectRefused(new Client(srv.url, { auth: { token: tok(u, { exp: now() - 10 }) } }), 'token_expired', 100);
    await sleep(300);
    const lines = srv.stderr.split('\n');
    assert(lines.some((l) => l.includes(u) && l.includes(id) && /connect/i.test(l) && !/disconnect/i.test(l)), `a connect line with user and socket id:\n${srv.stderr}`);
    assert(lines.some((l) => l.includes(u) && l.includes(id) && /disconnect/i.test(l) && /reason/i.test(l)), `a disconnect line with user, socket id and reason:\n${srv.stderr}`);
    eq(lines.filter((l) => l.includes(id) && /disconnect/i.test(l)).length, 1, 'one disconnect line for the socket');
    const sig = token.split('.')[2];
    assert(!srv.stderr.includes(sig) && !srv.stdout.includes(sig), 'no token in the logs');
  } finally {
    await srv.stop();
  }
});

test('browser: two tabs of one user list both; "Sign out" in one signs the other out', async () => {
  const { chromium } = require('playwright-core');
  const srv = await server('secret');
  const u = user('browser');
  const token = tok(u);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext();
    const errors = [];
    const tab = async () => {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${srv.url}/#token=${token}`);
      return page;
    };
    const tab1 = await tab();
    await tab1.waitForSelector('#sessions li.me', { timeout: 5000 });
    const tab2 = await tab();
    const both = async (page) => {
      await page.waitForFunction(() => document.querySelectorAll('#sessions li[data-socket-id]').length === 2, null, { timeout: 5000 });
      return page.$$eval('#sessions li[data-socket-id]', (lis) => lis.map((li) => ({ id: li.dataset.socketId, me: li.classList.contains('me'), revoke: !!li.querySelector('button.revoke') })));
    };
    const l1 = await both(tab1);
    const l2 = await both(tab2);
    eq(l1.map((x) => x.id), l2.map((x) => x.id), 'both tabs list the same sessions in the same order');
    eq(l1.filter((x) => x.me).length, 1, 'tab 1 marks exactly one as me');
    eq(l2.filter((x) => x.me).length, 1, 'tab 2 marks exactly one as me');
    const me1 = l1.find((x) => x.me).id;
    const me2 = l2.find((x) => x.me).id;
    assert(me1 !== me2, 'each tab is its own session');
    eq(l1.map((x) => x.revoke), l1.map((x) => !x.me), 'a Sign out button on every other session, not on me');
    // A Node client of the same user sees the tabs too.
    const node = new Client(srv.url, { auth: { token } });
    const rn = await node.ready();
    eq(ids(rn.sessions), [me1, me2, node.id], 'the Node client lists both tabs, oldest first');
    await tab1.waitForFunction(() => document.querySelectorAll('#sessions li').length === 3, null, { timeout: 5000 });
    await tab1.click(`#sessions li[data-socket-id="${me2}"] button.revoke`);
    await tab2.waitForFunction(() => /revoked|signed out/i.test(document.getElementById('status').textContent), null, { timeout: 5000 });
    const status2 = await tab2.$eval('#status', (el) => ({ text: el.textContent, cls: el.className }));
    assert(/error/.test(status2.cls), `tab 2 status shows an error: ${JSON.stringify(status2)}`);
    await tab1.waitForFunction((id) => !document.querySelector(`#sessions li[data-socket-id="${id}"]`), me2, { timeout: 5000 });
    await node.updateWith([me1, node.id]);
    // "Sign out every other session" from tab 1: the Node client is signed out, tab 1 lists only itself.
    await tab1.click('#revoke-others');
    await expectRefusedAfterReady(node, 'revoked');
    await tab1.waitForFunction(() => document.querySelectorAll('#sessions li').length === 1, null, { timeout: 5000 });
    const left = await tab1.$$eval('#sessions li', (lis) => lis.map((li) => ({ id: li.dataset.socketId, me: li.classList.contains('me') })));
    eq(left, [{ id: me1, me: true }], 'tab 1 lists only itself');
    // The form path: a third tab without a fragment connects by pasting the token.
    const tab3 = await context.newPage();
    await tab3.goto(`${srv.url}/`);
    await tab3.fill('#token', token);
    await tab3.click('#connect');
    await tab3.waitForFunction(() => document.querySelectorAll('#sessions li').length === 2, null, { timeout: 5000 });
    await tab1.waitForFunction(() => document.querySelectorAll('#sessions li').length === 2, null, { timeout: 5000 });
    eq(errors, [], 'no page errors');
  } finally {
    await browser.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Runner

async function main() {
  const argv = process.argv.slice(2);
  let grep = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--grep') grep = argv[++i];
    else if (argv[i].startsWith('--grep=')) grep = argv[i].slice(7);
    else { console.error(`unknown argument ${argv[i]}`); process.exit(2); }
  }
  if (!fs.existsSync(BIN)) {
    console.error(`sessions-app binary not found at ${BIN}: build it (cargo build -p sessions-app) or set SESSIONS_APP_BIN`);
    process.exit(2);
  }
  const selected = tests.filter((t) => !grep || t.name.toLowerCase().includes(grep.toLowerCase()));
  const failures = [];
  let passed = 0;
  const started = Date.now();
  for (const t of selected) {
    let timer;
    try {
      await Promise.race([
        t.fn(),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${t.timeout} ms`)), t.timeout); }),
      ]);
      passed++;
      console.log(`pass  ${t.name}`);
    } catch (err) {
      failures.push({ name: t.name, err });
      console.log(`FAIL  ${t.name}`);
    } finally {
      clearTimeout(timer);
      closeAllClients();
      await sleep(50);
    }
  }
  if (failures.length) {
    console.log('\nFailures:');
    for (const { name, err } of failures) {
      console.log(`\n--- ${name}\n${err && err.stack ? err.stack : err}`);
    }
  }
  for (const p of Object.values(servers)) {
    const s = await p.catch(() => null);
    if (s) await Promise.race([s.stop(), sleep(5000)]);
  }
  killAll();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s)`);
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exitCode = failures.length > 0 ? 1 : 0;
  setTimeout(() => process.exit(process.exitCode), 200).unref();
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAll(); process.exit(130); });
main().catch((err) => { console.error(err); killAll(); process.exit(2); });

#!/usr/bin/env node
// A stand-in for aigw-edge's dashboard side: serves ui/dist and the SSE metrics stream
// (/v1/aigw/events) fed by the demo simulation, plus /healthz, /readyz and /v1/models.
// For trying the built dashboard, and its reconnects, without the C system:
//
//   node e2e/mock-edge.mjs [--port 8089] [--dist dist] [--seed 42] [--admin-key KEY]
//
// --admin-key (or --admin-key-env NAME, the key read from that environment variable)
// plays edge/auth = on: /v1/aigw/events and /metrics then answer 401 with the edge's
// OpenAI-style error unless the request has `Authorization: Bearer KEY` (or x-api-key),
// and /v1/models wants it too; the static files, /healthz and /readyz stay open.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createSimulator } from '../src/demo.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8089' },
    host: { type: 'string', default: '127.0.0.1' },
    dist: { type: 'string', default: join(here, '..', 'dist') },
    seed: { type: 'string', default: '42' },
    'admin-key': { type: 'string' },
    'admin-key-env': { type: 'string' },
  },
});
const adminKey = values['admin-key'] ?? (values['admin-key-env'] ? process.env[values['admin-key-env']] : undefined) ?? null;
if (adminKey !== null && adminKey.length < 16) {
  console.error('mock-edge: the admin key must be at least 16 characters (as the edge wants)');
  process.exit(2);
}
const dist = resolve(values.dist);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json' };

const sim = createSimulator({ seed: Number(values.seed) || 42, start: Date.now() - 5000 });
sim.step(Date.now());
const clients = new Set();
let lastMetrics = null;
let lastEdge = null;
const refused = { admin: 0 };
setInterval(() => {
  for (const [type, data] of sim.step(Date.now())) {
    if (type === 'metrics') lastMetrics = data;
    if (type === 'edge') lastEdge = data;
    const frame = `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of clients) res.write(frame);
  }
}, 100);

function json(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
}

//  The secret a request presents: "Authorization: Bearer X" or "x-api-key: X".
function secretOf(req) {
  const m = /^bearer\s+(.+)$/i.exec(req.headers.authorization || '');
  return m ? m[1].trim() : req.headers['x-api-key'] || null;
}

//  True when the request may go on; else answers 401 like the edge does.
function adminGate(req, res) {
  if (adminKey === null) return true;
  const secret = secretOf(req);
  if (secret === adminKey) return true;
  refused.admin++;
  json(res, 401, {
    error: {
      message: secret ? 'the admin key is not correct' : 'this route needs the admin key (Authorization: Bearer ...)',
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    },
  });
  return false;
}

function metricsText() {
  const e = lastEdge || {};
  const lines = [
    '# TYPE aigw_edge_requests_total counter',
    `aigw_edge_requests_total ${e.requests_total ?? 0}`,
    '# TYPE aigw_edge_cost_usd_total counter',
    `aigw_edge_cost_usd_total ${e.cost_usd ?? 0}`,
    '# TYPE aigw_edge_cost_saved_usd_total counter',
    `aigw_edge_cost_saved_usd_total ${e.cost_saved_usd ?? 0}`,
    '# TYPE aigw_mock_admin_refused_total counter',
    `aigw_mock_admin_refused_total ${refused.admin}`,
  ];
  return lines.join('\n') + '\n';
}

function serveStatic(req, res, path) {
  const file = normalize(join(dist, path === '/' ? 'index.html' : decodeURIComponent(path)));
  const target = file.startsWith(dist) && existsSync(file) && statSync(file).isFile() ? file : join(dist, 'index.html');
  if (!existsSync(target)) return json(res, 404, { error: { message: `no ${target}; run npm run build`, type: 'not_found' } });
  res.writeHead(200, { 'Content-Type': TYPES[extname(target)] || 'application/octet-stream' });
  createReadStream(target).pipe(res);
}

createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://x');
  if (pathname === '/v1/aigw/events') {
    if (!adminGate(req, res)) return;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
    return;
  }
  if (pathname === '/healthz') return json(res, 200, { status: 'ok' });
  if (pathname === '/readyz') return json(res, 200, { status: 'ready' });
  if (pathname === '/metrics') {
    if (!adminGate(req, res)) return;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4', 'Cache-Control': 'no-store' });
    return res.end(metricsText());
  }
  if (pathname === '/v1/models') {
    if (!adminGate(req, res)) return;
    const data = (lastMetrics?.models || [])
      .filter((m) => m.workers > 0)
      .map((m) => ({ id: m.name, object: 'model', created: 0, owned_by: 'aigw', aigw: { kind: 'model', workers: m.workers } }));
    data.push({ id: 'quick', object: 'model', created: 0, owned_by: 'aigw', aigw: { kind: 'group', workers: 4 } });
    return json(res, 200, { object: 'list', data });
  }
  return serveStatic(req, res, pathname);
}).listen(Number(values.port), values.host, () => {
  console.log(`mock-edge: http://${values.host}:${values.port}/ (dist ${dist}${adminKey !== null ? ', admin key required' : ''})`);
});

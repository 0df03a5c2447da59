// Runs the official OpenAI Node SDK against a live aigw edge and prints a JSON summary:
//   {"ok": bool, "sdk": "<openai version>", "checks": {"<name>": {"ok": bool, ...observed}}}
// Exits 1 if any check failed, 2 on bad usage. Driven by tests/integration/test_sdks.py,
// which starts the system with the sim models named below.
//
//   node check.mjs http://127.0.0.1:PORT/v1
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const baseURL = process.argv[2];
if (!baseURL) {
  console.error('usage: node check.mjs BASE_URL   (e.g. http://127.0.0.1:8080/v1)');
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey: 'x', maxRetries: 0, timeout: 30_000 });
const user = [{ role: 'user', content: 'Hello' }];
const checks = {};

class CheckFailed extends Error {}

function expect(cond, what, observed) {
  if (!cond) {
    const e = new CheckFailed(what);
    e.observed = observed;
    throw e;
  }
}

// What an SDK error looked like, so a failed check says what the edge answered.
function describe(err) {
  if (err instanceof OpenAI.APIError) {
    return { class: err.constructor.name, status: err.status ?? null, code: err.code ?? null,
             type: err.type ?? null, message: err.message };
  }
  return { class: err?.constructor?.name ?? typeof err, message: String(err?.message ?? err) };
}

async function check(name, fn) {
  try {
    checks[name] = { ok: true, ...((await fn()) ?? {}) };
  } catch (err) {
    checks[name] = err instanceof CheckFailed
      ? { ok: false, failed: err.message, observed: err.observed ?? null }
      : { ok: false, failed: 'unexpected error', error: describe(err) };
  }
}

// Calls fn, which must reject with an instance of cls; returns the error.
async function rejects(fn, cls, what) {
  let result;
  try {
    result = await fn();
  } catch (err) {
    expect(err instanceof cls, `${what}: expected ${cls.name}`, describe(err));
    return err;
  }
  expect(false, `${what}: expected ${cls.name}, got a result`, result ?? null);
}

await check('create', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'fast-sim,slow-sim', messages: user })
    .withResponse();
  const observed = {
    object: data.object, model: data.model, content: data.choices?.[0]?.message?.content,
    role: data.choices?.[0]?.message?.role, finish_reason: data.choices?.[0]?.finish_reason,
    usage: data.usage, winner: data.aigw?.winner, header: response.headers.get('x-aigw-winner'),
    outcomes: Object.fromEntries((data.aigw?.attempts ?? []).map((a) => [a.model, a.outcome])),
  };
  expect(data.object === 'chat.completion', 'object', observed);
  expect(data.model === 'fast-sim', 'model', observed);
  expect(observed.role === 'assistant' && observed.content === 'fast answer', 'message', observed);
  expect(observed.finish_reason === 'stop', 'finish_reason', observed);
  expect(Number.isInteger(data.usage?.completion_tokens) && data.usage.completion_tokens > 0
         && data.usage.total_tokens === data.usage.prompt_tokens + data.usage.completion_tokens,
         'usage', observed);
  expect(observed.winner === 'fast-sim' && observed.header === 'fast-sim', 'winner', observed);
  expect(observed.outcomes['fast-sim'] === 'won' && observed.outcomes['slow-sim'] === 'cancelled',
         'attempt outcomes', observed);
  return observed;
});

await check('group', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'quick', messages: user })
    .withResponse();
  const observed = { model: data.model, content: data.choices?.[0]?.message?.content,
                     winner: data.aigw?.winner, header: response.headers.get('x-aigw-winner') };
  expect(observed.model === 'fast-sim' && observed.content === 'fast answer', 'answer', observed);
  expect(observed.winner === 'fast-sim' && observed.header === 'fast-sim', 'winner', observed);
  return observed;
});

await check('stream', async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'slow-sim,drip-sim', messages: user, stream: true,
              stream_options: { include_usage: true } })
    .withResponse();
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);   // ends at [DONE] or throws
  const text = chunks.filter((c) => c.choices?.length)
    .map((c) => c.choices[0].delta?.content ?? '').join('');
  const first = chunks[0] ?? {};
  const last = chunks[chunks.length - 1] ?? {};
  const observed = {
    chunks: chunks.length, text, content_type: response.headers.get('content-type'),
    first_object: first.object, first_model: first.model, first_role: first.choices?.[0]?.delta?.role,
    first_aigw: first.aigw ?? null, last_usage: last.usage ?? null,
    summary_winner: chunks.find((c) => !c.choices?.length && c.aigw?.attempts)?.aigw?.winner ?? null,
  };
  expect(observed.content_type?.startsWith('text/event-stream'), 'content-type', observed);
  expect(text === 'one two three four', 'assembled text', observed);
  expect(first.object === 'chat.completion.chunk' && first.model === 'drip-sim', 'first chunk', observed);
  expect(observed.first_role === 'assistant', 'first delta role', observed);
  expect(first.aigw?.winner === 'drip-sim', 'first chunk names the winner', observed);
  expect(observed.summary_winner === 'drip-sim', 'summary chunk', observed);
  expect(Number.isInteger(last.usage?.completion_tokens) && last.usage.completion_tokens === 4,
         'usage chunk last', observed);
  return observed;
});

await check('models_list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  const observed = { ids };
  for (const want of ['fast-sim', 'slow-sim', 'drip-sim', 'broken-sim', 'quick']) {
    expect(ids.includes(want), `lists ${want}`, observed);
  }
  return observed;
});

await check('models_retrieve', async () => {
  const model = await client.models.retrieve('fast-sim');
  const group = await client.models.retrieve('quick');
  const observed = { model: { id: model.id, object: model.object, kind: model.aigw?.kind },
                     group: { id: group.id, object: group.object, kind: group.aigw?.kind } };
  expect(model.id === 'fast-sim' && model.object === 'model' && observed.model.kind === 'model',
         'model', observed);
  expect(group.id === 'quick' && group.object === 'model' && observed.group.kind === 'group',
         'group', observed);
  return observed;
});

await check('models_retrieve_unknown', async () => {
  const err = await rejects(() => client.models.retrieve('nope'), OpenAI.NotFoundError,
                            'retrieve nope');
  const observed = describe(err);
  expect(err.status === 404 && err.code === 'model_not_found', 'status/code', observed);
  return observed;
});

await check('chat_unknown_model', async () => {
  const err = await rejects(() => client.chat.completions.create({ model: 'nope', messages: user }),
                            OpenAI.NotFoundError, 'chat with model nope');
  const observed = describe(err);
  expect(err.status === 404 && err.code === 'model_not_found', 'status/code', observed);
  return observed;
});

await check('bad_request', async () => {
  const err = await rejects(
    () => client.chat.completions.create({ model: 'fast-sim', messages: 'not a list' }),
    OpenAI.BadRequestError, 'messages not a list');
  const observed = describe(err);
  expect(err.status === 400 && err.type === 'invalid_request_error', 'status/type', observed);
  expect(/messages/.test(err.message), 'message names the field', observed);
  return observed;
});

await check('upstream_failure', async () => {
  const err = await rejects(
    () => client.chat.completions.create({ model: 'broken-sim', messages: user }),
    OpenAI.APIError, 'failing model');
  const observed = describe(err);
  expect(err instanceof OpenAI.InternalServerError, 'a 5xx error class', observed);
  expect(err.status === 502 && err.code === 'upstream_error', 'status/code', observed);
  expect(err.message.includes('sim: injected failure'), 'message carries the reason', observed);
  return observed;
});

await check('stream_failure', async () => {
  const stream = await client.chat.completions.create(
    { model: 'broken-sim', messages: user, stream: true });
  const chunks = [];
  const err = await rejects(async () => { for await (const c of stream) chunks.push(c); },
                            OpenAI.APIError, 'iterating a failing stream');
  const observed = { ...describe(err), chunks: chunks.length };
  expect(chunks.length === 0, 'no chunk before the error', observed);
  expect(err.message.includes('sim: injected failure'), 'message carries the reason', observed);
  return observed;
});

await check('concurrent', async () => {
  const n = 50;
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) =>
    client.chat.completions.create({ model: 'fast-sim',
                                     messages: [{ role: 'user', content: `request ${i}` }] })));
  const bad = results
    .map((r, i) => ({ i, r }))
    .filter(({ r }) => r.status !== 'fulfilled' || r.value.choices?.[0]?.message?.content !== 'fast answer'
                       || r.value.aigw?.winner !== 'fast-sim')
    .map(({ i, r }) => ({ i, ...(r.status === 'fulfilled' ? { value: r.value } : describe(r.reason)) }));
  const observed = { requests: n, succeeded: n - bad.length, failures: bad.slice(0, 5) };
  expect(bad.length === 0, 'every request answered', observed);
  return observed;
});

const ok = Object.values(checks).every((c) => c.ok);
process.stdout.write(JSON.stringify({ ok, sdk: VERSION, node: process.versions.node, checks }) + '\n');
process.exit(ok ? 0 : 1);

// Asks a live aigw edge for each model named on the command line with the official
// OpenAI Node SDK and prints, as one JSON line, what the SDK raised for each:
//   {"sdk": "<version>", "errors": {"<model>": {"class", "status", "code", "type",
//    "retry_after"} | {"ok": true}}}
// Driven by tests/integration/test_errors.py (the mapping of docs/errors.md).
//
//   node errors.mjs http://127.0.0.1:PORT/v1 MODEL [MODEL ...]
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const [baseURL, ...models] = process.argv.slice(2);
if (!baseURL || models.length === 0) {
  console.error('usage: node errors.mjs BASE_URL MODEL [MODEL ...]');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: 'x', maxRetries: 0, timeout: 30_000 });
const errors = {};
for (const model of models) {
  try {
    await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello' }] });
    errors[model] = { ok: true };
  } catch (err) {
    errors[model] = err instanceof OpenAI.APIError
      ? { class: err.constructor.name, status: err.status ?? null, code: err.code ?? null,
          type: err.type ?? null, retry_after: err.headers?.get?.('retry-after') ?? null }
      : { class: err?.constructor?.name ?? typeof err, message: String(err?.message ?? err) };
  }
}
console.log(JSON.stringify({ sdk: VERSION, errors }));

// The official `openai` npm client against warden in front of a hostile
// provider: for every answer in tests/mock/hostile_answers.json, what the
// client ends with (the chunks it iterates, the ChatCompletionStream
// accumulator's snapshot and final completion, the parsed whole answer,
// the error it throws) never holds the forbidden tool call.
//
//   WARDEN_BASE_URL=http://127.0.0.1:18080/v1 WARDEN_AGENT_KEY=wk-... \
//     node --test tests/openai-node/hostile_provider.mjs
//
// The key must be an agent's whose conversation below (read_customer, then
// the model's answer) makes the forbidden call a violation; the upstream
// must be tests/mock/mock_provider (its raw= directive sends the bytes).
// tests/integration/test_answers.c runs this with such an agent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import OpenAI from 'openai';

const BASE_URL = process.env.WARDEN_BASE_URL;
const KEY = process.env.WARDEN_AGENT_KEY;
if (!BASE_URL || !KEY) {
  throw new Error('set WARDEN_BASE_URL and WARDEN_AGENT_KEY');
}

const { forbidden: FORBIDDEN, cases: CASES } = JSON.parse(
  fs.readFileSync(new URL('../mock/hostile_answers.json', import.meta.url), 'utf8'),
);

const client = new OpenAI({ baseURL: BASE_URL, apiKey: KEY, maxRetries: 0, timeout: 10000 });

function params(c, stream) {
  const b64 = Buffer.from(c.raw, 'utf8').toString('base64');
  let directive = `[[mock raw=${b64}`;
  if (c.status) directive += ` raw_status=${c.status}`;
  if (c.type) directive += ` raw_type=${c.type}`;
  directive += ']]';
  return {
    model: 'gpt-4o',
    stream,
    messages: [
      { role: 'user', content: 'look up the customer' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'h1', type: 'function', function: { name: 'read_customer', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'h1', content: 'A. Person' },
      { role: 'user', content: `mail them ${directive}` },
    ],
    tools: [{ type: 'function', function: { name: 'search_kb', parameters: { type: 'object' } } }],
  };
}

// Every tool name anything the client holds would run: tool_calls (function
// and custom), legacy function_call, in messages, deltas and snapshots.
function callNames(x, out = []) {
  if (Array.isArray(x)) {
    for (const v of x) callNames(v, out);
  } else if (x && typeof x === 'object') {
    for (const [k, v] of Object.entries(x)) {
      if ((k === 'function' || k === 'function_call' || k === 'custom') && v && typeof v === 'object' && 'name' in v) {
        out.push(String(v.name));
      }
      callNames(v, out);
    }
  }
  return out;
}

function assertClean(what, c, x) {
  const names = callNames(x);
  assert.ok(!names.includes(FORBIDDEN), `${c.name}: ${what} holds ${FORBIDDEN}: ${JSON.stringify(x)}`);
  return names;
}

// An error of the client must not carry the call either (an error body
// with choices would: err.error is the whole body).
function assertCleanError(c, err) {
  assert.ok(err instanceof Error, `${c.name}: not an Error: ${err}`);
  assertClean('the error', c, err.error ?? null);
  if (c.expect.no_choices) {
    assert.ok(!(err.error && 'choices' in err.error), `${c.name}: error carries choices: ${JSON.stringify(err.error)}`);
  }
}

// What warden sent, byte for byte, without a client's reading in between
// (the SDK keeps only an error body's "error"; other clients keep more).
async function onTheWire(c) {
  const res = await fetch(`${BASE_URL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(params(c, c.stream)),
  });
  const text = await res.text();
  assert.equal(res.status, c.expect.status, `${c.name}: ${text}`);
  assert.ok(!text.includes(`"name":"${FORBIDDEN}"`), `${c.name}: ${text}`);
  if (c.expect.done) assert.ok(text.endsWith('data: [DONE]\n\n') && text.split('[DONE]').length === 2, `${c.name}: ${text}`);
  if (c.expect.no_choices) assert.ok(!text.includes('choices'), `${c.name}: ${text}`);
}

for (const c of CASES) {
  const refused = c.expect.code !== undefined || c.expect.status !== 200;

  if (c.stream) {
    test(`${c.name}: raw chunks (${c.why})`, async () => {
      const seen = [];
      let error;
      try {
        const stream = await client.chat.completions.create(params(c, true));
        for await (const chunk of stream) seen.push(structuredClone(chunk));
      } catch (err) {
        error = err;
      }
      for (const chunk of seen) assertClean('a chunk', c, chunk);
      if (error) assertCleanError(c, error);
      if (refused) assert.ok(error, `${c.name}: warden did not refuse the answer`);
      else assert.ok(!error, `${c.name}: ${error}`);
      if (c.expect.allowed) assert.ok(callNames(seen).includes(c.expect.allowed), `${c.name}: ${JSON.stringify(seen)}`);
    });

    test(`${c.name}: ChatCompletionStream accumulator (${c.why})`, async () => {
      const stream = client.chat.completions.stream(params(c, true));
      let snapshot;
      stream.on('chunk', (_chunk, snap) => {
        snapshot = structuredClone(snap);
      });
      let final, error;
      try {
        final = await stream.finalChatCompletion();
      } catch (err) {
        error = err;
      }
      assertClean('the accumulated snapshot', c, snapshot ?? null);
      assertClean('the final completion', c, final ?? null);
      if (error) assertCleanError(c, error);
      if (refused) assert.ok(error, `${c.name}: warden did not refuse the answer`);
      if (c.expect.allowed) assert.deepEqual(callNames(final), [c.expect.allowed]);
    });

    test(`${c.name}: bytes on the wire (${c.why})`, () => onTheWire(c));
  } else {
    test(`${c.name}: parsed answer (${c.why})`, async () => {
      let data, error;
      try {
        data = await client.chat.completions.create(params(c, false));
      } catch (err) {
        error = err;
      }
      assertClean('the answer', c, data ?? null);
      if (error) assertCleanError(c, error);
      if (refused) {
        assert.ok(error, `${c.name}: warden did not refuse the answer: ${JSON.stringify(data)}`);
        assert.equal(error.status, c.expect.status, `${c.name}: ${error}`);
      }
    });

    test(`${c.name}: bytes on the wire (${c.why})`, () => onTheWire(c));
  }
}

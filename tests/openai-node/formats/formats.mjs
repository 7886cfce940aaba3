// Runs the official `@anthropic-ai/sdk` and `openai` npm clients against
// warden's Anthropic Messages, OpenAI Responses and Embeddings endpoints
// (tests/integration/test_formats.c starts warden, three mock providers
// and passes what this file needs):
//
//   WARDEN_URL      http://127.0.0.1:PORT (no /v1)
//   WARDEN_KEY      a key of tenant t-eu: personal data, EEA routes only;
//                   routes [us, eu, de], each speaking every format
//   WARDEN_US_KEY   a key of tenant t-us: personal data, route [us] only
//   WARDEN_AGENT_KEY the key of agent bot (tenant t-eu): read_customer
//                   (personal), send_email (external sink), web_search
//   MOCK_EU_URL     the eu route's mock, for /_mock/config
//
// Every judgement is the official client's: what its parsed answer, its
// stream accumulator (finalMessage, finalResponse) and its error classes
// end with, never warden's own reading.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const URL = process.env.WARDEN_URL;
const KEY = process.env.WARDEN_KEY;
const US_KEY = process.env.WARDEN_US_KEY;
const AGENT_KEY = process.env.WARDEN_AGENT_KEY;
const MOCK_EU = process.env.MOCK_EU_URL;

if (!URL || !KEY || !US_KEY || !AGENT_KEY || !MOCK_EU)
  throw new Error('set WARDEN_URL, WARDEN_KEY, WARDEN_US_KEY, WARDEN_AGENT_KEY, MOCK_EU_URL');

const anth = (apiKey = KEY) =>
  new Anthropic({ apiKey, baseURL: URL, maxRetries: 0, timeout: 10000 });
const oai = (apiKey = KEY) =>
  new OpenAI({ apiKey, baseURL: `${URL}/v1`, maxRetries: 0, timeout: 10000 });

const MSG = { model: 'claude-x', max_tokens: 64 };
// Only what the agent may call first may be offered (send_email is not).
const TOOLS_A = [{ name: 'read_customer', input_schema: { type: 'object' } }];
const TOOLS_R = [{ type: 'function', name: 'read_customer', parameters: { type: 'object' } }];

async function rejection(fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('the request succeeded but an error was expected');
}

async function failNext(n, status) {
  const r = await fetch(`${MOCK_EU}/_mock/config`, {
    method: 'POST',
    body: JSON.stringify({ fail_next: n, status }),
  });
  assert.equal(r.status, 200);
}

// ---- Anthropic Messages ----

test('messages: a whole answer from the compliant route', async () => {
  const { data, response } = await anth().messages
    .create({ ...MSG, messages: [{ role: 'user', content: 'hello' }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.type, 'message');
  assert.equal(data.content[0].type, 'text');
  assert.match(data.content[0].text, /^eu: hello from eu/);
  assert.ok(response.headers.get('x-warden-decision'));
});

test('messages: streamed, the accumulator ends with the text', async () => {
  const stream = anth().messages.stream({ ...MSG, messages: [{ role: 'user', content: 'hi [[mock chunks=5]]' }] });
  const m = await stream.finalMessage();
  assert.equal(m.stop_reason, 'end_turn');
  assert.match(m.content[0].text, /^eu: hello from eu/);
});

test('messages: tool use, whole and streamed', async () => {
  const a = anth(AGENT_KEY);
  const m = await a.messages.create({ ...MSG, tools: TOOLS_A,
    messages: [{ role: 'user', content: 'who [[mock tool_call=read_customer]]' }] });
  const calls = m.content.filter((b) => b.type === 'tool_use');
  assert.deepEqual(calls.map((b) => b.name), ['read_customer']);
  assert.deepEqual(calls[0].input, { q: 'x' });
  const f = await a.messages.stream({ ...MSG, tools: TOOLS_A,
    messages: [{ role: 'user', content: 'who [[mock tool_call=read_customer]]' }] }).finalMessage();
  assert.deepEqual(f.content.filter((b) => b.type === 'tool_use').map((b) => b.name), ['read_customer']);
});

test('messages: a forbidden call is stopped before any of it reaches the stream accumulator', async () => {
  const stream = anth(AGENT_KEY).messages.stream({ ...MSG, tools: TOOLS_A,
    messages: [{ role: 'user', content: 'x [[mock tool_call=read_customer,send_email]]' }] });
  const seen = [];
  stream.on('streamEvent', (_e, snapshot) => {
    for (const b of snapshot.content) if (b.type === 'tool_use') seen.push(b.name);
  });
  const err = await rejection(() => stream.finalMessage());
  assert.ok(err instanceof Anthropic.APIError, `${err}`);
  assert.ok(!seen.includes('send_email'), `the client saw ${seen}`);
  assert.ok(seen.includes('read_customer'));
  const snap = stream.currentMessage;
  assert.ok(!JSON.stringify(snap ?? {}).includes('send_email'));
});

test('messages: count_tokens', async () => {
  const r = await anth().messages.countTokens({ model: 'claude-x',
    messages: [{ role: 'user', content: 'one two three four' }] });
  assert.equal(r.input_tokens, 4);
});

test('messages: errors surface as the SDK\'s error classes', async () => {
  let err = await rejection(() => anth('wk-nobody').messages.create({ ...MSG,
    messages: [{ role: 'user', content: 'x' }] }));
  assert.ok(err instanceof Anthropic.AuthenticationError, `${err?.constructor?.name}`);
  assert.equal(err.error?.type, 'error');
  err = await rejection(() => anth(US_KEY).messages.create({ ...MSG,
    messages: [{ role: 'user', content: 'x' }] }));
  assert.ok(err instanceof Anthropic.PermissionDeniedError, `${err?.constructor?.name}`);
  assert.match(err.message, /residency/);
  err = await rejection(() => anth().messages.create({ model: 'claude-x',
    messages: [{ role: 'user', content: 'x' }] }));
  assert.ok(err instanceof Anthropic.BadRequestError, `${err?.constructor?.name}`);
});

test('messages: fallback stays compliant', async () => {
  await failNext(1, 500);
  const m = await anth().messages.create({ ...MSG, messages: [{ role: 'user', content: 'x' }] });
  assert.match(m.content[0].text, /^de: /, 'fell back to the German route, never the US one');
});

// ---- OpenAI Responses ----

test('responses: whole and streamed', async () => {
  const r = await oai().responses.create({ model: 'gpt-x', input: 'hello' });
  assert.match(r.output_text, /^eu: hello from eu/);
  assert.match(r.id, /^resp_eu_/);
  const s = oai().responses.stream({ model: 'gpt-x', input: 'hello [[mock chunks=4]]' });
  const f = await s.finalResponse();
  assert.equal(f.status, 'completed');
  assert.match(f.output[0].content[0].text, /^eu: /);
});

test('responses: previous_response_id goes to the route that made it', async () => {
  const first = await oai().responses.create({ model: 'gpt-x', input: 'hello' });
  await failNext(1, 500);
  // The eu route fails once: a follow-up may not fall back elsewhere.
  const err = await rejection(() => oai().responses.create({ model: 'gpt-x',
    input: 'more', previous_response_id: first.id }));
  assert.ok(err instanceof OpenAI.APIError);
  const ok = await oai().responses.create({ model: 'gpt-x', input: 'more',
    previous_response_id: first.id });
  assert.match(ok.id, /^resp_eu_/);
  const unknown = await rejection(() => oai().responses.create({ model: 'gpt-x',
    input: 'more', previous_response_id: 'resp_forged' }));
  assert.ok(unknown instanceof OpenAI.APIError);
});

test('responses: a forbidden call never reaches the stream accumulator', async () => {
  const s = oai(AGENT_KEY).responses.stream({ model: 'gpt-x', tools: TOOLS_R,
    input: 'x [[mock tool_call=read_customer,send_email]]' });
  const seen = [];
  s.on('event', (e) => {
    if (e.type === 'response.output_item.added' && e.item.type === 'function_call') seen.push(e.item.name);
  });
  // ResponseStream throws the Responses error event itself (the API's
  // own shape: {type: 'error', code, message}).
  const err = await rejection(() => s.finalResponse());
  assert.equal(err?.type, 'error', `${JSON.stringify(err)}`);
  assert.equal(err.code, 'tool_policy');
  assert.ok(!seen.includes('send_email'), `the client saw ${seen}`);
  assert.deepEqual(seen, ['read_customer']);
});

test('responses: residency denial and fallback', async () => {
  const err = await rejection(() => oai(US_KEY).responses.create({ model: 'gpt-x', input: 'x' }));
  assert.ok(err instanceof OpenAI.PermissionDeniedError, `${err?.constructor?.name}`);
  assert.equal(err.code, 'residency');
  await failNext(1, 500);
  const r = await oai().responses.create({ model: 'gpt-x', input: 'x' });
  assert.match(r.output_text, /^de: /);
});

// ---- Embeddings ----

test('embeddings: vectors, residency denial', async () => {
  const e = await oai().embeddings.create({ model: 'emb-x', input: ['a', 'b'] });
  assert.equal(e.data.length, 2);
  assert.equal(e.data[0].embedding.length, 8);
  const err = await rejection(() => oai(US_KEY).embeddings.create({ model: 'emb-x', input: 'a' }));
  assert.ok(err instanceof OpenAI.PermissionDeniedError);
});

// ---- models in the caller's format ----

test('models: Anthropic callers get Anthropic\'s list', async () => {
  const page = await anth().models.list();
  assert.ok(page.data.length > 0);
  assert.equal(page.data[0].type, 'model');
  const o = await oai().models.list();
  assert.equal(o.data[0].object, 'model');
});

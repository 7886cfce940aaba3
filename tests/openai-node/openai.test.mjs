// Runs the official `openai` npm client against warden.
//
//   WARDEN_BASE_URL=http://127.0.0.1:18080/v1 WARDEN_KEY=wk-... node --test tests/openai-node/
//
// The `[[mock k=v]]` text inside message content is a directive for the mock
// provider (tests/mock/mock_provider.c); warden forwards message bodies as-is.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

// What warden answers when the upstream returns 500 and no other route is
// left. The bare mock provider answers 500 itself, so this test fails there.
const EXPECTED_UPSTREAM_5XX_STATUS = 502;

const MODEL = 'gpt-4o-mini';
const BASE_URL = process.env.WARDEN_BASE_URL;
const KEY = process.env.WARDEN_KEY;

if (!BASE_URL || !KEY) {
  throw new Error('set WARDEN_BASE_URL (e.g. http://127.0.0.1:18080/v1) and WARDEN_KEY');
}

function makeClient(apiKey = KEY) {
  return new OpenAI({ baseURL: BASE_URL, apiKey, maxRetries: 0, timeout: 10000 });
}

const client = makeClient();

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'search_kb',
      parameters: { type: 'object', properties: { q: { type: 'string' } } },
    },
  },
];

function assertJsonArgs(args) {
  assert.equal(typeof args, 'string', 'tool call arguments must be a string');
  assert.doesNotThrow(() => JSON.parse(args), `arguments is not JSON: ${JSON.stringify(args)}`);
}

// Runs `fn`, which must reject; returns the error.
async function rejection(fn) {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('request succeeded but an error was expected');
}

function describeErr(err) {
  return `${err?.constructor?.name} status=${err?.status} message=${JSON.stringify(err?.message)} ` +
    `error=${JSON.stringify(err?.error)}`;
}

test('chat completion', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] })
    .withResponse();

  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/i);
  assert.ok(Array.isArray(data.choices) && data.choices.length > 0, 'no choices');
  const choice = data.choices[0];
  assert.equal(typeof choice.message.content, 'string');
  assert.ok(choice.message.content.length > 0, 'empty content');
  assert.equal(choice.finish_reason, 'stop');
  assert.ok(data.usage && data.usage.total_tokens > 0, `usage.total_tokens not > 0: ${JSON.stringify(data.usage)}`);
});

// Its own test so that a missing header (the bare mock provider sends none;
// warden adds it) does not hide whether the completion itself worked.
test('chat completion response carries x-request-id', async () => {
  const response = await client.chat.completions
    .create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] })
    .asResponse();

  assert.equal(response.status, 200);
  const rid = response.headers.get('x-request-id');
  assert.ok(rid && rid.length > 0, 'response has no x-request-id header');
});

test('streamed chat completion', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'hello' }],
    stream: true,
  });

  const parts = [];
  let lastWithChoices;
  for await (const chunk of stream) {
    if (!chunk.choices || chunk.choices.length === 0) continue; // e.g. a usage-only chunk
    lastWithChoices = chunk;
    const c = chunk.choices[0].delta?.content;
    if (typeof c === 'string' && c.length > 0) parts.push(c);
  }

  assert.ok(parts.length >= 2, `expected >= 2 content chunks, got ${parts.length}`);
  assert.ok(parts.join('').length > 0, 'joined text is empty');
  assert.ok(lastWithChoices, 'no chunk carried choices');
  assert.equal(lastWithChoices.choices[0].finish_reason, 'stop');
});

test('chat with tools', async () => {
  const data = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'find it [[mock tool_call=search_kb]]' }],
    tools: TOOLS,
  });

  const choice = data.choices[0];
  assert.equal(choice.finish_reason, 'tool_calls');
  const calls = choice.message.tool_calls;
  assert.ok(Array.isArray(calls) && calls.length > 0, `no tool_calls: ${JSON.stringify(choice.message)}`);
  assert.equal(calls[0].type, 'function');
  assert.equal(calls[0].function.name, 'search_kb');
  assertJsonArgs(calls[0].function.arguments);
});

test('streamed chat with tools', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'find it [[mock tool_call=search_kb]]' }],
    tools: TOOLS,
    stream: true,
  });

  const calls = []; // accumulated by delta.tool_calls[i].index
  let finish;
  for await (const chunk of stream) {
    if (!chunk.choices || chunk.choices.length === 0) continue;
    const choice = chunk.choices[0];
    for (const tc of choice.delta?.tool_calls ?? []) {
      const i = tc.index ?? 0;
      calls[i] ??= { id: '', name: '', arguments: '' };
      if (tc.id) calls[i].id += tc.id;
      if (tc.function?.name) calls[i].name += tc.function.name;
      if (tc.function?.arguments) calls[i].arguments += tc.function.arguments;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }

  assert.equal(finish, 'tool_calls');
  assert.ok(calls.length > 0 && calls[0], 'no tool call deltas in the stream');
  assert.equal(calls[0].name, 'search_kb');
  assertJsonArgs(calls[0].arguments);
});

test('error: bad key is AuthenticationError 401', async () => {
  const bad = makeClient('wk-not-a-real-key');
  const err = await rejection(() =>
    bad.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] }),
  );
  assert.ok(err instanceof OpenAI.AuthenticationError, `not AuthenticationError: ${describeErr(err)}`);
  assert.equal(err.status, 401);
  const said = [err.error?.type, err.error?.code, err.error?.message, err.message]
    .filter((s) => typeof s === 'string')
    .join(' ');
  assert.match(said, /auth|key|unauthori[sz]ed|invalid/i, `error does not explain itself: ${describeErr(err)}`);
});

test(`error: upstream 500 surfaces as APIError ${EXPECTED_UPSTREAM_5XX_STATUS}`, async () => {
  const err = await rejection(() =>
    client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'fail please [[mock status=500]]' }],
    }),
  );
  assert.ok(err instanceof OpenAI.APIError, `not APIError: ${describeErr(err)}`);
  assert.equal(err.status, EXPECTED_UPSTREAM_5XX_STATUS, describeErr(err));
  assert.ok(err.error && typeof err.error.message === 'string', `err.error has no message: ${describeErr(err)}`);
});

test('error: malformed messages is BadRequestError 400', async () => {
  const err = await rejection(() =>
    client.chat.completions.create({ model: MODEL, messages: /** @type {any} */ ('not-an-array') }),
  );
  assert.ok(err instanceof OpenAI.BadRequestError, `not BadRequestError: ${describeErr(err)}`);
  assert.equal(err.status, 400);
});

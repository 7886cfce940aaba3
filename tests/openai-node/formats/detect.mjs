// Content detection on answers of every format (issue 20), judged by the
// official clients: a card number a provider streams in two deltas ends
// an Anthropic Messages stream with Anthropic's error event and an OpenAI
// Responses stream with its error event; neither client ever holds the
// whole number.  A whole Messages answer holding a private key is
// refused.  Run by tests/integration/test_formats.c (tests/fixtures/
// formats.yaml: card and secret watch answers) with WARDEN_URL and
// WARDEN_KEY as for formats.mjs.
//
// The mock answers "eu: Card 4111 1111" then " 1111 1111" (words=, '_'
// is a space): the request itself holds no card number.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

const URL = process.env.WARDEN_URL;
const KEY = process.env.WARDEN_KEY;

if (!URL || !KEY)
  throw new Error('set WARDEN_URL, WARDEN_KEY');

const anth = () => new Anthropic({ apiKey: KEY, baseURL: URL, maxRetries: 0,
  timeout: 10000 });
const oai = () => new OpenAI({ apiKey: KEY, baseURL: `${URL}/v1`,
  maxRetries: 0, timeout: 10000 });
const SPLIT = '[[mock words=Card_4111_1111,1111_1111 chunk_delay_ms=50]]';
const FULL = /4111 1111 1111 1111/;

test('messages: a card number split across two content_block_delta events '
  + 'ends the stream with the error event', async () => {
  const stream = await anth().messages.create({ model: 'claude-x',
    max_tokens: 64, stream: true,
    messages: [{ role: 'user', content: `det-m-split ${SPLIT}` }] });
  let text = '';
  let err;
  try {
    for await (const ev of stream)
      if (ev.type === 'content_block_delta')
        text += ev.delta.text ?? '';
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Anthropic.APIError, `no error: ${err} (${text})`);
  assert.match(err.message, /detector 'card'/);
  assert.equal(err.error?.type, 'error');
  assert.match(text, /Card 4111 1111$/, 'the first piece passed');
  assert.doesNotMatch(text + JSON.stringify(err), FULL);
});

test('messages: the stream helper\'s accumulator never holds the number',
  async () => {
    const s = anth().messages.stream({ model: 'claude-x', max_tokens: 64,
      messages: [{ role: 'user', content: `det-m-acc ${SPLIT}` }] });
    let err;
    try {
      await s.finalMessage();
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Anthropic.APIError, `${err}`);
    assert.doesNotMatch(JSON.stringify(s.currentMessage ?? {}), FULL);
  });

test('responses: a card number split across two output_text deltas ends '
  + 'the stream with the error event', async () => {
  const stream = await oai().responses.create({ model: 'gpt-x', stream: true,
    input: `det-r-split ${SPLIT}` });
  let text = '';
  let err;
  const types = [];
  try {
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta')
        text += ev.delta;
      if (ev.type === 'error')
        throw Object.assign(new Error(ev.message), { code: ev.code });
    }
  } catch (e) {
    err = e;
  }
  assert.ok(err, `the stream ended without an error: ${types}`);
  assert.match(`${err.message} ${err.code ?? ''} ${JSON.stringify(err.error ?? {})}`,
    /card/);
  assert.match(text, /Card 4111 1111$/);
  assert.doesNotMatch(text, FULL);
  assert.ok(!types.includes('response.completed'), `${types}`);
});

test('messages: a whole answer holding a private key is refused', async () => {
  let err;
  try {
    await anth().messages.create({ model: 'claude-x', max_tokens: 64,
      messages: [{ role: 'user', content:
        'det-m-whole [[mock words=-----BEGIN_RSA_PRIVATE,KEY-----]]' }] });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof Anthropic.PermissionDeniedError,
    `${err?.constructor?.name}: ${err}`);
  assert.match(err.message, /detector 'secret'/);
  assert.doesNotMatch(JSON.stringify(err), /PRIVATE KEY/);
});

// detect.test.mjs - content detection on MCP tools/call (issue 20), with
// the official @modelcontextprotocol/sdk client through warden's
// /mcp/crm, against server.mjs.  Run by tests/integration/test_mcp.c
// (same environment as mcp.test.mjs), whose rules add:
//   detect: iban -> financial; secret -> block; card -> financial,
//           redact; pattern ticket (TKT-nnnnnn) watching answers
//   flows:  no-fin-out: financial may not go to an external sink
// The tenant declares no financial data: only the content says so.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const base = process.env.WARDEN_URL;
const key = process.env.MCP_KEY;
const IBAN = 'DE89 3704 0044 0532 0130 00';
const SECRET = 'sk-proj-Zq8vT3kLm2Xw9Rb7Yc4Nd6Pf1Hs5Jg0a';
const CARD = '4111 1111 1111 1111';

async function connect(session) {
  const client = new Client({ name: 'warden-detect-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(
    new URL(`${base}/mcp/crm`), { requestInit: { headers: {
      Authorization: `Bearer ${key}`, 'X-Warden-Session': session } } });
  await client.connect(transport);
  await client.listTools();	// pins the definitions on first sight
  return client;
}

const seen = async () => (await fetch(
  `${process.env.MCP_SERVER_URL}/_control/seen`)).json();
const textOf = (r) => r.content.map((c) => c.text).join('');

test('an IBAN in the arguments is financial: the flow rule keeps it from '
  + 'an external sink', async () => {
  const c = await connect('det-iban');
  // Without one, the same call passes.
  assert.match(textOf(await c.callTool({ name: 'send_email',
    arguments: { to: 'ops@example.com', body: 'det-plain-mcp' } })), /sent to/);
  await assert.rejects(c.callTool({ name: 'send_email',
    arguments: { to: 'ops@example.com', body: `det-iban-mcp pay to ${IBAN}` } }),
  (e) => e.code === -32010 && /no-fin-out/.test(e.message) &&
    !e.message.includes('0532'));
  // A sink the rule does not name may still get it.
  assert.match(textOf(await c.callTool({ name: 'search_docs',
    arguments: { q: `det-iban-ok ${IBAN}` } })), /3 results/);
  const s = await seen();
  assert.ok(!s.args.some((a) => (a.body ?? '').includes('det-iban-mcp')));
  await c.close();
});

test('a secret in nested arguments is blocked, naming the detector only',
  async () => {
    const c = await connect('det-secret');
    let err;
    try {
      await c.callTool({ name: 'search_docs',
        arguments: { q: 'det-secret-mcp', filters: { deep: [{ k: SECRET }] } } });
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'the call was not refused');
    assert.equal(err.code, -32010);
    assert.match(err.message, /detector 'secret'/);
    assert.ok(!JSON.stringify(err).includes('Zq8vT3kLm2Xw9Rb7'));
    const s = await seen();
    assert.ok(!JSON.stringify(s).includes('Zq8vT3kLm2Xw9Rb7'));
    assert.ok(!JSON.stringify(s).includes('det-secret-mcp'));
    await c.close();
  });

test('a card number in the arguments reaches the server redacted',
  async () => {
    const c = await connect('det-card');
    const r = await c.callTool({ name: 'search_docs',
      arguments: { q: `det-card-mcp ${CARD}` } });
    assert.match(textOf(r), /3 results for det-card-mcp \[REDACTED:card\]/);
    const s = await seen();
    const got = s.args.find((a) => (a.q ?? '').startsWith('det-card-mcp'));
    assert.equal(got.q, 'det-card-mcp [REDACTED:card]');
    assert.ok(!JSON.stringify(s).includes('1111 1111'));
    await c.close();
  });

test('a tool result holding what an answer detector watches is withheld',
  async () => {
    const c = await connect('det-result');
    // The server echoes q: its result carries the ticket number.
    await assert.rejects(c.callTool({ name: 'search_docs',
      arguments: { q: 'det-result TKT-123456' } }),
    (e) => e.code === -32010 && /detector 'ticket'/.test(e.message) &&
      !e.message.includes('123456'));
    assert.match(textOf(await c.callTool({ name: 'search_docs',
      arguments: { q: 'det-result-ok' } })), /3 results/);
    await c.close();
  });

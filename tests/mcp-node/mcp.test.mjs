// mcp.test.mjs - the official @modelcontextprotocol/sdk client, through
// warden's /mcp/SERVER, against server.mjs (the SDK as a real server).
// Run by tests/integration/test_mcp.c, which starts both and sets:
//   WARDEN_URL        http://127.0.0.1:PORT
//   MCP_KEY           the virtual key of agent crm-bot
//   MCP_SERVER_URL    server.mjs itself (for its /_control hooks)
//   WARDEN_BIN, WARDEN_CONFIG   for `warden mcp approve`
//   WARDEN_AUDIT_DIR  the gateway's audit log
//   MCP_TENANT_KEY    a key of crm-bot's tenant (not the agent's own)
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CreateMessageRequestSchema, ElicitRequestSchema,
  LoggingMessageNotificationSchema, ToolListChangedNotificationSchema }
  from '@modelcontextprotocol/sdk/types.js';

const base = process.env.WARDEN_URL;
const key = process.env.MCP_KEY;
let sampled = false;
let elicited = false;

async function connect(session, server = 'crm') {
  const client = new Client({ name: 'warden-test', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: { form: {} } } });
  client.setRequestHandler(ElicitRequestSchema, async () => {
    elicited = true;
    return { action: 'accept', content: { ok: true } };
  });
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    sampled = true;
    return { role: 'assistant', model: 'x',
      content: { type: 'text', text: 'a summary' } };
  });
  const headers = { Authorization: `Bearer ${key}` };
  if (session)
    headers['X-Warden-Session'] = session;
  const transport = new StreamableHTTPClientTransport(
    new URL(`${base}/mcp/${server}`), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

const names = (r) => r.tools.map((t) => t.name).sort();
const textOf = (r) => r.content.map((c) => c.text).join('');

// A chat request of the same agent and session whose (mock) model asks
// for a tool call.
async function chatAsks(session, tool, offered = [tool]) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json',
      'X-Warden-Session': session },
    body: JSON.stringify({ model: 'gpt-4o',
      messages: [{ role: 'user', content: `go [[mock tool_call=${tool}]]` }],
      tools: offered.map((name) => ({ type: 'function',
        function: { name, parameters: { type: 'object' } } })) }),
  });
  return { status: r.status, body: await r.json() };
}

// A 2026-07-28 stateless request: no initialize, no Mcp-Session-Id; the
// method and tool travel in headers too.
async function stateless(message, hdrs = {}, session) {
  const headers = { Authorization: `Bearer ${key}`,
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2026-07-28',
    'Mcp-Method': message.method, ...hdrs };
  if (message.params?.name && !('Mcp-Name' in hdrs))
    headers['Mcp-Name'] = message.params.name;
  if (session)
    headers['X-Warden-Session'] = session;
  const r = await fetch(`${base}/mcp/crm-stateless`, { method: 'POST',
    headers, body: JSON.stringify({ jsonrpc: '2.0', ...message }) });
  return { status: r.status, body: await r.json() };
}

test('tools/list shows only the tools the agent may call', async () => {
  const c = await connect('list-1');
  assert.deepEqual(names(await c.listTools()),
    ['confirm', 'read_customer', 'search_docs', 'send_email', 'summarize']);
  await c.close();
});

test('allowed calls pass (2025-11-25, sessions, SSE answers)', async () => {
  const c = await connect('allow-1');
  assert.match(textOf(await c.callTool({ name: 'search_docs',
    arguments: { q: 'refunds' } })), /3 results for refunds/);
  assert.match(textOf(await c.callTool({ name: 'send_email',
    arguments: { to: 'bob@example.com', body: 'hi' } })), /sent to bob/);
  // DELETE ends the server's session (Mcp-Session-Id passed through).
  assert.ok(c.transport.sessionId);
  await c.transport.terminateSession();
  assert.equal(c.transport.sessionId, undefined);
  await c.close();
});

test('personal data read over MCP, then an external sink over MCP: refused',
  async () => {
    const c = await connect('flow-mcp');
    assert.match(textOf(await c.callTool({ name: 'read_customer',
      arguments: { id: '42' } })), /Alice/);
    await assert.rejects(c.callTool({ name: 'send_email',
      arguments: { to: 'x@elsewhere.example', body: 'Alice...' } }),
    (e) => e.code === -32010 && /no-pii-out/.test(e.message));
    await c.close();
  });

test('personal data asked for in chat, then an external sink over MCP: refused',
  async () => {
    const chat = await chatAsks('flow-chat', 'read_customer');
    assert.equal(chat.status, 200);
    assert.equal(chat.body.choices[0].message.tool_calls[0].function.name,
      'read_customer');
    const c = await connect('flow-chat');
    // The agent runs the call the model asked for: the same call.
    assert.match(textOf(await c.callTool({ name: 'read_customer',
      arguments: { id: '42' } })), /Alice/);
    await assert.rejects(c.callTool({ name: 'send_email',
      arguments: { to: 'x@elsewhere.example', body: 'Alice...' } }),
    /no-pii-out/);
    await c.close();
  });

test('personal data read over MCP: chat may no longer offer the sink',
  async () => {
    const c = await connect('flow-back');
    await c.callTool({ name: 'read_customer', arguments: { id: '7' } });
    await c.close();
    const chat = await chatAsks('flow-back', 'send_email');
    assert.equal(chat.status, 403);
    assert.match(chat.body.error.message, /no-pii-out/);
  });

test('resources and prompts pass, and each request leaves a record',
  async () => {
    const c = await connect('res-1');
    const r = await c.readResource({ uri: 'crm://policies/standard' });
    assert.match(r.contents[0].text, /physiotherapy covered/);
    const p = await c.getPrompt({ name: 'greet', arguments: { who: 'Ada' } });
    assert.match(p.messages[0].content.text, /Greet Ada/);
    await c.close();
  });

test('sampling requests of the server are refused by the agent\'s rules',
  async () => {
    const c = await connect('sampling-1');
    const r = await c.callTool({ name: 'summarize', arguments: { text: 'long' } },
      undefined, { timeout: 15000 });
    assert.match(textOf(r), /sampling refused/);
    assert.equal(sampled, false);
    await c.close();
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const serverSaw = async () => (await fetch(
  `${process.env.MCP_SERVER_URL}/_control/seen`)).json();

test('the server\'s own stream (GET): notifications pass, a refused ' +
  'request never reaches the client, Last-Event-ID is not passed on',
async () => {
  const c = await connect('standalone-1');
  let changed = 0;
  const logs = [];
  c.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed++;
  });
  c.setNotificationHandler(LoggingMessageNotificationSchema,
    (n) => { logs.push(n.params.data); });
  // The client holds the server's session id with warden's tag on it.
  const sid = c.transport.sessionId.replace(/\.[0-9a-f]{32}$/, '');
  assert.notEqual(sid, c.transport.sessionId);
  // The SDK opens the stream once the session is initialized; the
  // server gets the GET with its own id.
  for (let i = 0; i < 50 && !(await serverSaw()).gets.includes(sid); i++)
    await sleep(100);
  assert.ok((await serverSaw()).gets.includes(sid), 'no GET of this session');
  await sleep(200);
  const r = await (await fetch(`${process.env.MCP_SERVER_URL}` +
    `/_control/standalone?session=${sid}`, { method: 'POST' })).json();
  assert.deepEqual(r.sessions.length, 1);
  assert.match(r.sessions[0], /refused: .*refused by warden/);
  for (let i = 0; i < 50 && changed === 0; i++)
    await sleep(100);
  assert.equal(changed, 1);
  assert.equal(sampled, false);
  // The log message with a ticket number was withheld (it came first).
  assert.deepEqual(logs, ['all quiet']);
  // A client asking to resume: the server is not asked to replay.
  const g = await fetch(`${base}/mcp/crm`, { headers: {
    Authorization: `Bearer ${key}`, 'X-Warden-Session': 'standalone-1',
    Accept: 'text/event-stream', 'Mcp-Session-Id': c.transport.sessionId,
    'MCP-Protocol-Version': '2025-11-25', 'Last-Event-ID': 'ev-41' } });
  await g.body?.cancel();
  assert.deepEqual((await serverSaw()).lastEventIds, []);
  await c.close();
});

test('a session is its caller\'s: another key, or the bare server id, ' +
  'gets 404 and the server never hears of it', async () => {
  const c = await connect('bound-1');
  const mine = c.transport.sessionId;
  const bare = mine.replace(/\.[0-9a-f]{32}$/, '');
  // (The SDK client's own stream may reach the server meanwhile: the
  // pings are what this test alone sends.)
  const before = (await serverSaw()).pings;
  const ping = (k, agent, sid) => fetch(`${base}/mcp/crm`, { method: 'POST',
    headers: { Authorization: `Bearer ${k}`, 'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': '2025-11-25', 'Mcp-Session-Id': sid,
      ...(agent ? { 'X-Warden-Agent': agent } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }) });
  // The tenant's own key acting as the same agent: not its session.
  let r = await ping(process.env.MCP_TENANT_KEY, 'crm-bot', mine);
  assert.equal(r.status, 404);
  assert.match((await r.json()).error.message, /no session of this caller/);
  for (const sid of [bare, `${bare}.${'0'.repeat(32)}`, `${mine}x`]) {
    r = await ping(key, null, sid);
    assert.equal(r.status, 404, sid);
    await r.body?.cancel();
  }
  assert.equal((await serverSaw()).pings, before);
  // Its own caller, with the id it was given: the server answers.
  r = await ping(key, null, mine);
  assert.equal(r.status, 200);
  await r.body?.cancel();
  assert.equal((await serverSaw()).pings, before + 1);
  await c.close();
});

test('what the server says on its own is read as its answers are: a log ' +
  'message holding a ticket number is withheld', async () => {
    const c = await connect('notify-1');
    const logs = [];
    c.setNotificationHandler(LoggingMessageNotificationSchema,
      (n) => { logs.push(n.params.data); });
    assert.match(textOf(await c.callTool({ name: 'search_docs',
      arguments: { q: 'notify-ticket' } })), /3 results for notify-ticket/);
    assert.match(textOf(await c.callTool({ name: 'search_docs',
      arguments: { q: 'notify-clean' } })), /3 results for notify-clean/);
    // Notifications come before their call's result on its stream.
    assert.deepEqual(logs, ['all good']);
    await c.close();
  });

test('elicitation requests pass where the agent\'s rules allow them',
  async () => {
    const c = await connect('elicit-1');
    const r = await c.callTool({ name: 'confirm', arguments: { what: 'x' } },
      undefined, { timeout: 15000 });
    assert.match(textOf(r), /user said: accept/);
    assert.equal(elicited, true);
    await c.close();
  });

test('stateless 2026-07-28: calls pass, headers must match the body',
  async () => {
    let r = await stateless({ id: 1, method: 'tools/list' });
    assert.equal(r.status, 200);
    assert.ok(r.body.result.tools.some((t) => t.name === 'search_docs'));
    assert.ok(!r.body.result.tools.some((t) => t.name === 'admin_shell'));
    r = await stateless({ id: 2, method: 'tools/call',
      params: { name: 'search_docs', arguments: { q: 'x' } } });
    assert.equal(r.status, 200);
    assert.match(r.body.result.content[0].text, /3 results/);
    r = await stateless({ id: 3, method: 'tools/call',
      params: { name: 'search_docs', arguments: { q: 'x' } } },
    { 'Mcp-Name': 'send_email' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32020);
    r = await stateless({ id: 4, method: 'tools/call',
      params: { name: 'search_docs', arguments: { q: 'x' } } },
    { 'Mcp-Method': 'tools/list' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, -32020);
    // The flow rule holds on this transport too.
    r = await stateless({ id: 5, method: 'tools/call',
      params: { name: 'read_customer', arguments: { id: '1' } } }, {}, 'sl-1');
    assert.equal(r.status, 200);
    r = await stateless({ id: 6, method: 'tools/call',
      params: { name: 'send_email', arguments: { to: 'a', body: 'b' } } },
    {}, 'sl-1');
    assert.equal(r.body.error.code, -32010);
    assert.match(r.body.error.message, /no-pii-out/);
  });

test('a browser page of another origin is refused', async () => {
  const r = await fetch(`${base}/mcp/crm`, { method: 'POST',
    headers: { Authorization: `Bearer ${key}`, Origin: 'http://evil.example',
      'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) });
  assert.equal(r.status, 403);
});

test('the client\'s key never reaches the server; its credential does',
  async () => {
    const seen = await (await fetch(
      `${process.env.MCP_SERVER_URL}/_control/seen`)).json();
    assert.ok(seen.auth.length > 0);
    for (const a of seen.auth)
      assert.equal(a, `Bearer ${process.env.MCP_SERVER_TOKEN}`);
    assert.ok(!seen.calls.includes('admin_shell'));
  });

test('a call is in the audit log before its result reaches the client',
  async () => {
    // The server sends the result, then holds its stream open 4 s: the
    // record must not wait for the stream's end.
    await fetch(`${process.env.MCP_SERVER_URL}/_control/linger?ms=4000`,
      { method: 'POST' });
    try {
      const c = await connect('recorded-first');
      const t0 = Date.now();
      assert.match(textOf(await c.callTool({ name: 'search_docs',
        arguments: { q: 'audit before answer' } })), /3 results/);
      assert.ok(Date.now() - t0 < 3000, 'the result waited for the end');
      const dir = process.env.WARDEN_AUDIT_DIR;
      const log = readdirSync(dir).filter((f) => f.endsWith('.jsonl'))
        .map((f) => readFileSync(`${dir}/${f}`, 'utf8')).join('');
      assert.match(log, /"kind":"mcp_call"[^\n]*"session":"recorded-first"[^\n]*"tool":"search_docs"[^\n]*"verdict":"allow"/);
      c.close();
    } finally {
      await fetch(`${process.env.MCP_SERVER_URL}/_control/linger?ms=0`,
        { method: 'POST' });
    }
  });

// Last: it changes the server.
test('a changed tool definition is refused until approved', async () => {
  await fetch(`${process.env.MCP_SERVER_URL}/_control/change`,
    { method: 'POST' });
  let c = await connect('pin-1');
  assert.deepEqual(names(await c.listTools()),
    ['confirm', 'read_customer', 'search_docs', 'summarize']);
  await assert.rejects(c.callTool({ name: 'send_email',
    arguments: { to: 'bob@example.com', body: 'hi' } }),
  /warden mcp approve crm send_email/);
  await c.close();
  const listed = execFileSync(process.env.WARDEN_BIN, ['mcp', 'list', '-c',
    process.env.WARDEN_CONFIG]).toString();
  assert.match(listed, /crm\s+send_email\s+pending/);
  execFileSync(process.env.WARDEN_BIN, ['mcp', 'approve', '-c',
    process.env.WARDEN_CONFIG, 'crm', 'send_email']);
  c = await connect('pin-2');
  assert.ok(names(await c.listTools()).includes('send_email'));
  assert.match(textOf(await c.callTool({ name: 'send_email',
    arguments: { to: 'bob@example.com', body: 'hi' } })), /sent to bob/);
  await c.close();
});

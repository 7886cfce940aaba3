// converse_client.mjs - the official `openai` client streaming one chat
// through warden, for tests/integration/test_upstreams.c (a Bedrock
// Converse route: AWS event-stream frames become the SSE chunks this
// client reads).  Not a `node --test` file: the suite runs it with
//
//   WARDEN_BASE_URL=http://127.0.0.1:P/v1 WARDEN_KEY=wk-... \
//   MODEL=... PROMPT=... [TOOL=name] node tests/openai-node/converse_client.mjs
//
// and reads one JSON line: {"content", "tool_calls": [names], "finish",
// "usage"} or {"error": {"status", "code", "message"}}.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.WARDEN_BASE_URL,
  apiKey: process.env.WARDEN_KEY,
  maxRetries: 0,
  timeout: 10000,
});
const tools = process.env.TOOL
  ? [{ type: 'function', function: { name: process.env.TOOL, parameters: { type: 'object' } } }]
  : undefined;

try {
  const stream = await client.chat.completions.create({
    model: process.env.MODEL,
    stream: true,
    stream_options: { include_usage: true },
    messages: [{ role: 'user', content: process.env.PROMPT }],
    ...(tools ? { tools } : {}),
  });
  let content = '';
  let finish = null;
  let usage = null;
  const calls = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta?.content) content += choice.delta.content;
      for (const tc of choice.delta?.tool_calls ?? []) {
        if (tc.function?.name) calls[tc.index] = { name: tc.function.name, arguments: '' };
        if (tc.function?.arguments) calls[tc.index].arguments += tc.function.arguments;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  console.log(JSON.stringify({ content, tool_calls: calls, finish, usage }));
} catch (e) {
  console.log(JSON.stringify({ error: { status: e.status ?? null, code: e.code ?? e.error?.code ?? null, message: e.message } }));
}

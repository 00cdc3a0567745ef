// Drives sluice with the official `@anthropic-ai/sdk` package: `node anthropic.mjs CASE`.
// Env: SLUICE_BASE_URL (no /v1: the SDK adds it), SLUICE_KEY. One JSON line out.
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({
  baseURL: process.env.SLUICE_BASE_URL,
  apiKey: process.env.SLUICE_KEY || 'sk-none',
  maxRetries: 0,
  timeout: 20000,
});
const MODEL = process.env.SLUICE_MODEL || 'claude-3-5-haiku';
const WEATHER = {
  name: 'get_weather', description: 'Weather of a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] },
};

const cases = {
  async messages() {
    const r = await client.messages.create({ model: MODEL, max_tokens: 64, system: 'be brief',
      messages: [{ role: 'user', content: 'hello anthropic sdk' }] });
    return { id: r.id, type: r.type, role: r.role, text: r.content[0].text, stop: r.stop_reason, usage: r.usage };
  },
  async stream() {
    const s = client.messages.stream({ model: MODEL, max_tokens: 64, messages: [{ role: 'user', content: 'stream anthropic sdk' }] });
    let text = '';
    const types = [];
    let start_usage = null;
    s.on('text', (t) => { text += t; });
    s.on('streamEvent', (e) => {
      types.push(e.type);
      if (e.type === 'message_start') start_usage = { ...e.message.usage };
    });
    const final = await s.finalMessage();
    return { text, types, final_text: final.content[0].text, stop: final.stop_reason, usage: final.usage, start_usage };
  },
  async tools() {
    const messages = [{ role: 'user', content: 'weather in Paris? MOCK_TOOL' }];
    const r = await client.messages.create({ model: MODEL, max_tokens: 64, tools: [WEATHER], messages });
    const use = r.content.find((b) => b.type === 'tool_use');
    messages.push({ role: 'assistant', content: r.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'sunny' }] });
    const r2 = await client.messages.create({ model: MODEL, max_tokens: 64, tools: [WEATHER], messages });
    const s = client.messages.stream({ model: MODEL, max_tokens: 64, tools: [WEATHER], tool_choice: { type: 'any' },
      messages: [{ role: 'user', content: 'weather, streamed' }] });
    const sf = await s.finalMessage();
    const suse = sf.content.find((b) => b.type === 'tool_use');
    return { stop: r.stop_reason, name: use.name, id: use.id, input: use.input, second: r2.content[0].text,
             stream: { stop: sf.stop_reason, name: suse?.name, input: suse?.input } };
  },
  async auth_error() {
    try {
      await client.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
      return { thrown: null };
    } catch (e) {
      return { thrown: e.constructor.name, auth: e instanceof Anthropic.AuthenticationError, status: e.status, error_type: e.error?.error?.type ?? null };
    }
  },
  async headers() {
    const r = await client.messages.create({ model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'headers' }] },
      { headers: { 'anthropic-beta': process.env.SLUICE_BETA || 'prompt-caching-2024-07-31' } });
    return { id: r.id };
  },
  // ---- pending: sluice does not route these yet (issue 16, test_sdk_pending.py)
  async count_tokens() {
    const r = await client.messages.countTokens({ model: MODEL, system: 'be brief', messages: [{ role: 'user', content: 'count these tokens please' }] });
    const m = await client.messages.create({ model: MODEL, max_tokens: 16, system: 'be brief', messages: [{ role: 'user', content: 'count these tokens please' }] });
    return { input_tokens: r.input_tokens, usage_input: m.usage.input_tokens };
  },
  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push({ id: m.id, type: m.type });
    return { models: ids };
  },
  async cache_usage() {
    const big = 'a long shared prefix. '.repeat(40);
    const body = { model: MODEL, max_tokens: 16,
      system: [{ type: 'text', text: big, cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: 'cached question' }] };
    const a = await client.messages.create(body);
    const b = await client.messages.create(body);
    return { first: a.usage, second: b.usage };
  },
};

const name = process.argv[2];
if (!cases[name]) {
  console.log(JSON.stringify({ error: `no case ${name}` }));
  process.exit(2);
}
try {
  console.log(JSON.stringify(await cases[name]()));
} catch (e) {
  console.log(JSON.stringify({ error: String(e), name: e?.constructor?.name, status: e?.status ?? null }));
  process.exit(1);
}

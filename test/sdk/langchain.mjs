// Drives sluice with LangChain JS (@langchain/openai, @langchain/anthropic,
// @langchain/core): `node langchain.mjs CASE`. Env: SLUICE_BASE_URL (…/v1),
// SLUICE_KEY, SLUICE_MODEL, SLUICE_API (chat | responses | messages).
// Prints one JSON line for test/integration/test_sdk_frameworks.py.
import { ChatOpenAI } from '@langchain/openai';
import { ChatAnthropic } from '@langchain/anthropic';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';

const base = process.env.SLUICE_BASE_URL, key = process.env.SLUICE_KEY || 'sk-none';
const MODEL = process.env.SLUICE_MODEL || 'gpt-4o-mini';
const API = process.env.SLUICE_API || 'chat';
function llm() {
  if (API === 'messages')  // the Anthropic client appends /v1 itself
    return new ChatAnthropic({ model: MODEL, apiKey: key, anthropicApiUrl: base.replace(/\/v1$/, ''), maxRetries: 0 });
  return new ChatOpenAI({ model: MODEL, apiKey: key, configuration: { baseURL: base }, maxRetries: 0,
                          useResponsesApi: API === 'responses' });
}
const weather = tool(async ({ city }) => `sunny in ${city}`, {
  name: 'get_weather', description: 'Weather of a city',
  schema: z.object({ city: z.string(), days: z.number().int() }),
});
const text = (m) => typeof m.content === 'string' ? m.content : m.content.map((p) => p.text ?? '').join('');

const cases = {
  async invoke() {
    const m = await llm().invoke('hello langchain');
    return { text: text(m), usage: m.usage_metadata, meta: m.response_metadata?.model_name ?? m.response_metadata?.model };
  },
  async stream() {
    let acc = null, chunks = 0;
    for await (const c of await llm().stream('stream langchain')) { acc = acc ? acc.concat(c) : c; chunks++; }
    return { text: text(acc), chunks, usage: acc.usage_metadata };
  },
  async tools() {
    const m = llm().bindTools([weather]);
    const q = new HumanMessage('what is the weather? MOCK_TOOL');
    const r = await m.invoke([q]);
    const call = r.tool_calls[0];
    const out = await weather.invoke(call);
    const r2 = await m.invoke([q, r, out instanceof ToolMessage ? out : new ToolMessage({ content: String(out), tool_call_id: call.id })]);
    return { name: call.name, args: call.args, id: call.id, second: text(r2), calls2: r2.tool_calls.length };
  },
  async structured() {
    const m = llm().withStructuredOutput(z.object({ city: z.string(), days: z.number().int() }), { name: 'forecast' });
    const o = await m.invoke('forecast MOCK_REPLY:{"city":"Paris","days":3}');
    return { object: o };
  },
};

const c = cases[process.argv[2]];
if (!c) { console.log(JSON.stringify({ error: 'unknown case ' + process.argv[2] })); process.exit(1); }
try {
  console.log(JSON.stringify(await c()));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message || e), name: e?.name, status: e?.status }));
  process.exit(1);
}

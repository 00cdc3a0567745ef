// Drives sluice with the OpenAI Agents SDK (@openai/agents, Responses API by
// default): `node agents.mjs CASE`. Env: SLUICE_BASE_URL (…/v1), SLUICE_KEY,
// SLUICE_MODEL, SLUICE_API (responses | chat). Prints one JSON line for
// test/integration/test_sdk_frameworks.py.
import OpenAI from 'openai';
import { Agent, run, tool, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled } from '@openai/agents';
import { z } from 'zod';

setTracingDisabled(true);  // no traces sent anywhere but sluice
setDefaultOpenAIClient(new OpenAI({ baseURL: process.env.SLUICE_BASE_URL, apiKey: process.env.SLUICE_KEY || 'sk-none',
                                    maxRetries: 0, timeout: 20000 }));
if (process.env.SLUICE_API === 'chat') setOpenAIAPI('chat_completions');
const MODEL = process.env.SLUICE_MODEL || 'gpt-4o-mini';
let calls = 0;
const weather = tool({
  name: 'get_weather', description: 'Weather of a city',
  parameters: z.object({ city: z.string(), days: z.number().int() }),
  execute: async ({ city, days }) => { calls++; return `sunny in ${city} for ${days} days`; },
});
const agent = (extra = {}) => new Agent({ name: 'weather', instructions: 'be brief', model: MODEL, tools: [weather], ...extra });
const usage = (r) => { const u = r.state.usage; return { requests: u.requests, input: u.inputTokens, output: u.outputTokens }; };
const items = (r) => r.newItems.map((i) => i.type);

const cases = {
  async run() {
    const r = await run(agent(), 'what is the weather? MOCK_TOOL');
    const call = r.newItems.find((i) => i.type === 'tool_call_item')?.rawItem;
    return { final: r.finalOutput, items: items(r), calls, name: call?.name, args: call && JSON.parse(call.arguments),
             usage: usage(r) };
  },
  async stream() {
    const r = await run(agent(), 'weather, streamed MOCK_TOOL', { stream: true });
    let text = '';
    for await (const t of r.toTextStream()) text += t;
    await r.completed;
    return { final: r.finalOutput, text, items: items(r), calls, usage: usage(r) };
  },
  async output() {
    const r = await run(agent({ tools: [], outputType: z.object({ city: z.string(), days: z.number().int() }) }),
                        'forecast MOCK_REPLY:{"city":"Paris","days":3}');
    return { final: r.finalOutput, usage: usage(r) };
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

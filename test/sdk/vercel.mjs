// Drives sluice with the Vercel AI SDK (`ai` + @ai-sdk/openai + @ai-sdk/anthropic):
// `node vercel.mjs CASE`. Env: SLUICE_BASE_URL (…/v1), SLUICE_KEY, SLUICE_MODEL.
// Prints one JSON line for test/integration/test_sdk_frameworks.py; exits 1
// with {"error": …} on an unexpected throw. openai(model) speaks the Responses
// API, openai.chat(model) chat completions, anthropic(model) /v1/messages.
import { generateText, streamText, generateObject, tool, stepCountIs } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAnthropic } from '@ai-sdk/anthropic';
import { z } from 'zod';

const base = process.env.SLUICE_BASE_URL, key = process.env.SLUICE_KEY || 'sk-none';
const openai = createOpenAI({ baseURL: base, apiKey: key });
const anthropic = createAnthropic({ baseURL: base, apiKey: key });
const MODEL = process.env.SLUICE_MODEL || 'gpt-4o-mini';
const model = (api) => api === 'messages' ? anthropic(MODEL) : api === 'chat' ? openai.chat(MODEL) : openai(MODEL);
const API = process.env.SLUICE_API || 'responses';
const opts = { maxRetries: 0 };
const weather = tool({
  description: 'Weather of a city',
  inputSchema: z.object({ city: z.string(), days: z.number().int() }),
  execute: async ({ city }) => `sunny in ${city}`,
});

const cases = {
  async text() {
    const r = await generateText({ ...opts, model: model(API), prompt: 'hello vercel' });
    return { text: r.text, finish: r.finishReason, usage: r.usage };
  },
  async stream() {
    const r = streamText({ ...opts, model: model(API), prompt: 'stream vercel',
      onError: ({ error }) => { throw error; } });
    let text = '', parts = 0;
    for await (const t of r.textStream) { text += t; parts++; }
    return { text, parts, finish: await r.finishReason, usage: await r.usage };
  },
  async tools() {
    const r = await generateText({ ...opts, model: model(API), tools: { get_weather: weather },
      stopWhen: stepCountIs(3), prompt: 'what is the weather? MOCK_TOOL' });
    const call = r.steps[0].toolCalls[0];
    return { steps: r.steps.length, name: call?.toolName, args: call?.input,
             result: r.steps[0].toolResults[0]?.output, text: r.text, finish: r.finishReason };
  },
  async tools_stream() {
    const r = streamText({ ...opts, model: model(API), tools: { get_weather: weather },
      stopWhen: stepCountIs(3), prompt: 'weather, streamed MOCK_TOOL', onError: ({ error }) => { throw error; } });
    let text = '';
    for await (const t of r.textStream) text += t;
    const steps = await r.steps;
    const call = steps[0].toolCalls[0];
    return { steps: steps.length, name: call?.toolName, args: call?.input, text };
  },
  async object() {
    const r = await generateObject({ ...opts, model: model(API),
      schema: z.object({ city: z.string(), days: z.number().int() }),
      prompt: 'forecast MOCK_REPLY:{"city":"Paris","days":3}' });
    return { object: r.object, finish: r.finishReason, usage: r.usage };
  },
};

const c = cases[process.argv[2]];
if (!c) { console.log(JSON.stringify({ error: 'unknown case ' + process.argv[2] })); process.exit(1); }
try {
  console.log(JSON.stringify(await c()));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.message || e), name: e?.name, status: e?.statusCode,
    body: String(e?.responseBody ?? '').slice(0, 800), url: e?.url, cause: String(e?.cause?.message ?? '') }));
  process.exit(1);
}

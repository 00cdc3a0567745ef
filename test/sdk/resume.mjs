// A client that loses its stream and resumes it, with the official `openai`
// package: `node resume.mjs drop_resume`. Env: SLUICE_BASE_URL (…/v1),
// SLUICE_KEY, SLUICE_RID (the x-request-id of the first attempt), SLUICE_KEEP
// (events read before the drop). Each chunk the SDK yields is one SSE event,
// so after N chunks the last event id sluice sent is `${RID}-${N}`.
import OpenAI from 'openai';

const client = new OpenAI({
  baseURL: process.env.SLUICE_BASE_URL,
  apiKey: process.env.SLUICE_KEY || 'sk-none',
  maxRetries: 0,
  timeout: 20000,
});
const RID = process.env.SLUICE_RID;
const KEEP = Number(process.env.SLUICE_KEEP || 3);
const body = { model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'resume sdk' }] };
const text = (c) => c.choices[0]?.delta?.content || '';

const cases = {
  async drop_resume() {
    const s = await client.chat.completions.create(body, { headers: { 'x-request-id': RID } });
    let first = '', n = 0;
    for await (const c of s) {
      n++;
      first += text(c);
      if (n === KEEP) break; // leaving the loop aborts the request: the connection closes
    }
    await new Promise((r) => setTimeout(r, 200));
    const s2 = await client.chat.completions.create(body, { headers: { 'Last-Event-ID': `${RID}-${n}` } });
    let rest = '', m = 0, finish = null;
    for await (const c of s2) {
      m++;
      rest += text(c);
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
    }
    return { first, rest, text: first + rest, dropped_after: n, resumed_chunks: m, finish };
  },
};

const name = process.argv[2];
try {
  console.log(JSON.stringify(await cases[name]()));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message || e) }));
  process.exit(1);
}

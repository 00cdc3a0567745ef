// Drives sluice with the official `openai` package: `node openai.mjs CASE`.
// Env: SLUICE_BASE_URL (…/v1), SLUICE_KEY. Prints one JSON line for
// test/integration/test_sdk*.py to check; exits 1 with {"error": …} on a throw
// the case did not expect.
import OpenAI, { toFile } from 'openai';

const client = new OpenAI({
  baseURL: process.env.SLUICE_BASE_URL,
  apiKey: process.env.SLUICE_KEY || 'sk-none',
  maxRetries: 0,
  timeout: 20000,
});
const MODEL = process.env.SLUICE_MODEL || 'gpt-4o-mini';
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};
const R_WEATHER = { type: 'function', name: 'get_weather', description: 'Weather of a city', parameters: WEATHER.function.parameters, strict: false };

const cases = {
  async chat() {
    const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello sdk' }] });
    return { id: r.id, object: r.object, text: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
  },
  async chat_stream() {
    const s = await client.chat.completions.create({
      model: MODEL, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'stream sdk' }],
    });
    let text = '', chunks = 0, finish = null, usage = null;
    for await (const c of s) {
      chunks++;
      if (c.choices[0]?.delta?.content) text += c.choices[0].delta.content;
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
      if (c.usage) usage = c.usage;
    }
    return { text, chunks, finish, usage };
  },
  async tools() {
    const messages = [{ role: 'user', content: 'what is the weather? MOCK_TOOL' }];
    const r = await client.chat.completions.create({ model: MODEL, messages, tools: [WEATHER] });
    const call = r.choices[0].message.tool_calls[0];
    const args = JSON.parse(call.function.arguments);
    messages.push(r.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' });
    const r2 = await client.chat.completions.create({ model: MODEL, messages, tools: [WEATHER] });
    const s = await client.chat.completions.create({ model: MODEL, stream: true, tools: [WEATHER], tool_choice: 'required',
      messages: [{ role: 'user', content: 'weather, streamed' }] });
    let sargs = '', sname = null, sfinish = null;
    for await (const c of s) {
      const tc = c.choices[0]?.delta?.tool_calls?.[0];
      if (tc?.function?.name) sname = tc.function.name;
      if (tc?.function?.arguments) sargs += tc.function.arguments;
      if (c.choices[0]?.finish_reason) sfinish = c.choices[0].finish_reason;
    }
    return { finish: r.choices[0].finish_reason, name: call.function.name, id: call.id, args,
             second: r2.choices[0].message.content, stream: { name: sname, args: JSON.parse(sargs), finish: sfinish } };
  },
  async embeddings() {
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'], encoding_format: 'float' });
    return { n: r.data.length, dims: r.data[0].embedding.length, usage: r.usage };
  },
  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return { ids };
  },
  async auth_error() {
    try {
      await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
      return { thrown: null };
    } catch (e) {
      return { thrown: e.constructor.name, auth: e instanceof OpenAI.AuthenticationError, status: e.status, code: e.code ?? null };
    }
  },
  // ---- pending: sluice does not route these yet (issue 16, test_sdk_pending.py)
  async responses() {
    const r = await client.responses.create({ model: MODEL, input: 'hello responses', instructions: 'be brief' });
    return { id: r.id, object: r.object, status: r.status, text: r.output_text, usage: r.usage };
  },
  async responses_stream() {
    const s = await client.responses.create({ model: MODEL, input: 'stream responses', stream: true });
    const types = [], seq = [];
    let text = '', final = null;
    for await (const ev of s) {
      types.push(ev.type);
      seq.push(ev.sequence_number);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') final = ev.response;
    }
    return { types, seq, text, status: final?.status, usage: final?.usage, final_text: final?.output?.[0]?.content?.[0]?.text };
  },
  async responses_tools() {
    const r = await client.responses.create({ model: MODEL, input: 'weather please MOCK_TOOL', tools: [R_WEATHER] });
    const call = r.output.find((o) => o.type === 'function_call');
    const r2 = await client.responses.create({
      model: MODEL, tools: [R_WEATHER], previous_response_id: r.id,
      input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
    });
    return { name: call.name, call_id: call.call_id, args: JSON.parse(call.arguments), second: r2.output_text, second_id: r2.id, prev: r2.previous_response_id };
  },
  async responses_two_turns() {
    const r1 = await client.responses.create({ model: MODEL, input: 'my name is Ada' });
    const r2 = await client.responses.create({ model: MODEL, input: 'what is my name?', previous_response_id: r1.id });
    return { first: r1.id, second: r2.id, prev: r2.previous_response_id, text: r2.output_text };
  },
  async responses_state() {
    const r1 = await client.responses.create({ model: MODEL, input: 'remember me' });
    const got = await client.responses.retrieve(r1.id);
    const items = await client.responses.inputItems.list(r1.id);
    await client.responses.delete(r1.id);
    let gone = null;
    try { await client.responses.retrieve(r1.id); } catch (e) { gone = { name: e?.constructor?.name, status: e?.status }; }
    return { id: r1.id, got: got.id, text: got.output_text, items: items.data.map((i) => i.content?.[0]?.text), gone };
  },
  async files() {
    const bytes = Buffer.alloc(3000, 0x61);
    const f = await client.files.create({ file: await toFile(bytes, 'data.jsonl'), purpose: 'batch' });
    return { object: f.object, id: f.id, bytes: f.bytes, filename: f.filename, purpose: f.purpose };
  },
  async transcription() {
    const audio = Buffer.alloc(48000);
    for (let i = 0; i < audio.length; i++) audio[i] = (i * 7) & 0xff;
    const t = await client.audio.transcriptions.create({ file: await toFile(audio, 'hello.wav'), model: 'whisper-1' });
    return { text: t.text };
  },
  async speech() {
    const r = await client.audio.speech.create({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'hello there' });
    const buf = Buffer.from(await r.arrayBuffer());
    return { bytes: buf.length, type: r.headers.get('content-type'), head: buf.subarray(0, 3).toString('latin1') };
  },
  async moderations() {
    const r = await client.moderations.create({ model: 'omni-moderation-latest', input: ['fine', 'MOCK_FLAG bad'] });
    return { flagged: r.results.map((x) => x.flagged) };
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

// Drives the Vercel AI SDK's default (Responses API) models against the
// gateway whose base URL is argv[2] with key argv[3], and prints one JSON
// line per check for the Go test to assert on.
import { generateText, streamText, tool, jsonSchema } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';
import { createAzure } from '@ai-sdk/azure';

const [base, key] = process.argv.slice(2);
const providers = {
  openai: createOpenAI({ baseURL: `${base}/v1`, apiKey: key })('gpt-4o'),
  azure: createAzure({ baseURL: `${base}/openai/v1`, apiKey: key })('gpt-4o'),
};
const weather = tool({
  description: 'Current weather for a city',
  inputSchema: jsonSchema({ type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }),
  execute: async ({ city }) => ({ city, temperature: 21 }),
});
const steps = (x) => x.steps.length >= 2;

for (const [name, model] of Object.entries(providers)) {
  const out = { provider: name };
  const g = await generateText({ model, maxRetries: 0, prompt: 'My soundbar has no sound' });
  Object.assign(out, { text: g.text, finish: g.finishReason, inputTokens: g.usage.inputTokens, outputTokens: g.usage.outputTokens, id: g.response.id });
  const s = streamText({ model, maxRetries: 0, prompt: 'How do I reset my headphones?' });
  let streamed = '';
  for await (const d of s.textStream) streamed += d;
  Object.assign(out, { streamed, streamFinish: await s.finishReason });
  const t = await generateText({ model, maxRetries: 0, prompt: 'Weather in Paris?', tools: { get_weather: weather }, stopWhen: steps });
  out.toolSteps = t.steps.map((st) => ({ finish: st.finishReason, calls: st.toolCalls.map((c) => ({ name: c.toolName, input: c.input })), text: st.text }));
  const ts = streamText({ model, maxRetries: 0, prompt: 'Weather in Paris?', tools: { get_weather: weather }, stopWhen: steps });
  let toolStreamed = '';
  for await (const d of ts.textStream) toolStreamed += d;
  out.toolStreamed = toolStreamed;
  console.log(JSON.stringify(out));
}

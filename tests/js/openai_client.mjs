// The openai node client as users call it, pointed at a docextract service:
//   node openai_client.mjs BASE_URL API_KEY IMAGE_DATA_URI SCHEMA_JSON
import OpenAI from "openai";

const [baseUrl, apiKey, image, schemaJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0 });
const messages = [
  {
    role: "user",
    content: [
      { type: "image_url", image_url: { url: image } },
      { type: "text", text: "Which color is the image, how many shapes, and a label?" },
    ],
  },
];
const response_format = { type: "json_schema", json_schema: { name: "shapes", schema: JSON.parse(schemaJson), strict: true } };
const created = await client.chat.completions.create({ model: "tiny", messages, response_format, max_tokens: 200 });
let streamed = "";
let last = null;
const stream = await client.chat.completions.create({ model: "tiny", messages, response_format, stream: true });
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  last = chunk;
}
const completion = await client.completions.create({ model: "tiny", prompt: `![](${image})Describe it.`, max_tokens: 10 });
console.log(JSON.stringify({ created, streamed, last, completion }));

// @huggingface/inference as its docs show it, pointed at a docextract service:
//   node hf_client.mjs BASE_URL API_KEY IMAGE_DATA_URI SCHEMA_JSON
// Prints one JSON object with what the client returned, for tests/test_serve_http.py to check.
import { InferenceClient } from "@huggingface/inference";

const [baseUrl, apiKey, image, schemaJson] = process.argv.slice(2);
const client = new InferenceClient(apiKey, { endpointUrl: baseUrl });
const inputs = `![](${image})What is this a picture of?`;

const plain = await client.textGeneration({ inputs, parameters: { max_new_tokens: 12 } });
const constrained = await client.textGeneration({
  inputs,
  parameters: { max_new_tokens: 200, grammar: { type: "json", value: JSON.parse(schemaJson) } },
});
const chunks = [];
for await (const chunk of client.textGenerationStream({ inputs, parameters: { max_new_tokens: 12 } })) {
  chunks.push(chunk);
}
console.log(JSON.stringify({ plain, constrained, chunks }));

// End-to-end client for `llamaembed serve`: node client.mjs BASE_URL MODEL
//
// Drives the server the way its real clients do and checks the answers:
//   1. the official `openai` npm client (its default encoding is base64,
//      which it decodes to floats itself);
//   2. requests exactly as nv-ingest sends them: input_type passage,
//      truncate END, encoding_format float, one input per request, 16 in
//      parallel, after reading /v1/metadata's modelInfo[0].shortName;
//   3. WAYWO's calls: POST /embed {"documents": [...]} and GET /health.
// Prints one JSON line with the embeddings it got (the Go test compares them
// with the encoder's own) and exits 1 at the first failed check.
import OpenAI from "openai";

const [base, model] = process.argv.slice(2);
if (!base || !model) {
  console.error("usage: node client.mjs BASE_URL MODEL");
  process.exit(2);
}
let checks = 0;
function check(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
  checks++;
}
const near = (a, b, tol) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= tol);
const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

const QUERY = "how do I reset my password?";
const DOCS = [
  "To reset your password, open Settings, choose Security, and follow the instructions.",
  "Paris is the capital and most populous city of France.",
  "The mitochondria is the powerhouse of the cell.",
];

// 1. The openai client. The model suffix sets the input type, since the
// OpenAI API has no input_type field.
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: "ignored-by-default", maxRetries: 0, timeout: 30000 });
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, `models.list: ${JSON.stringify(models.data)}`);

const viaBase64 = await client.embeddings.create({ model: `${model}-query`, input: [QUERY] }); // default: base64
const viaFloat = await client.embeddings.create({ model: `${model}-query`, input: [QUERY], encoding_format: "float" });
const b64 = viaBase64.data[0].embedding;
const flt = viaFloat.data[0].embedding;
check(Array.isArray(b64) && b64.length > 0 && typeof b64[0] === "number", "openai decoded the base64 embedding to numbers");
// JSON floats are float32 values in shortest form: rounded back to float32
// they must be the base64 bits exactly.
check(near(b64, flt.map(Math.fround), 0), "base64 and float embeddings are identical");
check(Math.abs(norm(flt) - 1) < 1e-5, "embedding has unit norm");
check(viaBase64.model === `${model}-query` && viaBase64.object === "list", "response model and object");
check(viaBase64.usage.prompt_tokens > 0 && viaBase64.usage.total_tokens === viaBase64.usage.prompt_tokens, "usage");

// Extra body fields pass through the client: input_type and dimensions.
const passages = await client.embeddings.create({ model, input: DOCS, input_type: "passage", dimensions: 16, encoding_format: "float" });
check(passages.data.length === DOCS.length && passages.data.every((d, i) => d.index === i && d.embedding.length === 16), "dimensions 16, index order");
const passagesB64 = await client.embeddings.create({ model, input: DOCS, input_type: "passage", dimensions: 16 });
check(passagesB64.data.every((d, i) => near(d.embedding, passages.data[i].embedding.map(Math.fround), 0)), "base64 with dimensions equals float");

// Errors surface as the client's typed errors.
try {
  await client.embeddings.create({ model: "no-such-model", input: [QUERY] });
  check(false, "unknown model should fail");
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.status === 404, `unknown model: ${e}`);
}
try {
  await client.embeddings.create({ model, input: [QUERY] });
  check(false, "missing input_type should fail");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && String(e.message).includes("'input_type' parameter is required for asymmetric models"), `missing input_type: ${e}`);
}

// 2. nv-ingest: metadata, then one input per request, 16 in parallel.
const meta = await (await fetch(`${base}/v1/metadata`)).json();
const [shortName, version] = meta.modelInfo[0].shortName.split(":");
check(shortName === model && version, `metadata shortName ${meta.modelInfo[0].shortName}`);
const ready = await fetch(`${base}/v1/health/ready`);
check(ready.status === 200 && (await ready.json()).ready === true, "ready");
const texts = Array.from({ length: 32 }, (_, i) => `${DOCS[i % DOCS.length]} (chunk ${i})`);
const nvIngest = async (text) => {
  const r = await fetch(`${base}/v1/embeddings`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json", Authorization: "Bearer nvapi-placeholder" },
    body: JSON.stringify({ input: [text], model: shortName, encoding_format: "float", input_type: "passage", truncate: "END" }),
  });
  check(r.status === 200, `nv-ingest request status ${r.status}`);
  const j = await r.json();
  check(j.data.length === 1 && j.data[0].index === 0, "nv-ingest one embedding");
  return j.data[0].embedding;
};
const nvResults = new Array(texts.length);
for (let i = 0; i < texts.length; i += 16) {
  const part = await Promise.all(texts.slice(i, i + 16).map(nvIngest));
  part.forEach((e, k) => (nvResults[i + k] = e));
}
// The same texts in one batched request give the same vectors: batching
// never changes a text's embedding.
const batched = await client.embeddings.create({ model: `${model}-passage`, input: texts.slice(0, 16), encoding_format: "float" });
batched.data.forEach((d, i) => check(near(d.embedding, nvResults[i], 1e-6), `nv-ingest text ${i} equals its batched embedding`));

// 3. WAYWO.
const health = await (await fetch(`${base}/health`)).json();
check(health.status === "healthy" && health.model_loaded === true, `WAYWO /health ${JSON.stringify(health)}`);
const embedResp = await fetch(`${base}/embed`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ documents: DOCS }) });
check(embedResp.status === 200, `/embed status ${embedResp.status}`);
const waywo = (await embedResp.json()).embeddings;
check(waywo.length === DOCS.length, "/embed count");
const full = await client.embeddings.create({ model: `${model}-passage`, input: DOCS, encoding_format: "float" });
waywo.forEach((e, i) => check(near(e, full.data[i].embedding, 1e-6), `/embed document ${i} equals its passage embedding`));
const empty = await fetch(`${base}/embed`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ documents: [] }) });
check(empty.status === 400 && (await empty.json()).detail === "No documents provided", "/embed empty list");

console.log(JSON.stringify({ checks, query: flt, nvingest: nvResults.slice(0, 4), nvingest_texts: texts.slice(0, 4), waywo }));

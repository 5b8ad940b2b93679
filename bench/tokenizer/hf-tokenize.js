// hf-tokenize.js is the Hugging Face side of the tokenizer benchmark: the
// same job as `llamaembed tokenize`, JSONL {"text": ...} lines on stdin to
// {"ids": [...]} lines on stdout, with the Rust library's encodeBatch
// (which tokenizes a batch on all cores).
//
//   node hf-tokenize.js TOKENIZER_JSON [BATCH] < in.jsonl > out.jsonl
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@anush008/tokenizers");

async function main() {
  const [tokFile, batchArg] = process.argv.slice(2);
  const batch = Number(batchArg || 8192); // its fastest in our runs (1024: ~20% slower)
  const tok = Tokenizer.fromFile(tokFile);
  const lines = fs.readFileSync(0, "utf8").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const out = [];
  for (let i = 0; i < lines.length; i += batch) {
    const texts = lines.slice(i, i + batch).map((l) => JSON.parse(l).text);
    const encs = await tok.encodeBatch(texts, { addSpecialTokens: true });
    for (const e of encs) out.push('{"ids":[' + e.getIds().join(",") + "]}\n");
    if (out.length >= 4096) {
      fs.writeSync(1, out.join(""));
      out.length = 0;
    }
  }
  fs.writeSync(1, out.join(""));
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});

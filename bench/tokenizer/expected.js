// expected.js writes the ids the Hugging Face tokenizers library (the Rust
// library, through @anush008/tokenizers) gives for each {"text": ...} line:
//
//   node expected.js TOKENIZER_JSON IN.jsonl OUT.jsonl [DECODE_OUT.jsonl]
//
// OUT has one {"ids": [...]} line per input line (BOS added, as
// tokenizer(text) does), the same format `llamaembed tokenize` writes.
// DECODE_OUT, when given, gets {"ids", "skip", "text"} lines: HF's decode of
// slices of those ids (slices cut multi-byte characters, special tokens
// included), for the Decode parity test.
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@anush008/tokenizers");

async function main() {
  const [tokFile, inFile, outFile, decodeFile] = process.argv.slice(2);
  if (!outFile) {
    console.error("usage: node expected.js TOKENIZER_JSON IN.jsonl OUT.jsonl [DECODE_OUT.jsonl]");
    process.exit(2);
  }
  const tok = Tokenizer.fromFile(tokFile);
  const texts = fs
    .readFileSync(inFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l).text);
  const out = [];
  const all = [];
  const chunk = 512;
  for (let i = 0; i < texts.length; i += chunk) {
    const encs = await tok.encodeBatch(texts.slice(i, i + chunk), { addSpecialTokens: true });
    for (const e of encs) {
      const ids = Array.from(e.getIds());
      all.push(ids);
      out.push(JSON.stringify({ ids }));
    }
  }
  fs.writeFileSync(outFile, out.join("\n") + "\n");
  console.error(`${outFile}: ${texts.length} lines, ${all.reduce((n, a) => n + a.length, 0)} tokens`);
  if (!decodeFile) return;
  let seed = 42;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const rows = [];
  for (let i = 0; i < all.length; i += Math.max(1, Math.floor(all.length / 400))) {
    const ids = all[i];
    const a = Math.floor(rand() * ids.length);
    const b = a + Math.floor(rand() * (ids.length - a + 1));
    // Slices, plus a special token in the middle and an id past the vocab.
    const slices = [ids, ids.slice(a, b), ids.slice(a, b).concat([128009, 128255], ids.slice(0, 3)), [ids[ids.length - 1], 300000, ids[0]]];
    for (const s of slices) {
      for (const skip of [false, true]) {
        rows.push(JSON.stringify({ ids: s, skip, text: await tok.decode(s, skip) }));
      }
    }
  }
  fs.writeFileSync(decodeFile, rows.join("\n") + "\n");
  console.error(`${decodeFile}: ${rows.length} decodes`);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});

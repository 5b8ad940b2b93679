// unicode-classes.js asks the Hugging Face pre-tokenizer itself how its
// regex classifies every code point: \p{L}, \p{N}, \s or other. Its regex
// engine may know a newer Unicode version than Go's unicode package (it does:
// Unicode 16 against Go's 15), and parity depends on the same classes.
//
//   node unicode-classes.js TOKENIZER_JSON OUT.json
//
// OUT holds the ranges of each class; tokenizer's TestUnicodeClasses checks
// the Go side against it code point by code point.
//
// Probes, each followed by "\n" (which is always its own piece here):
//   "aX" is one piece       iff X is a letter  ([^\r\n\p{L}\p{N}]?\p{L}+)
//   "1X" is one piece       iff X is a number  (\p{N}{1,3})
//   "X!" starts one piece   iff X is other     ( ?[^\s\p{L}\p{N}]+)
//   otherwise X is whitespace.
"use strict";
const fs = require("fs");
const { Tokenizer } = require("@anush008/tokenizers");

const [tokFile, outFile] = process.argv.slice(2);
if (!outFile) {
  console.error("usage: node unicode-classes.js TOKENIZER_JSON OUT.json");
  process.exit(2);
}
const pt = Tokenizer.fromFile(tokFile).getPreTokenizer();
const cls = new Uint8Array(0x110000); // 0 = surrogate (not probed)
const CHUNK = 4000;
for (let base = 0; base < 0x110000; base += CHUNK) {
  const parts = [];
  const probes = [];
  let pos = 0; // offsets are in code points
  for (let c = base; c < Math.min(base + CHUNK, 0x110000); c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    if (c === 0x0a || c === 0x0d || c === 0x20) {
      // The probes' own separator, and the one space the regex treats
      // specially (" ?[^\s...]"), which the "X!" probe would call other.
      cls[c] = "S".charCodeAt(0);
      continue;
    }
    const X = String.fromCodePoint(c);
    probes.push([c, pos, pos + 3, pos + 6]);
    parts.push("a", X, "\n", "1", X, "\n", X, "!\n");
    pos += 9;
  }
  const ends = new Map();
  for (const [, [s, e]] of pt.preTokenizeString(parts.join(""))) ends.set(s, e);
  for (const [c, pa, p1, px] of probes) {
    let k = "S";
    if (ends.get(pa) === pa + 2) k = "L";
    else if (ends.get(p1) === p1 + 2) k = "N";
    else if ((ends.get(px) || 0) >= px + 2) k = "O";
    cls[c] = k.charCodeAt(0);
  }
}
const ranges = { L: [], N: [], S: [] };
for (let c = 0; c < 0x110000; c++) {
  const k = String.fromCharCode(cls[c]);
  const r = ranges[k];
  if (!r) continue;
  if (r.length && r[r.length - 1][1] === c - 1) r[r.length - 1][1] = c;
  else r.push([c, c]);
}
fs.writeFileSync(outFile, JSON.stringify(ranges) + "\n");
console.error(`${outFile}: ${ranges.L.length} letter, ${ranges.N.length} number, ${ranges.S.length} space ranges`);

// make-corpus.js builds the tokenizer parity corpus from real text found on a
// Debian machine and in npm packages (see testdata/tokenizer/CORPUS.md):
//
//   node make-corpus.js OUTDIR [--adversarial-only]
//        -> OUTDIR/corpus.jsonl, OUTDIR/adversarial.jsonl
//
// Each line is {"text": ..., "src": ...}. The choice is deterministic for a
// given machine (sorted file lists, a seeded generator), but the inputs are
// whatever translations and docs are installed, so the committed corpus is
// the reference; this script documents how it was made.
"use strict";
const fs = require("fs");
const path = require("path");
const zlib = require("zlib");

const outDir = process.argv[2] || "out";
const adversarialOnly = process.argv.includes("--adversarial-only");
fs.mkdirSync(outDir, { recursive: true });

// Small deterministic generator (mulberry32).
let seed = 0x5eed1234;
function rand() {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = (a) => a[Math.floor(rand() * a.length)];

function walk(dir, pred, out = []) {
  let ents;
  try {
    ents = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of ents) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, pred, out);
    else if (e.isFile() && pred(p)) out.push(p);
  }
  return out;
}

// Lone surrogates cannot survive the trip to Rust and back; drop texts with
// them (none are expected in real data).
const wellFormed = (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

// readMo returns the [msgid, msgstr] pairs of a GNU .mo file.
function readMo(file) {
  const b = fs.readFileSync(file);
  if (b.length < 28) return [];
  let le;
  if (b.readUInt32LE(0) === 0x950412de) le = true;
  else if (b.readUInt32BE(0) === 0x950412de) le = false;
  else return [];
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const n = u32(8), oOrig = u32(12), oTrans = u32(16);
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const ol = u32(oOrig + 8 * i), oo = u32(oOrig + 8 * i + 4);
    const tl = u32(oTrans + 8 * i), to = u32(oTrans + 8 * i + 4);
    if (oo + ol > b.length || to + tl > b.length) break;
    const id = b.toString("utf8", oo, oo + ol).split("\0")[0];
    const str = b.toString("utf8", to, to + tl).split("\0").join("\n");
    if (id === "" || str === "" || str.includes("\ufffd")) continue;
    // msgctxt is "ctx\x04id".
    pairs.push([id.replace(/^[^\x04]*\x04/, ""), str]);
  }
  return pairs;
}

// Join consecutive messages into passages of about target characters.
function passages(msgs, target, sep) {
  const out = [];
  let cur = "";
  for (const m of msgs) {
    cur = cur ? cur + sep() + m : m;
    if (cur.length >= target()) {
      out.push(cur);
      cur = "";
    }
  }
  if (cur) out.push(cur);
  return out;
}
const seps = () => pick([" ", " ", "\n", "\n\n", " | ", "\t"]);

const corpus = [];
function add(src, text) {
  if (text.length > 0 && wellFormed(text)) corpus.push({ text, src });
}

function writeJSONL(file, rows) {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
}

if (!adversarialOnly) {
// 1. Translations: msgstr of every .mo under /usr/share/locale, per language.
const moLangs = {};
for (const f of walk("/usr/share/locale", (p) => p.endsWith(".mo"))) {
  const lang = f.split(path.sep)[4];
  (moLangs[lang] ||= []).push(f);
}
const english = [];
const perLang = {
  ar: 700, fa: 300, he: 300, hi: 500, mr: 300, ne: 300, bn: 250, ta: 200, th: 250,
  ja: 800, zh_CN: 800, zh_TW: 400, ko: 500, ru: 700, uk: 500, bg: 300, sr: 200, el: 300,
  ka: 200, hy: 100, am: 50, de: 300, fr: 300, es: 250, pl: 200, tr: 200, vi: 250, cs: 150,
};
for (const [lang, want] of Object.entries(perLang)) {
  const files = moLangs[lang] || [];
  const msgs = [];
  for (const f of files) {
    for (const [id, str] of readMo(f)) {
      msgs.push(str);
      if (english.length < 200000) english.push(id);
    }
  }
  let ps = passages(msgs, () => randInt(60, 600), seps);
  // Spread the choice over all packages.
  const step = Math.max(1, ps.length / want);
  let got = 0;
  for (let i = 0; i < ps.length && got < want; i += step, got++) add("mo:" + lang, ps[Math.floor(i)]);
}

// 2. English: msgids of those catalogues (UI prose), de-duplicated.
{
  const seen = new Set();
  const uniq = english.filter((s) => !seen.has(s) && seen.add(s));
  const ps = passages(uniq, () => randInt(80, 700), seps);
  const step = Math.max(1, ps.length / 2500);
  for (let i = 0, got = 0; i < ps.length && got < 2500; i += step, got++) add("mo:msgid", ps[Math.floor(i)]);
}

// 3. English prose: license texts, package changelogs and READMEs, split on
// blank lines into paragraphs and joined up to passage size.
{
  const files = walk("/usr/share/common-licenses", () => true)
    .concat(walk("/usr/share/doc", (p) => /changelog\.Debian\.gz$|README(\.md|\.txt)?(\.gz)?$|NEWS(\.gz)?$/.test(p)));
  const paras = [];
  for (const f of files) {
    let t;
    try {
      t = fs.readFileSync(f);
      if (f.endsWith(".gz")) t = zlib.gunzipSync(t);
    } catch {
      continue;
    }
    t = t.toString("utf8");
    if (t.includes("\ufffd")) continue;
    for (const p of t.split(/\n\s*\n/)) if (p.trim()) paras.push(p);
  }
  const ps = passages(paras, () => randInt(120, 900), () => "\n\n");
  const step = Math.max(1, ps.length / 3000);
  for (let i = 0, got = 0; i < ps.length && got < 3000; i += step, got++) add("doc:en", ps[Math.floor(i)]);
}

// 4. Code: chunks of Go's own sources (tabs, CRLF-free, comments, strings
// in many scripts from the tests of unicode packages).
{
  const goroot = process.env.GOROOT || "/usr/local/go";
  const files = walk(path.join(goroot, "src"), (p) => p.endsWith(".go") && !p.includes("/testdata/"));
  const want = 3500;
  const step = Math.max(1, files.length / want);
  for (let i = 0, got = 0; i < files.length && got < want; i += step, got++) {
    const t = fs.readFileSync(files[Math.floor(i)], "utf8");
    const n = randInt(150, 1000);
    const start = t.length > n ? randInt(0, t.length - n) : 0;
    // Start at a line boundary, as a chunker would.
    const nl = t.lastIndexOf("\n", start);
    add("go", t.slice(nl + 1, nl + 1 + n));
  }
}

// 5. Emoji with their names and keywords in many languages (emojibase-data,
// CLDR annotations), including ZWJ sequences, skin tones and flags.
{
  const base = path.dirname(require.resolve("emojibase-data/package.json"));
  const langs = ["en", "ja", "zh", "ko", "ru", "uk", "hi", "bn", "th", "de", "fr", "es", "vi", "pl", "zh-hant"];
  for (const lang of langs) {
    const data = JSON.parse(fs.readFileSync(path.join(base, lang, "data.json"), "utf8"));
    const lines = [];
    for (const e of data) {
      lines.push(`${e.emoji} ${e.label}: ${(e.tags || []).join(", ")}`);
      for (const s of e.skins || []) lines.push(`${s.emoji} ${s.label}`);
    }
    const ps = passages(lines, () => randInt(60, 400), () => pick(["\n", " ", "; "]));
    const want = 160;
    const step = Math.max(1, ps.length / want);
    for (let i = 0, got = 0; i < ps.length && got < want; i += step, got++) add("emoji:" + lang, ps[Math.floor(i)]);
  }
}

// 6. Mixed passages: real pieces of different sources side by side, as in
// chat logs and multilingual documents.
{
  const n = corpus.length;
  for (let i = 0; i < 1500; i++) {
    const k = randInt(2, 4);
    const parts = [];
    for (let j = 0; j < k; j++) {
      const t = corpus[randInt(0, n - 1)].text;
      const m = randInt(20, 300);
      const s = t.length > m ? randInt(0, t.length - m) : 0;
      let piece = Array.from(t).slice(s, s + m).join("");
      parts.push(piece);
    }
    add("mix", parts.join(pick([" ", "\n", " — ", "\r\n", "  "])));
  }
}

writeJSONL(path.join(outDir, "corpus.jsonl"), corpus);
const counts = {};
for (const r of corpus) {
  const k = r.src.split(":")[0];
  counts[k] = (counts[k] || 0) + 1;
}
console.error(`corpus: ${corpus.length} passages`, counts);

}

// The adversarial list, with its own seed so it does not depend on the
// corpus.
seed = 0xadd5eed;
const adv = [];
const A = (text, src) => adv.push({ text, src });
A("", "empty");
const ws = [" ", "\t", "\n", "\r"];
(function gen(prefix, depth) {
  if (prefix) {
    A(prefix, "ws");
    A("a" + prefix + "b", "ws");
    A(prefix + "x", "ws");
    A("x" + prefix, "ws");
    A(prefix + "1", "ws");
    A("." + prefix + "!", "ws");
  }
  if (depth === 0) return;
  for (const c of ws) gen(prefix + c, depth - 1);
})("", 4);
for (const n of [5, 8, 16, 33, 100, 1000]) {
  A(" ".repeat(n), "ws-run");
  A("x" + " ".repeat(n) + "y", "ws-run");
  A("\n".repeat(n), "ws-run");
  A("\r\n".repeat(n) + "z", "ws-run");
  A("\t".repeat(n) + "func", "ws-run");
  A(" \n".repeat(n) + " ", "ws-run");
}
const uspaces = ["\u00a0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u0085", "\u000b", "\u000c", "\u200b", "\ufeff", "\u180e"];
for (const u of uspaces) {
  A(u, "uspace");
  A("a" + u + "b", "uspace");
  A("a" + u + u + "b", "uspace");
  A(u + " \n" + u + "x", "uspace");
  A("1" + u + "2", "uspace");
  A("hello" + u + "\n" + u, "uspace");
}
for (const n of [1, 2, 3, 4, 5, 6, 7, 9, 10, 31, 64, 100, 1000, 5000]) {
  A("1234567890".repeat(Math.ceil(n / 10)).slice(0, n), "digits");
  A("x" + "9".repeat(n) + "y", "digits");
  A(" " + "0".repeat(n), "digits");
}
for (const s of ["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵", "०१२३४५६७८९", "১২৩৪", "１２３４５", "²³¹", "ⅫⅣ", "½¾⅓", "①②③④", "𝟙𝟚𝟛𝟜", "3.14159", "1,000,000", "2024-01-02T03:04:05Z", "0x7fffffff", "1e-10", "+49 30 1234567", "v1.2.3"]) {
  A(s, "digits");
  A("abc" + s + "def", "digits");
}
const contr = ["s", "t", "re", "ve", "m", "ll", "d"];
const cases = (w) => {
  const out = [""];
  for (const ch of w) {
    const n = out.length;
    for (let i = 0; i < n; i++) {
      out.push(out[i] + ch.toUpperCase());
      out[i] += ch;
    }
  }
  return out;
};
for (const c of contr) {
  for (const v of cases(c)) {
    for (const [pre, post] of [["", ""], ["I", ""], ["we", " go"], ["x", "y"], [" ", ""], ["1", ""], ["", "'s"], ["don", "t"], ["DON", "T"], ["''", ""], ["!", "?"]]) {
      A(pre + "'" + v + post, "contraction");
    }
  }
}
for (const s of ["'ſ", "it'ſ", "'K", "'\u212a", "’s", "it’s", "I’M", "'", "''", "'''s", "' s", "'\ns", "'é", "'ll've'd", "O'Neil's", "rock'n'roll", "'S'T'RE'VE'M'LL'D", "ʼs", "＇s"]) {
  A(s, "contraction");
}
const comb = ["e\u0301", "a\u0300\u0301\u0302\u0303", "\u0301", " \u0301x", "1\u0301", "\u0301\u0301\u0301", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O", "क्षत्रिय", "हिन्दी", "ক্ষ", "שָׁלוֹם", "مَرْحَبًا", "ค่ะ", "ﷺ", "e\u20dd", "x\u0300 y\u0300", "\u0300a", "\u093f", ".\u0301", "!\u0301a"];
for (const s of comb) {
  A(s, "combining");
  A(" " + s + " ", "combining");
  A("a" + s, "combining");
}
const emoji = ["👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇯🇵🇺🇸🇩🇪", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "1️⃣", "#️⃣", "*️⃣", "❤️", "❤︎", "🧑🏿‍🤝‍🧑🏻", "👍🏼", "🫶🏾", "🙂‍↔️", "\u200d", "\u200d\u200d", "a\u200db", "🤷‍♀️🤷‍♂️", "😀😃😄😁😆", "✈️✈", "©️®️™️", "🇦", "🇦🇧🇨"];
for (const s of emoji) {
  A(s, "emoji");
  A("I " + s + " it", "emoji");
  A(s + s + s, "emoji");
  A("\n" + s + "\n", "emoji");
}
for (let c = 0; c < 0x20; c++) {
  const ch = String.fromCharCode(c);
  A(ch, "control");
  A("a" + ch + "b", "control");
  A(ch + ch + " " + ch, "control");
  A("word" + ch, "control");
}
for (const c of [0x7f, 0x80, 0x85, 0x9f, 0xad, 0x200e, 0x200f, 0x202e, 0x2066, 0xfff9, 0xfffd, 0xe000, 0xf8ff, 0x10ffff, 0xe0001]) {
  const ch = String.fromCodePoint(c);
  A(ch, "control");
  A("a" + ch + "b", "control");
  A(" " + ch + "1", "control");
}
A("\0\0\0", "control");
A("null\0byte in the middle\0", "control");
const big = 100000;
A("a".repeat(big), "long-word");
A("é".repeat(big), "long-word");
A("漢".repeat(big), "long-word");
A(Array.from({ length: big }, () => String.fromCharCode(97 + randInt(0, 25))).join(""), "long-word");
A(Array.from({ length: big }, () => pick(["ab", "ra", "ca", "da", "bra"])).join("").slice(0, big), "long-word");
A(Array.from({ length: big }, () => String.fromCodePoint(0x4e00 + randInt(0, 20000))).join(""), "long-word");
A(Array.from({ length: big }, () => String.fromCodePoint(0x0900 + randInt(0x05, 0x39))).join(""), "long-word");
A("-".repeat(big), "long-word");
A("=+".repeat(big / 2), "long-word");
A("9".repeat(big), "long-word");
A(" ".repeat(big) + "x", "long-word");
A("x" + "\u00e9".repeat(big / 2) + "'s", "long-word");
const specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_2|>", "<|reserved_special_token_250|>"];
for (const s of specials) {
  A(s, "special");
  A("x" + s + "y", "special");
  A(" " + s + " ", "special");
  A(s + s, "special");
  A("\n" + s + "\n\n", "special");
  A(s.toUpperCase(), "special-near");
  A(s.slice(0, -1), "special-near");
  A(s.slice(1), "special-near");
  A(s.slice(0, 2) + " " + s.slice(2), "special-near");
  A("<" + s + ">", "special-near");
  A(s.slice(0, 5) + s + s.slice(5), "special-near");
}
for (const s of ["<|reserved_special_token_251|>", "<|reserved_special_token_-1|>", "<|reserved_special_token_00|>", "<||>", "<|", "|>", "<|>", "<|begin_of_text|><|end_of_text|>", "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "<|begin_of_text|", "<begin_of_text|>", "< |begin_of_text|>", "<|begin_of_text |>", "<|begin of text|>", "＜|begin_of_text|＞", "<|begin_of_text|>\u0301"]) {
  A(s, "special-near");
}
// Letters and digits new in Unicode 15.1/16 (Garay, Kirat Rai, Sunuwar,
// Outlined digits, CJK extension I), which Go 1.26's tables do not know.
for (const s of ["\u{10D40}\u{10D41}\u{10D42}\u{10D43}", "\u{10D4A}\u{10D4B}\u{10D4C} \u{10D50}", "\u{16D40}\u{16D41}\u{16D70}\u{16D71}", "\u{11BC0}\u{11BC1}\u{11BF0}", "\u{1CCF0}\u{1CCF1}\u{1CCF2}\u{1CCF3}", "\u{2EBF0}\u{2EBF1}\u{2EBF2}", "a\u{1C89}b", "x\u{A7CB}\u{A7CC}'s", "1\u{10D40}2\u{1E5F1}3"]) {
  A(s, "unicode16");
  A(" " + s + "!", "unicode16");
  A("\n" + s + "\n", "unicode16");
}
writeJSONL(path.join(outDir, "adversarial.jsonl"), adv.filter((r) => wellFormed(r.text)));
console.error(`adversarial: ${adv.length} strings`);

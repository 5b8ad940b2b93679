package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unicode/utf8"

	"github.com/sugarme/tokenizer/pretokenizer"
)

// llama3Pattern is the Split pre-tokenizer regex of every Llama 3 tokenizer.json.
// Go's regexp cannot run it (it has a lookahead), so splitPiece implements it
// by hand; any other pattern is refused rather than approximated.
const llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// maxFileSize bounds what Load reads: the Llama 3 file is 9 MB.
const maxFileSize = 256 << 20

// fileJSON is the part of tokenizer.json this package understands. Sections
// are kept raw so that each can be checked with an error naming it.
type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         modelJSON        `json:"model"`
}

type addedTokenJSON struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string           `json:"type"`
	Dropout                 *float64         `json:"dropout"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Vocab                   map[string]int32 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
}

type typed struct {
	Type string `json:"type"`
}

// Load reads a Hugging Face tokenizer.json of the Llama 3 family (byte-level
// BPE with the Llama 3 split regex).
func Load(path string) (*Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("load tokenizer %s: is a directory (use LoadDir)", path)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("load tokenizer %s: %d bytes is larger than the %d allowed", path, fi.Size(), maxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Parse builds a Tokenizer from the bytes of a tokenizer.json.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	var vocabRaw, mergesRaw []byte
	sc := &scanner{data: data}
	err := sc.object(func(key []byte) error {
		if string(key) == "model" {
			// Split in place: the model is nearly all of the file.
			var err error
			if vocabRaw, mergesRaw, err = splitModel(sc, &f.Model); err != nil {
				return fmt.Errorf("model: %w", err)
			}
			return nil
		}
		raw, err := sc.skipValue()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		switch string(key) {
		case "added_tokens":
			err = json.Unmarshal(raw, &f.AddedTokens)
		case "normalizer":
			f.Normalizer = raw
		case "pre_tokenizer":
			f.PreTokenizer = raw
		case "post_processor":
			f.PostProcessor = raw
		case "decoder":
			f.Decoder = raw
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse json: %w", err)
	}
	if vocabRaw == nil {
		return nil, errors.New("model.vocab: missing")
	}
	if mergesRaw == nil {
		return nil, errors.New("model.merges: missing")
	}
	if err := checkNull("normalizer", f.Normalizer); err != nil {
		return nil, err
	}
	if err := checkPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	t, err := buildModel(&f.Model, vocabRaw, mergesRaw)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if err := t.addAddedTokens(f.AddedTokens); err != nil {
		return nil, err
	}
	if err := t.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	t.prompts = DefaultPrompts()
	t.buildDecodeTable()
	return t, nil
}

// splitModel decodes the small fields of the model section with
// encoding/json and returns the raw vocab and merges for the fast scanner.
func splitModel(sc *scanner, m *modelJSON) (vocab, merges []byte, err error) {
	small := map[string]json.RawMessage{}
	err = sc.object(func(key []byte) error {
		v, err := sc.skipValue()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		switch string(key) {
		case "vocab":
			vocab = v
		case "merges":
			merges = v
		default:
			small[string(key)] = v
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(small)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, nil, err
	}
	return vocab, merges, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func checkNull(section string, raw json.RawMessage) error {
	if !isNull(raw) {
		return fmt.Errorf("%s: only null is supported, got %.80s", section, raw)
	}
	return nil
}

// checkPreTokenizer accepts exactly the Llama 3 pre-tokenizer: a Sequence of
// Split(llama3Pattern, Isolated) and ByteLevel without prefix space or regex.
func checkPreTokenizer(raw json.RawMessage) error {
	var seq struct {
		Type          string            `json:"type"`
		PreTokenizers []json.RawMessage `json:"pretokenizers"`
	}
	if err := json.Unmarshal(raw, &seq); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	if seq.Type != "Sequence" || len(seq.PreTokenizers) != 2 {
		return fmt.Errorf("pre_tokenizer: want a Sequence of Split and ByteLevel (Llama 3), got %.120s", raw)
	}
	var split struct {
		Type    string `json:"type"`
		Pattern struct {
			Regex  *string `json:"Regex"`
			String *string `json:"String"`
		} `json:"pattern"`
		Behavior string `json:"behavior"`
		Invert   bool   `json:"invert"`
	}
	if err := json.Unmarshal(seq.PreTokenizers[0], &split); err != nil {
		return fmt.Errorf("pre_tokenizer.pretokenizers[0]: %w", err)
	}
	if split.Type != "Split" || split.Pattern.Regex == nil || *split.Pattern.Regex != llama3Pattern ||
		split.Behavior != "Isolated" || split.Invert {
		return fmt.Errorf("pre_tokenizer.pretokenizers[0]: only the Llama 3 Split (Isolated, pattern %q) is supported, got %.200s",
			llama3Pattern, seq.PreTokenizers[0])
	}
	var bl struct {
		Type           string `json:"type"`
		AddPrefixSpace bool   `json:"add_prefix_space"`
		UseRegex       bool   `json:"use_regex"`
	}
	if err := json.Unmarshal(seq.PreTokenizers[1], &bl); err != nil {
		return fmt.Errorf("pre_tokenizer.pretokenizers[1]: %w", err)
	}
	if bl.Type != "ByteLevel" || bl.AddPrefixSpace || bl.UseRegex {
		return fmt.Errorf("pre_tokenizer.pretokenizers[1]: want ByteLevel with add_prefix_space and use_regex false, got %.200s",
			seq.PreTokenizers[1])
	}
	return nil
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return nil // Decode then joins the byte-level tokens the same way.
	}
	var d typed
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("decoder: only ByteLevel is supported, got %q", d.Type)
	}
	return nil
}

// byteLevel maps runes of the byte-level alphabet back to bytes; -1 marks
// runes outside it. All of them are below 512.
type byteLevel [512]int16

// byteLevelTable returns the GPT-2 rune -> byte mapping that ByteLevel uses,
// built from sugarme's byte -> char table.
func byteLevelTable() *byteLevel {
	var t byteLevel
	for i := range t {
		t[i] = -1
	}
	for b, s := range pretokenizer.GenerateBytesChar() {
		r, _ := utf8.DecodeRuneInString(s)
		t[r] = int16(b)
	}
	return &t
}

// unByteLevel maps a byte-level token ("Ġthe") back to its raw bytes (" the").
func (t *byteLevel) unByteLevel(dst []byte, tok []byte) ([]byte, bool) {
	for i := 0; i < len(tok); {
		r, n := rune(tok[i]), 1
		if r >= utf8.RuneSelf {
			// The alphabet is below U+0800: two-byte sequences.
			if i+1 < len(tok) && r >= 0xC2 && r <= 0xDF && tok[i+1]&0xC0 == 0x80 {
				r, n = (r&0x1F)<<6|rune(tok[i+1]&0x3F), 2
			} else {
				r, n = utf8.DecodeRune(tok[i:])
			}
		}
		if r >= 512 || t[r] < 0 {
			return dst, false
		}
		dst = append(dst, byte(t[r]))
		i += n
	}
	return dst, true
}

// buildModel turns the BPE vocab and merges into the byte-keyed tables the
// encoder uses.
func buildModel(m *modelJSON, vocabRaw, mergesRaw []byte) (*Tokenizer, error) {
	if m.Type != "BPE" {
		return nil, fmt.Errorf("type %q: only BPE is supported", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("dropout %v: not supported", *m.Dropout)
	}
	if m.UnkToken != nil || m.ByteFallback {
		return nil, errors.New("unk_token and byte_fallback are not supported (Llama 3 has neither)")
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") || (m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, errors.New("continuing_subword_prefix and end_of_word_suffix are not supported")
	}
	bl := byteLevelTable()
	// The merges need no vocab to parse: do it on another core meanwhile.
	type parsedMerges struct {
		all  []byte
		recs []mergeText
		err  error
	}
	mergesDone := make(chan parsedMerges, 1)
	go func() {
		all, recs, err := parseMerges(mergesRaw, bl)
		mergesDone <- parsedMerges{all, recs, err}
	}()
	pm := func() parsedMerges { return <-mergesDone }
	// All keys go into one arena string: no allocation per token, and the
	// keys lie in file order, which is id order in Llama 3 files.
	type entry struct{ off, end, id int32 }
	entries := make([]entry, 0, 1<<17)
	arena := make([]byte, 0, len(vocabRaw)/2)
	maxID := int32(-1)
	sc := &scanner{data: vocabRaw}
	err := sc.object(func(tok []byte) error {
		off := len(arena)
		var ok bool
		if arena, ok = bl.unByteLevel(arena, tok); !ok {
			return fmt.Errorf("token %q is not byte-level encoded", tok)
		}
		if len(arena) > 1<<30 {
			return errors.New("vocab too large")
		}
		id, err := sc.integer()
		if err != nil {
			return fmt.Errorf("token %q: %w", tok, err)
		}
		if id < 0 || id > 1<<24 {
			return fmt.Errorf("token %q has id %d out of range", tok, id)
		}
		entries = append(entries, entry{int32(off), int32(len(arena)), int32(id)})
		maxID = max(maxID, int32(id))
		return nil
	})
	if err != nil {
		pm()
		return nil, fmt.Errorf("vocab: %w", err)
	}
	if len(entries) == 0 {
		pm()
		return nil, errors.New("vocab is empty")
	}
	t := &Tokenizer{vocab: newVocabTable(len(entries)), ignoreMerges: m.IgnoreMerges}
	t.vocab.keys = make([]string, maxID+1)
	t.idKnown = make([]bool, maxID+1)
	keys := string(arena)
	for _, e := range entries {
		if t.idKnown[e.id] {
			return nil, fmt.Errorf("vocab: id %d is used twice", e.id)
		}
		if !t.vocab.insert(keys[e.off:e.end], e.id) {
			return nil, fmt.Errorf("vocab: token %q appears twice", keys[e.off:e.end])
		}
		t.idKnown[e.id] = true
	}
	// Decode reads token bytes by id; added tokens extend this copy later.
	t.idBytes = append([]string(nil), t.vocab.keys...)
	for b := 0; b < 256; b++ {
		id, ok := t.vocab.get([]byte{byte(b)})
		if !ok {
			return nil, fmt.Errorf("vocab: byte 0x%02x has no token", b)
		}
		t.byteID[b] = id
	}
	merges := pm()
	if merges.err != nil {
		return nil, fmt.Errorf("merges: %w", merges.err)
	}
	if err := t.buildMerges(merges.all, merges.recs); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	return t, nil
}

// mergeText is one merge as raw bytes: all[off:off+split] + all[off+split:end].
type mergeText struct{ off, split, end uint32 }

// parseMerges reads merges in either layout ("a b" strings or ["a","b"]
// pairs) into raw bytes. It needs no vocab, so it runs while the vocab loads.
func parseMerges(raw []byte, bl *byteLevel) (all []byte, recs []mergeText, err error) {
	all = make([]byte, 0, len(raw)/2)
	recs = make([]mergeText, 0, bytes.Count(raw, []byte{','})+1)
	sc := &scanner{data: raw}
	err = sc.array(func(i int) error {
		off := len(all)
		var split int
		if sc.peek() == '[' {
			if err := sc.array(func(k int) error {
				s, err := sc.str()
				if err != nil {
					return err
				}
				if k > 1 {
					return errors.New("more than two tokens")
				}
				var ok bool
				if all, ok = bl.unByteLevel(all, s); !ok {
					return fmt.Errorf("%q is not byte-level encoded", s)
				}
				if k == 0 {
					split = len(all) - off
				}
				return nil
			}); err != nil {
				return fmt.Errorf("merge %d: %w", i, err)
			}
		} else {
			s, err := sc.str()
			if err != nil {
				return fmt.Errorf("merge %d: %w", i, err)
			}
			sp := bytes.IndexByte(s, ' ')
			if sp < 0 || bytes.IndexByte(s[sp+1:], ' ') >= 0 {
				return fmt.Errorf("merge %d %q: want two tokens separated by a space", i, s)
			}
			var ok1, ok2 bool
			all, ok1 = bl.unByteLevel(all, s[:sp])
			split = len(all) - off
			all, ok2 = bl.unByteLevel(all, s[sp+1:])
			if !ok1 || !ok2 {
				return fmt.Errorf("merge %d %q: not byte-level encoded", i, s)
			}
		}
		if split == 0 || off+split == len(all) {
			return fmt.Errorf("merge %d: an empty token", i)
		}
		if len(all) > 1<<31 {
			return errors.New("merges too large")
		}
		recs = append(recs, mergeText{uint32(off), uint32(split), uint32(len(all))})
		return nil
	})
	return all, recs, err
}

// buildMerges resolves the merges to ids on all cores and fills the pair ->
// (rank, merged id) table.
func (t *Tokenizer) buildMerges(all []byte, recs []mergeText) error {
	type resolved struct{ a, b, merged int32 }
	res := make([]resolved, len(recs))
	workers := min(runtime.GOMAXPROCS(0), 4)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lo, hi := len(recs)*w/workers, len(recs)*(w+1)/workers
			for i := lo; i < hi; i++ {
				r := recs[i]
				ab := all[r.off:r.end]
				a, okA := t.vocab.get(ab[:r.split])
				b, okB := t.vocab.get(ab[r.split:])
				m, okM := t.vocab.get(ab)
				if !okA || !okB || !okM {
					errs[w] = fmt.Errorf("merge %d (%q + %q): a part or the result is not in the vocab", i, ab[:r.split], ab[r.split:])
					return
				}
				res[i] = resolved{a, b, m}
			}
		}(w)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	t.merges = newPairTable(len(res))
	for i, r := range res {
		// A repeated pair keeps its last rank: the Hugging Face library
		// collects merges into a map in order.
		t.merges.put(r.a, r.b, int32(i), r.merged)
	}
	return nil
}

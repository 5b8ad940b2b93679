// Package tokenizer turns text into Llama 3 token ids exactly as the Hugging
// Face tokenizers library does for a Llama 3 family tokenizer.json, and back.
//
// The pipeline is the one tokenizer.json describes: added and special tokens
// are matched in the raw text; the rest is split by the Llama 3 regex (a
// hand-written scanner, see nextPiece); each piece is byte-level BPE encoded
// (with ignore_merges: a piece that is itself in the vocab is one token); the
// TemplateProcessing post-processor adds BOS. A Tokenizer is immutable after
// loading and safe for concurrent use from any number of goroutines.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tokenizer is a loaded Llama 3 tokenizer. Use Load or LoadDir.
type Tokenizer struct {
	vocab        *vocabTable // raw bytes of a token -> id (model vocab only)
	byteID       [256]int32  // id of each single byte
	merges       pairTable
	ignoreMerges bool

	idBytes []string // id -> raw bytes of the token (model vocab and added tokens)
	idKnown []bool   // id is in the vocab or an added token
	special []bool   // id is a special added token (skipped by Decode(skipSpecial))

	added addedMatcher

	// Template: ids before and after the sequence when addSpecial is true.
	prefix, suffix []int32

	prompts Prompts
	scratch sync.Pool // *encodeState
}

// VocabSize is one more than the largest id the tokenizer can produce.
func (t *Tokenizer) VocabSize() int { return len(t.idBytes) }

// TokenID returns the id of a token given as its text: an added token's
// content ("<|begin_of_text|>") or a vocab token's raw text (" the").
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	if id, ok := t.added.byContent[token]; ok {
		return id, true
	}
	return t.vocab.getString(token)
}

// BOS returns the ids the post-processor puts before a sequence (Llama 3:
// <|begin_of_text|>, 128000).
func (t *Tokenizer) BOS() []int32 { return append([]int32(nil), t.prefix...) }

// Encode returns the token ids of text. With addSpecial, the post-processor's
// template applies (Llama 3: BOS first). Special-token literals in text, such
// as "<|begin_of_text|>", are always matched, as the Hugging Face library
// does. Invalid UTF-8 is read as U+FFFD, as a JSON decoder would.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	out := make([]int32, 0, len(text)/3+len(t.prefix)+len(t.suffix)+1)
	return t.AppendEncode(out, text, addSpecial)
}

// AppendEncode appends the ids Encode returns to dst; it lets a caller reuse
// one buffer for many texts.
func (t *Tokenizer) AppendEncode(dst []int32, text string, addSpecial bool) []int32 {
	if addSpecial {
		dst = append(dst, t.prefix...)
	}
	dst, _ = t.encodeText(dst, validUTF8(text), -1, -1)
	if addSpecial {
		dst = append(dst, t.suffix...)
	}
	return dst
}

// CountTokens returns len(t.Encode(text, addSpecial)).
func (t *Tokenizer) CountTokens(text string, addSpecial bool) int {
	st := t.getState()
	st.count, _ = t.encodeText(st.count[:0], validUTF8(text), -1, -1)
	n := len(st.count)
	t.scratch.Put(st)
	if addSpecial {
		n += len(t.prefix) + len(t.suffix)
	}
	return n
}

// validUTF8 replaces each byte of invalid UTF-8 with U+FFFD, as
// encoding/json would have delivered the text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// encodeText appends the ids of text (valid UTF-8) to out. When boundary >= 0
// it also returns how many of the appended ids come from pieces that start
// before byte offset boundary (a prompt's tokens, including one that
// straddles it). When limit >= 0 it may stop early, once more than limit
// ids were appended and the boundary is passed: later pieces never change
// earlier ids, so the first limit ids are final.
func (t *Tokenizer) encodeText(out []int32, text string, boundary, limit int) ([]int32, int) {
	base := len(out)
	before := 0
	st := t.getState()
	defer t.scratch.Put(st)
	pos := 0
	for pos < len(text) {
		start, end, id := t.added.next(text, pos)
		seg := text[pos:start]
		for i := 0; i < len(seg); {
			j := nextPiece(seg, i)
			out = t.encodeWord(st, out, seg[i:j])
			if pos+i < boundary {
				before = len(out) - base
			} else if limit >= 0 && len(out)-base > limit {
				return out, before
			}
			i = j
		}
		if start == len(text) {
			break
		}
		out = append(out, id)
		if start < boundary {
			before = len(out) - base
		} else if limit >= 0 && len(out)-base > limit {
			return out, before
		}
		pos = end
	}
	return out, before
}

// parsePostProcessor reads the template that adds special tokens. Llama 3
// uses Sequence[ByteLevel, TemplateProcessing]; ByteLevel post-processing
// only moves offsets, so it does not change ids.
func (t *Tokenizer) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var p struct {
		Type          string            `json:"type"`
		Processors    []json.RawMessage `json:"processors"`
		Single        []json.RawMessage `json:"single"`
		SpecialTokens map[string]struct {
			ID  string  `json:"id"`
			IDs []int32 `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	switch p.Type {
	case "Sequence":
		for i, sub := range p.Processors {
			if err := t.parsePostProcessor(sub); err != nil {
				return fmt.Errorf("processors[%d]: %w", i, err)
			}
		}
		return nil
	case "ByteLevel":
		return nil
	case "TemplateProcessing":
		seen := false
		for i, piece := range p.Single {
			var item struct {
				SpecialToken *struct{ ID string } `json:"SpecialToken"`
				Sequence     *struct{ ID string } `json:"Sequence"`
			}
			if err := json.Unmarshal(piece, &item); err != nil {
				return fmt.Errorf("single[%d]: %w", i, err)
			}
			switch {
			case item.Sequence != nil:
				if item.Sequence.ID != "A" || seen {
					return fmt.Errorf("single[%d]: want one Sequence A, got %s", i, piece)
				}
				seen = true
			case item.SpecialToken != nil:
				sp, ok := p.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return fmt.Errorf("single[%d]: special token %q missing from special_tokens", i, item.SpecialToken.ID)
				}
				for _, id := range sp.IDs {
					if id < 0 || int(id) >= len(t.idBytes) || !t.idKnown[id] {
						return fmt.Errorf("special token %q: id %d is not in the vocab", item.SpecialToken.ID, id)
					}
				}
				if seen {
					t.suffix = append(t.suffix, sp.IDs...)
				} else {
					t.prefix = append(t.prefix, sp.IDs...)
				}
			default:
				return fmt.Errorf("single[%d]: want SpecialToken or Sequence, got %s", i, piece)
			}
		}
		if !seen {
			return fmt.Errorf("single: no Sequence A")
		}
		return nil
	default:
		return fmt.Errorf("type %q is not supported (want Sequence, ByteLevel or TemplateProcessing)", p.Type)
	}
}

// addedMatcher finds added tokens in raw text, leftmost first and longest
// at a position, like the Hugging Face library's Aho-Corasick split.
type addedMatcher struct {
	byContent map[string]int32
	first     [256]bool // bytes that start some added token
	second    [256]bool // bytes that follow the first in some added token
	short     bool      // some added token is one byte long
	lengths   []int     // distinct content lengths, longest first
	only      int       // the single first byte when all tokens share it, else -1
}

func (t *Tokenizer) addAddedTokens(tokens []addedTokenJSON) error {
	m := &t.added
	m.byContent = make(map[string]int32, len(tokens))
	m.only = -1
	lens := map[int]bool{}
	firsts := 0
	for i, a := range tokens {
		if a.Content == "" {
			return fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		if a.SingleWord || a.LStrip || a.RStrip {
			return fmt.Errorf("added_tokens[%d] %q: single_word, lstrip and rstrip are not supported", i, a.Content)
		}
		if a.ID < 0 || a.ID > 1<<24 {
			return fmt.Errorf("added_tokens[%d] %q: id %d out of range", i, a.Content, a.ID)
		}
		for int(a.ID) >= len(t.idBytes) {
			t.idBytes = append(t.idBytes, "")
			t.idKnown = append(t.idKnown, false)
		}
		if t.idKnown[a.ID] && t.idBytes[a.ID] != a.Content {
			return fmt.Errorf("added_tokens[%d] %q: id %d is already %q", i, a.Content, a.ID, t.idBytes[a.ID])
		}
		t.idBytes[a.ID] = a.Content
		t.idKnown[a.ID] = true
		m.byContent[a.Content] = a.ID
		if !m.first[a.Content[0]] {
			m.first[a.Content[0]] = true
			firsts++
			m.only = int(a.Content[0])
		}
		lens[len(a.Content)] = true
		if len(a.Content) == 1 {
			m.short = true
		} else {
			m.second[a.Content[1]] = true
		}
	}
	if firsts != 1 {
		m.only = -1
	}
	for n := range lens {
		m.lengths = append(m.lengths, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(m.lengths)))
	t.special = make([]bool, len(t.idBytes))
	for _, a := range tokens {
		t.special[a.ID] = a.Special
	}
	return nil
}

// next returns the first added token at or after pos: its span and id, or
// start == len(text) when there is none.
func (m *addedMatcher) next(text string, pos int) (start, end int, id int32) {
	if len(m.byContent) == 0 {
		return len(text), len(text), 0
	}
	for i := pos; i < len(text); i++ {
		if m.only >= 0 {
			k := strings.IndexByte(text[i:], byte(m.only))
			if k < 0 {
				break
			}
			i += k
		} else if !m.first[text[i]] {
			continue
		}
		// Code and HTML have many '<': most are not "<|".
		if !m.short && (i+1 >= len(text) || !m.second[text[i+1]]) {
			continue
		}
		for _, n := range m.lengths {
			if i+n <= len(text) {
				if id, ok := m.byContent[text[i:i+n]]; ok {
					return i, i + n, id
				}
			}
		}
	}
	return len(text), len(text), 0
}

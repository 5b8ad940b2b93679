package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Prompts are the texts put before an input by its type: a query or a
// passage (document) to be retrieved.
type Prompts struct {
	Query   string
	Passage string
}

// DefaultPrompts are the prompts of nvidia/llama-nemotron-embed-1b-v2 and of
// any model that declares none.
func DefaultPrompts() Prompts { return Prompts{Query: "query: ", Passage: "passage: "} }

// Nemotron8BPrompts are the prompts of nvidia/llama-embed-nemotron-8b, from
// its model card's usage example: queries carry a retrieval instruction,
// documents carry no prefix.
func Nemotron8BPrompts() Prompts {
	return Prompts{
		Query:   "Instruct: Given a question, retrieve passages that answer the question\nQuery: ",
		Passage: "",
	}
}

// Prompts returns the prompts of the model the tokenizer was loaded for.
func (t *Tokenizer) Prompts() Prompts { return t.prompts }

// WithPrompts returns a tokenizer that shares t's tables and uses p (an
// operator's override).
func (t *Tokenizer) WithPrompts(p Prompts) *Tokenizer {
	c := &Tokenizer{
		vocab: t.vocab, byteID: t.byteID, merges: t.merges, ignoreMerges: t.ignoreMerges,
		idBytes: t.idBytes, idKnown: t.idKnown, special: t.special, added: t.added,
		prefix: t.prefix, suffix: t.suffix, prompts: p,
	}
	return c
}

// LoadDir loads a model directory: its tokenizer.json, and the prompts of
// config_sentence_transformers.json when it declares them (keys "query" and
// "passage" or "document"). A directory whose path names
// llama-embed-nemotron-8b gets Nemotron8BPrompts as the fallback, any other
// DefaultPrompts.
func LoadDir(dir string) (*Tokenizer, error) {
	t, err := Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	p := PromptsForName(dir)
	st, err := os.ReadFile(filepath.Join(dir, "config_sentence_transformers.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("load prompts: %w", err)
	default:
		if p, err = mergePrompts(p, st); err != nil {
			return nil, fmt.Errorf("load prompts %s: %w", filepath.Join(dir, "config_sentence_transformers.json"), err)
		}
	}
	t.prompts = p
	return t, nil
}

// PromptsForName returns the known prompts of a model id or directory name.
func PromptsForName(name string) Prompts {
	if strings.Contains(strings.ToLower(name), "llama-embed-nemotron-8b") {
		return Nemotron8BPrompts()
	}
	return DefaultPrompts()
}

func mergePrompts(p Prompts, data []byte) (Prompts, error) {
	var cfg struct {
		Prompts map[string]string `json:"prompts"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return p, err
	}
	if q, ok := cfg.Prompts["query"]; ok {
		p.Query = q
	}
	for _, k := range []string{"passage", "document"} {
		if d, ok := cfg.Prompts[k]; ok {
			p.Passage = d
			break
		}
	}
	return p, nil
}

// Truncate says what EncodeInput does with an input longer than the maximum.
type Truncate int

const (
	// TruncateNone refuses the input with a *LengthError.
	TruncateNone Truncate = iota
	// TruncateEnd drops text tokens from the end (keeps the beginning).
	TruncateEnd
	// TruncateStart drops text tokens from the start (keeps the end).
	TruncateStart
)

func (tr Truncate) String() string {
	switch tr {
	case TruncateNone:
		return "NONE"
	case TruncateEnd:
		return "END"
	case TruncateStart:
		return "START"
	}
	return fmt.Sprintf("Truncate(%d)", int(tr))
}

// ParseTruncate reads "NONE", "END" or "START" (any case; "" is NONE).
func ParseTruncate(s string) (Truncate, error) {
	switch strings.ToUpper(s) {
	case "", "NONE":
		return TruncateNone, nil
	case "END":
		return TruncateEnd, nil
	case "START":
		return TruncateStart, nil
	}
	return TruncateNone, fmt.Errorf("truncate %q: want NONE, START or END", s)
}

// LengthError is an input longer than the maximum that may not be truncated
// (or whose BOS and prompt alone are too long).
type LengthError struct {
	Length int // tokens of the whole input, BOS and prompt included
	Max    int
}

func (e *LengthError) Error() string {
	return fmt.Sprintf("Input length %d exceeds maximum allowed token size %d", e.Length, e.Max)
}

// EncodeInput returns BOS + the tokens of prompt+text, encoded jointly as
// the Hugging Face library encodes tokenizer(prompt + text). When that is
// longer than maxLen (maxLen <= 0: no limit) it truncates in token space:
// only text tokens go, BOS and the prompt's tokens (including one that
// straddles the prompt/text boundary) stay whole; truncated reports it.
func (t *Tokenizer) EncodeInput(text, prompt string, maxLen int, trunc Truncate) (ids []int32, truncated bool, err error) {
	prompt, text = validUTF8(prompt), validUTF8(text)
	// Keeping the beginning needs only the first maxLen ids: stop there
	// rather than encode a huge text whole.
	limit := -1
	if maxLen > 0 && trunc == TruncateEnd {
		limit = maxLen
	}
	ids = make([]int32, 0, min(len(t.prefix)+(len(prompt)+len(text))/3+len(t.suffix)+1, 1<<16))
	ids = append(ids, t.prefix...)
	ids, before := t.encodeText(ids, prompt+text, len(prompt), limit)
	ids = append(ids, t.suffix...)
	if maxLen <= 0 || len(ids) <= maxLen {
		return ids, false, nil
	}
	keep := len(t.prefix) + before + len(t.suffix)
	if trunc == TruncateNone || keep > maxLen {
		return nil, false, &LengthError{Length: len(ids), Max: maxLen}
	}
	head := len(t.prefix) + before
	textIDs := ids[head : len(ids)-len(t.suffix)]
	avail := maxLen - keep
	out := make([]int32, 0, maxLen)
	out = append(out, ids[:head]...)
	switch trunc {
	case TruncateEnd:
		out = append(out, textIDs[:avail]...)
	case TruncateStart:
		out = append(out, textIDs[len(textIDs)-avail:]...)
	default:
		return nil, false, fmt.Errorf("truncate: unknown mode %v", trunc)
	}
	out = append(out, t.suffix...)
	return out, true, nil
}

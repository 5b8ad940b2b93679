package server

import (
	"errors"

	"llamaembed/tokenizer"
)

// FromTokenizer adapts the Llama 3 tokenizer to the server's Tokenizer.
func FromTokenizer(t *tokenizer.Tokenizer) Tokenizer { return llamaTokenizer{t} }

type llamaTokenizer struct{ t *tokenizer.Tokenizer }

func (l llamaTokenizer) Encode(text, prompt string, maxLen int, trunc Truncate) ([]int32, error) {
	var tr tokenizer.Truncate
	switch trunc {
	case TruncateEnd:
		tr = tokenizer.TruncateEnd
	case TruncateStart:
		tr = tokenizer.TruncateStart
	default:
		tr = tokenizer.TruncateNone
	}
	ids, _, err := l.t.EncodeInput(text, prompt, maxLen, tr)
	var le *tokenizer.LengthError
	if errors.As(err, &le) {
		return nil, &InputTooLongError{N: le.Length, M: le.Max}
	}
	return ids, err
}

func (l llamaTokenizer) Prompts() (query, passage string) {
	p := l.t.Prompts()
	return p.Query, p.Passage
}

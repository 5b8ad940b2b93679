package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The Llama 3 pre-tokenizer splits text with
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// keeping every match as a piece (behavior Isolated). Go's regexp has no
// lookahead, and a regexp engine is slow for this anyway, so nextPiece
// implements the same leftmost-first alternation by hand. Every position
// matches some alternative, so the pieces tile the text.

// Character classes of a rune, as the regex sees them.
const (
	classLetter  = 1 << iota // \p{L}
	classNumber              // \p{N}
	classSpace               // \s (Unicode White_Space)
	classNewline             // \r or \n
)

var asciiClass [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		asciiClass[c] = slowClass(rune(c))
	}
}

func slowClass(r rune) uint8 {
	var k uint8
	if isLetter(r) {
		k |= classLetter
	}
	if isNumber(r) {
		k |= classNumber
	}
	if unicode.IsSpace(r) {
		k |= classSpace
	}
	if r == '\r' || r == '\n' {
		k |= classNewline
	}
	return k
}

// runeAt decodes the rune at s[i] with its class and width. The caller
// guarantees s is valid UTF-8.
func runeAt(s string, i int) (r rune, class uint8, size int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), asciiClass[c], 1
	}
	r, size = utf8.DecodeRuneInString(s[i:])
	return r, slowClass(r), size
}

// nextPiece returns the end of the pre-token piece that starts at s[i].
// i < len(s) and s is valid UTF-8.
func nextPiece(s string, i int) int {
	c0 := s[i]
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if c0 == '\'' {
		if n := contraction(s[i+1:]); n > 0 {
			return i + 1 + n
		}
	}
	_, k0, n0 := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if k0&classLetter != 0 {
		return letterRun(s, i+n0)
	}
	if k0&(classNewline|classNumber) == 0 && i+n0 < len(s) {
		if _, k1, n1 := runeAt(s, i+n0); k1&classLetter != 0 {
			return letterRun(s, i+n0+n1)
		}
	}
	// \p{N}{1,3}
	if k0&classNumber != 0 {
		j := i + n0
		for count := 1; count < 3 && j < len(s); count++ {
			_, k, n := runeAt(s, j)
			if k&classNumber == 0 {
				break
			}
			j += n
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`: k0 is not a letter or number here.
	if k0&classSpace == 0 {
		return symbolRun(s, i+n0)
	}
	if c0 == ' ' && i+1 < len(s) {
		if _, k1, n1 := runeAt(s, i+1); k1&(classSpace|classLetter|classNumber) == 0 {
			return symbolRun(s, i+1+n1)
		}
	}
	// Whitespace: find the maximal run, remembering where its last \r or \n
	// ends and where its last rune starts.
	end, lastNL, lastStart := i+n0, -1, i
	if k0&classNewline != 0 {
		lastNL = end
	}
	for end < len(s) {
		_, k, n := runeAt(s, end)
		if k&classSpace == 0 {
			break
		}
		lastStart = end
		end += n
		if k&classNewline != 0 {
			lastNL = end
		}
	}
	// \s*[\r\n]+ : greedy, backtracking to the last newline of the run.
	if lastNL > 0 {
		return lastNL
	}
	// \s+(?!\S) : the whole run at the end of text, else all but its last rune.
	if end == len(s) {
		return end
	}
	if lastStart > i {
		return lastStart
	}
	// \s+
	return end
}

// contraction reports the length of a case-insensitive 's 't 're 've 'm 'll
// or 'd suffix at the start of s (after the apostrophe), or 0.
func contraction(s string) int {
	if len(s) == 0 {
		return 0
	}
	switch s[0] | 0x20 {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(s) > 1 && s[1]|0x20 == 'e' {
			return 2
		}
	case 'l':
		if len(s) > 1 && s[1]|0x20 == 'l' {
			return 2
		}
	}
	// U+017F LATIN SMALL LETTER LONG S case-folds to 's', and U+212A KELVIN
	// SIGN to 'k'; only the first matters for this list.
	if len(s) >= 2 && s[0] == 0xC5 && s[1] == 0xBF {
		return 2
	}
	return 0
}

// letterRun returns the end of the run of letters starting at s[j].
func letterRun(s string, j int) int {
	for j < len(s) {
		c := s[j]
		if c < utf8.RuneSelf {
			if asciiClass[c]&classLetter == 0 {
				return j
			}
			j++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[j:])
		if !isLetter(r) {
			return j
		}
		j += n
	}
	return j
}

// symbolRun returns the end of [^\s\p{L}\p{N}]*[\r\n]* starting at s[j].
func symbolRun(s string, j int) int {
	for j < len(s) {
		_, k, n := runeAt(s, j)
		if k&(classSpace|classLetter|classNumber) != 0 {
			break
		}
		j += n
	}
	for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
		j++
	}
	return j
}

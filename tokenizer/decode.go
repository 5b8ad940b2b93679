package tokenizer

import (
	"unicode/utf8"
)

// buildDecodeTable finishes idBytes for added tokens. Vocab tokens were
// mapped back to raw bytes at load. The ByteLevel decoder maps an added
// token's content through the byte-level table too when every rune of it is
// in the table, and keeps the content as is otherwise.
func (t *Tokenizer) buildDecodeTable() {
	bl := byteLevelTable()
	for content, id := range t.added.byContent {
		if raw, ok := bl.unByteLevel(nil, []byte(content)); ok {
			t.idBytes[id] = string(raw)
		}
	}
}

// Decode returns the text of ids as the Hugging Face library decodes them:
// ids outside the vocab are dropped, special tokens too when skipSpecial, the
// byte-level tokens are joined and invalid UTF-8 becomes U+FFFD (one per
// maximal invalid subsequence, like Rust's String::from_utf8_lossy).
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	n := 0
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.idBytes) {
			n += len(t.idBytes[id])
		}
	}
	buf := make([]byte, 0, n)
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.idBytes) || !t.idKnown[id] {
			continue
		}
		if skipSpecial && t.special[id] {
			continue
		}
		buf = append(buf, t.idBytes[id]...)
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	return lossyUTF8(buf)
}

// lossyUTF8 replaces each maximal invalid subsequence with U+FFFD, the
// "substitution of maximal subparts" policy Rust's from_utf8_lossy uses (a
// truncated multi-byte sequence is one replacement, not one per byte).
func lossyUTF8(b []byte) string {
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			out = append(out, b[i])
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			out = append(out, b[i:i+n]...)
			i += n
			continue
		}
		out = append(out, "\uFFFD"...)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart returns the length of the longest prefix of b (b[0] starts
// an invalid sequence) that is a prefix of some valid UTF-8 sequence, at
// least 1.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	i := 1
	for ; i <= need && i < len(b); i++ {
		x := b[i]
		if i == 1 {
			if x < lo || x > hi {
				return i
			}
		} else if x < 0x80 || x > 0xBF {
			return i
		}
	}
	return i
}

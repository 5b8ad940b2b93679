package cuda

import (
	"fmt"
	"strings"

	"llamaembed/model"
)

// packed is a batch ready for upload: the token ids and cu_seqlens as
// given, each token's position within its sequence (RoPE), and the
// attention kernel's work list of (sequence, first query row) tiles.
type packed struct {
	Tokens    []int32
	CuSeqlens []int32
	Positions []int32
	Tiles     []int32 // pairs
	MaxLen    int
}

// Seqs is the number of sequences.
func (p *packed) Seqs() int { return len(p.CuSeqlens) - 1 }

// NumTiles is the number of attention query tiles.
func (p *packed) NumTiles() int { return len(p.Tiles) / 2 }

// packBatch validates b against the workspace limits and the vocabulary and
// builds the per-token and per-tile arrays. Every sequence starts at
// position 0, so its result does not depend on its neighbours.
func packBatch(b model.Batch, maxTokens, maxSeqLen, vocab int) (*packed, error) {
	cu := b.CuSeqlens
	if len(cu) < 2 || cu[0] != 0 || int(cu[len(cu)-1]) != len(b.Tokens) {
		return nil, fmt.Errorf("batch: cu_seqlens %s do not span %d tokens", abbreviate(cu), len(b.Tokens))
	}
	if len(b.Tokens) > maxTokens {
		return nil, fmt.Errorf("batch: %d tokens, more than the %d the GPU workspace was sized for", len(b.Tokens), maxTokens)
	}
	p := &packed{Tokens: b.Tokens, CuSeqlens: cu, Positions: make([]int32, len(b.Tokens))}
	for i := 1; i < len(cu); i++ {
		n := int(cu[i]) - int(cu[i-1])
		if n <= 0 {
			return nil, fmt.Errorf("batch: sequence %d is empty or cu_seqlens decrease (%s)", i-1, abbreviate(cu))
		}
		if maxSeqLen > 0 && n > maxSeqLen {
			return nil, fmt.Errorf("batch: sequence %d has %d tokens, more than max seq len %d", i-1, n, maxSeqLen)
		}
		p.MaxLen = max(p.MaxLen, n)
		for j := 0; j < n; j++ {
			p.Positions[int(cu[i-1])+j] = int32(j)
		}
		for q := 0; q < n; q += attnBQ {
			p.Tiles = append(p.Tiles, int32(i-1), int32(q))
		}
	}
	for i, id := range b.Tokens {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf("batch: token %d: id %d out of range [0, %d)", i, id, vocab)
		}
	}
	return p, nil
}

func abbreviate(cu []int32) string {
	if len(cu) <= 8 {
		return fmt.Sprint(cu)
	}
	return strings.TrimSuffix(fmt.Sprint(cu[:8]), "]") + " ...]"
}

package tokenizer

import "math/bits"

// pairTable maps a pair of token ids to the rank of their merge and the id of
// the merged token. It is an open-addressing hash table with linear probing:
// the BPE inner loop looks up every adjacent pair, and this is several times
// faster than a Go map keyed by the pair. It is read-only after loading, so
// any number of goroutines may read it.
type pairTable struct {
	slots []pairSlot
	shift uint8
}

type pairSlot struct {
	key    uint64 // pairKey+1; 0 marks an empty slot
	rank   int32
	merged int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newPairTable(n int) pairTable {
	// Load factor about 0.5-0.75: the table stays small enough for the cache.
	size := 1 << bits.Len(uint(n+n/3))
	if size < 16 {
		size = 16
	}
	return pairTable{slots: make([]pairSlot, size), shift: uint8(64 - bits.TrailingZeros(uint(size)))}
}

func (p *pairTable) index(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> p.shift }

func (p *pairTable) put(a, b, rank, merged int32) {
	k := pairKey(a, b) + 1
	mask := uint64(len(p.slots) - 1)
	for i := p.index(k); ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.key == 0 || s.key == k {
			*s = pairSlot{key: k, rank: rank, merged: merged}
			return
		}
	}
}

// get returns the merge of (a, b); ok is false when the pair never merges.
func (p *pairTable) get(a, b int32) (rank, merged int32, ok bool) {
	k := pairKey(a, b) + 1
	mask := uint64(len(p.slots) - 1)
	for i := p.index(k); ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.key == k {
			return s.rank, s.merged, true
		}
		if s.key == 0 {
			return 0, 0, false
		}
	}
}

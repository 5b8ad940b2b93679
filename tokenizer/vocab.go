package tokenizer

import (
	"hash/maphash"
	"math/bits"
)

// vocabTable maps the raw bytes of a token to its id. It is an
// open-addressing table of (hash, id) slots that compares keys through
// idBytes: half the memory of a map[string]int32 and no pointer chasing,
// which matters for the ignore_merges lookup of every pre-token and for
// loading 400k merge strings. Read-only after loading.
type vocabTable struct {
	seed  maphash.Seed
	slots []vocabSlot
	mask  uint64
	keys  []string // id -> key (shared with Tokenizer.idBytes at first)
	n     int
}

type vocabSlot struct {
	hash uint32 // upper bits of the key's hash; 0 marks an empty slot
	id   int32
}

func newVocabTable(n int) *vocabTable {
	size := 1 << bits.Len(uint(n*2+1))
	return &vocabTable{seed: maphash.MakeSeed(), slots: make([]vocabSlot, size), mask: uint64(size - 1)}
}

func (v *vocabTable) hash(key []byte) (uint64, uint32) {
	h := maphash.Bytes(v.seed, key)
	tag := uint32(h>>32) | 1
	return h, tag
}

func (v *vocabTable) hashString(key string) (uint64, uint32) {
	h := maphash.String(v.seed, key)
	tag := uint32(h>>32) | 1
	return h, tag
}

// insert adds key -> id; it reports false when key is already present.
func (v *vocabTable) insert(key string, id int32) bool {
	h, tag := v.hashString(key)
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.hash == 0 {
			for int(id) >= len(v.keys) {
				v.keys = append(v.keys, "")
			}
			v.keys[id] = key
			*s = vocabSlot{hash: tag, id: id}
			v.n++
			return true
		}
		if s.hash == tag && v.keys[s.id] == key {
			return false
		}
	}
}

func (v *vocabTable) get(key []byte) (int32, bool) {
	h, tag := v.hash(key)
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.hash == 0 {
			return 0, false
		}
		if s.hash == tag && v.keys[s.id] == string(key) {
			return s.id, true
		}
	}
}

func (v *vocabTable) getString(key string) (int32, bool) {
	h, tag := v.hashString(key)
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.hash == 0 {
			return 0, false
		}
		if s.hash == tag && v.keys[s.id] == key {
			return s.id, true
		}
	}
}

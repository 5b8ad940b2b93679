package tokenizer

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
)

// vocabTable maps the raw bytes of a token to its id. It is an
// open-addressing table whose slots hold the first 8 bytes of the key, its
// length and a hash tag, so a lookup of a key of up to 8 bytes (most tokens)
// touches one cache line and a longer one compares the rest through keys.
// It serves the ignore_merges lookup of every pre-token and the 840k lookups
// of loading the merges, where a map[string]int32 was the slowest part.
// Read-only after loading.
type vocabTable struct {
	seed  maphash.Seed
	slots []vocabSlot
	mask  uint64
	keys  []string // id -> key
	n     int
}

type vocabSlot struct {
	head uint64 // the key's first 8 bytes, little-endian, zero-padded
	meta uint32 // hash tag << 8 | min(len, 255); 0 marks an empty slot
	id   int32
}

func newVocabTable(n int) *vocabTable {
	size := 1 << bits.Len(uint(n*2+1))
	return &vocabTable{seed: maphash.MakeSeed(), slots: make([]vocabSlot, size), mask: uint64(size - 1)}
}

// keyHead packs up to the first 8 bytes of key.
func keyHead[S string | []byte](key S) uint64 {
	if len(key) >= 8 {
		return binary.LittleEndian.Uint64([]byte(key[:8]))
	}
	var h uint64
	for i := len(key) - 1; i >= 0; i-- {
		h = h<<8 | uint64(key[i])
	}
	return h
}

// shortHash hashes a key of up to 8 bytes from its packed head: cheaper
// than a maphash call, and most tokens are that short. Longer keys use
// maphash.
func shortHash(head uint64, n int) uint64 {
	// MurmurHash3's 64-bit finaliser: every input bit reaches the low bits
	// the table indexes with.
	h := head ^ uint64(n)<<59
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

func keyMeta(h uint64, n int) uint32 {
	return uint32(h>>40)<<8 | uint32(min(n, 255)) | 1<<8 // never 0
}

// insert adds key -> id; it reports false when key is already present.
func (v *vocabTable) insert(key string, id int32) bool {
	head := keyHead(key)
	h := shortHash(head, len(key))
	if len(key) > 8 {
		h = maphash.String(v.seed, key)
	}
	meta := keyMeta(h, len(key))
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.meta == 0 {
			for int(id) >= len(v.keys) {
				v.keys = append(v.keys, "")
			}
			v.keys[id] = key
			*s = vocabSlot{head: head, meta: meta, id: id}
			v.n++
			return true
		}
		if s.meta == meta && s.head == head && v.keys[s.id] == key {
			return false
		}
	}
}

func (v *vocabTable) get(key []byte) (int32, bool) {
	head := keyHead(key)
	var h uint64
	if len(key) > 8 {
		h = maphash.Bytes(v.seed, key)
	} else {
		h = shortHash(head, len(key))
	}
	meta := keyMeta(h, len(key))
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.meta == meta && s.head == head && (len(key) <= 8 || v.keys[s.id][8:] == string(key[8:])) {
			return s.id, true
		}
		if s.meta == 0 {
			return 0, false
		}
	}
}

func (v *vocabTable) getString(key string) (int32, bool) {
	head := keyHead(key)
	var h uint64
	if len(key) > 8 {
		h = maphash.String(v.seed, key)
	} else {
		h = shortHash(head, len(key))
	}
	meta := keyMeta(h, len(key))
	for i := h & v.mask; ; i = (i + 1) & v.mask {
		s := &v.slots[i]
		if s.meta == meta && s.head == head && (len(key) <= 8 || v.keys[s.id][8:] == key[8:]) {
			return s.id, true
		}
		if s.meta == 0 {
			return 0, false
		}
	}
}

package tokenizer

// encodeState is per-goroutine scratch space. It lives in a sync.Pool, whose
// items are per-P, so its word cache needs no lock.
type encodeState struct {
	ids   []int32
	count []int32 // CountTokens' output
	pairs []pairMerge
	sym   []symbol
	queue mergeQueue
	cache map[string][]int32
}

// Cache bounds: words up to cacheWordMax bytes, cacheEntries words per state
// (the cache is dropped when full: cheap, and real text re-fills it fast).
const (
	cacheWordMax = 64
	cacheEntries = 1 << 15
)

func (t *Tokenizer) getState() *encodeState {
	if st, ok := t.scratch.Get().(*encodeState); ok {
		return st
	}
	return &encodeState{cache: make(map[string][]int32, 1024)}
}

// encodeWord appends the BPE ids of one pre-token piece.
func (t *Tokenizer) encodeWord(st *encodeState, out []int32, w string) []int32 {
	if len(w) == 1 {
		return append(out, t.byteID[w[0]])
	}
	if t.ignoreMerges {
		if id, ok := t.vocab.getString(w); ok {
			return append(out, id)
		}
	}
	if len(w) <= cacheWordMax {
		if ids, ok := st.cache[w]; ok {
			return append(out, ids...)
		}
	}
	start := len(out)
	if len(w) <= 256 {
		out = t.mergeSmall(st, out, w)
	} else {
		out = t.mergeLarge(st, out, w)
	}
	if len(w) <= cacheWordMax {
		if len(st.cache) >= cacheEntries {
			clear(st.cache)
		}
		st.cache[w] = append([]int32(nil), out[start:]...)
	}
	return out
}

// mergeSmall applies merges by repeatedly merging the lowest-ranked adjacent
// pair (leftmost on ties). It keeps the rank of every adjacent pair in an
// array, so a merge costs two table lookups and a scan of the (short) array:
// the fastest for words up to a few hundred bytes.
func (t *Tokenizer) mergeSmall(st *encodeState, out []int32, w string) []int32 {
	ids := st.ids[:0]
	for i := 0; i < len(w); i++ {
		ids = append(ids, t.byteID[w[i]])
	}
	pr := st.pairs[:0]
	for i := 0; i+1 < len(ids); i++ {
		pr = append(pr, t.pairAt(ids[i], ids[i+1]))
	}
	for len(ids) > 1 {
		best := -1
		bestRank := int32(noMerge)
		for i, p := range pr {
			if p.rank < bestRank {
				best, bestRank = i, p.rank
			}
		}
		if best < 0 {
			break
		}
		ids[best] = pr[best].merged
		ids = append(ids[:best+1], ids[best+2:]...)
		pr = append(pr[:best], pr[best+1:]...)
		if best > 0 {
			pr[best-1] = t.pairAt(ids[best-1], ids[best])
		}
		if best < len(pr) {
			pr[best] = t.pairAt(ids[best], ids[best+1])
		}
	}
	st.ids, st.pairs = ids, pr
	return append(out, ids...)
}

// noMerge is the rank of a pair that never merges.
const noMerge = 1<<31 - 1

type pairMerge struct{ rank, merged int32 }

func (t *Tokenizer) pairAt(a, b int32) pairMerge {
	if r, m, ok := t.merges.get(a, b); ok {
		return pairMerge{r, m}
	}
	return pairMerge{noMerge, 0}
}

// symbol is a node of the doubly linked list of a long word's tokens.
type symbol struct {
	id         int32
	prev, next int32 // indexes in sym, -1 at the ends
	gone       bool
}

// mergeCand is a possible merge of sym[pos] with its successor. order is
// rank<<32 | pos: the queue pops the lowest rank, leftmost first.
type mergeCand struct {
	order       uint64
	left, right int32 // the ids it was computed for, to detect stale entries
	merged      int32
}

// mergeQueue is a binary min-heap of merge candidates (typed, because
// container/heap's interface calls were most of the time on long words).
type mergeQueue []mergeCand

func (q *mergeQueue) push(c mergeCand) {
	h := append(*q, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].order <= h[i].order {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	*q = h
}

func (q *mergeQueue) pop() mergeCand {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].order < h[l].order {
			m = r
		}
		if h[i].order <= h[m].order {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// mergeLarge is the same merge order as mergeSmall in O(n log n): a priority
// queue of candidate merges ordered by (rank, position) over a linked list.
// Positions are the index of the left symbol, which never moves, so the
// order matches leftmost-first on equal ranks.
func (t *Tokenizer) mergeLarge(st *encodeState, out []int32, w string) []int32 {
	sym := st.sym[:0]
	for i := 0; i < len(w); i++ {
		sym = append(sym, symbol{id: t.byteID[w[i]], prev: int32(i - 1), next: int32(i + 1)})
	}
	sym[len(sym)-1].next = -1
	q := st.queue[:0]
	push := func(pos int32) {
		nx := sym[pos].next
		if nx < 0 {
			return
		}
		if r, m, ok := t.merges.get(sym[pos].id, sym[nx].id); ok {
			q.push(mergeCand{order: uint64(r)<<32 | uint64(pos), left: sym[pos].id, right: sym[nx].id, merged: m})
		}
	}
	for i := range sym {
		push(int32(i))
	}
	for len(q) > 0 {
		c := q.pop()
		pos := int32(c.order)
		s := &sym[pos]
		if s.gone || s.id != c.left || s.next < 0 || sym[s.next].id != c.right {
			continue // stale: one side has merged since this was queued
		}
		nx := s.next
		s.id = c.merged
		sym[nx].gone = true
		s.next = sym[nx].next
		if s.next >= 0 {
			sym[s.next].prev = pos
		}
		if s.prev >= 0 {
			push(s.prev)
		}
		push(pos)
	}
	for i := int32(0); i >= 0; i = sym[i].next {
		out = append(out, sym[i].id)
	}
	st.sym = sym
	st.queue = q[:0]
	return out
}

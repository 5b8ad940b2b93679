package cpu

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gorgonia.org/tensor"

	"llamaembed/model"
	"llamaembed/model/cpu/gemm"
)

// qBlock is how many query rows of one head attention scores at a time. It
// bounds the score buffer to qBlock×seqlen floats per worker, and because a
// block never mixes sequences, a row's scores never depend on its neighbours.
const qBlock = 64

// workspace holds the activation buffers, grown to the largest batch seen
// and reused, so a Forward call allocates little beyond its results.
type workspace struct {
	tokens  int // capacity in tokens
	x, xn   []float32
	tmp     []float32
	q, attn []float32
	k, v    []float32
	gate    []float32
	up      []float32

	pos    []int32     // each token's position in its sequence
	scores [][]float32 // one attention score buffer per worker
	items  []attnItem
}

// activations are the workspace buffers for one batch of T tokens, shaped
// as tensors: [T, hidden] residual stream, [T, heads*head_dim] queries and
// attention output, [T, kv_heads*head_dim] keys and values, [T, inter] MLP.
type activations struct {
	x, xn, tmp *tensor.Dense
	q, attn    *tensor.Dense
	k, v       *tensor.Dense
	gate, up   *tensor.Dense
}

func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]float32, n)
}

// activations returns tensors over the workspace for a batch of T tokens
// whose longest sequence has maxLen tokens, growing the buffers if needed.
func (b *Backend) activations(T, maxLen int) *activations {
	c := b.cfg
	h, qd, kvd, inter := c.HiddenSize, c.NumAttentionHeads*c.HeadDim, c.NumKeyValueHeads*c.HeadDim, c.IntermediateSize
	ws := &b.ws
	if T > ws.tokens {
		ws.x = grow(ws.x, T*h)
		ws.xn = grow(ws.xn, T*h)
		ws.tmp = grow(ws.tmp, T*h)
		ws.q = grow(ws.q, T*qd)
		ws.attn = grow(ws.attn, T*qd)
		ws.k = grow(ws.k, T*kvd)
		ws.v = grow(ws.v, T*kvd)
		ws.gate = grow(ws.gate, T*inter)
		ws.up = grow(ws.up, T*inter)
		ws.tokens = T
	}
	workers := runtime.GOMAXPROCS(0)
	for len(ws.scores) < workers {
		ws.scores = append(ws.scores, nil)
	}
	for i := range ws.scores {
		ws.scores[i] = grow(ws.scores[i], qBlock*maxLen)
	}
	dense := func(buf []float32, cols int) *tensor.Dense {
		return tensor.New(tensor.WithShape(T, cols), tensor.WithBacking(buf[:T*cols]))
	}
	return &activations{
		x: dense(ws.x, h), xn: dense(ws.xn, h), tmp: dense(ws.tmp, h),
		q: dense(ws.q, qd), attn: dense(ws.attn, qd),
		k: dense(ws.k, kvd), v: dense(ws.v, kvd),
		gate: dense(ws.gate, inter), up: dense(ws.up, inter),
	}
}

// rows is the leading dimension of a [rows, cols] activation tensor.
func rows(t *tensor.Dense) int { return t.Shape()[0] }

// linear computes outs[i] = x · ws[i]ᵀ for the activation tensors x
// [T, K] and outs[i] [T, ws[i].N]. Projections of one input go in one call,
// so gemm packs x once for all of them.
func linear(outs []*tensor.Dense, x *tensor.Dense, ws ...gemm.Weight) {
	bufs := make([][]float32, len(outs))
	for i, out := range outs {
		w := ws[i]
		if x.Shape()[1] != w.K || out.Shape()[1] != w.N || rows(out) != rows(x) {
			panic(fmt.Sprintf("cpu: linear %v · [%d %d]ᵀ -> %v", x.Shape(), w.N, w.K, out.Shape()))
		}
		bufs[i] = out.Float32s()
	}
	gemm.LinearMulti(bufs, x.Float32s(), ws, rows(x))
}

// tensors lists activation tensors, for linear.
func tensors(ts ...*tensor.Dense) []*tensor.Dense { return ts }

// Forward runs the layers over a packed batch and returns each sequence's
// mean-pooled final hidden state.
func (b *Backend) Forward(ctx context.Context, batch model.Batch) ([][]float32, error) {
	if err := b.checkBatch(batch); err != nil {
		return nil, err
	}
	cu := batch.CuSeqlens
	maxLen := 0
	for i := 1; i < len(cu); i++ {
		maxLen = max(maxLen, int(cu[i]-cu[i-1]))
	}
	T := len(batch.Tokens)
	a := b.activations(T, maxLen)
	b.rope.ensure(maxLen)
	eps := b.cfg.RMSNormEps
	// Every sequence has positions 0..n-1.
	pos := b.ws.pos[:0]
	for s := 0; s+1 < len(cu); s++ {
		for p := range cu[s+1] - cu[s] {
			pos = append(pos, p)
		}
	}
	b.ws.pos = pos

	b.embedTokens(a.x, batch.Tokens)
	for i := range b.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l := &b.layers[i]

		// Self-attention block: x += o(attention(rope(q(n(x))), rope(k(n(x))), v(n(x)))).
		rmsNorm(a.xn.Float32s(), a.x.Float32s(), l.attnNorm, eps)
		linear(tensors(a.q, a.k, a.v), a.xn, l.q, l.k, l.v)
		b.applyRope(a.q, pos)
		b.applyRope(a.k, pos)
		b.attention(a.attn, a.q, a.k, a.v, cu)
		linear(tensors(a.tmp), a.attn, l.o)
		addInto(a.x.Float32s(), a.tmp.Float32s())

		// MLP block: x += down(silu(gate(n(x))) * up(n(x))).
		rmsNorm(a.xn.Float32s(), a.x.Float32s(), l.mlpNorm, eps)
		linear(tensors(a.gate, a.up), a.xn, l.gate, l.up)
		swiGLU(a.gate.Float32s(), a.up.Float32s())
		linear(tensors(a.tmp), a.gate, l.down)
		addInto(a.x.Float32s(), a.tmp.Float32s())
	}
	rmsNorm(a.xn.Float32s(), a.x.Float32s(), b.finalNorm, eps)
	return meanPool(a.xn, cu), nil
}

// embedTokens gathers the embedding rows of the tokens into x [T, hidden].
func (b *Backend) embedTokens(x *tensor.Dense, tokens []int32) {
	h := b.cfg.HiddenSize
	xs := x.Float32s()
	parallelFor(len(tokens), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			decodeRow(xs[t*h:(t+1)*h], b.embed, int(tokens[t]))
		}
	})
}

// applyRope rotates every head of every token row of x at the token's
// position within its own sequence (pos[t]).
func (b *Backend) applyRope(x *tensor.Dense, pos []int32) {
	width := x.Shape()[1]
	xs := x.Float32s()
	parallelFor(len(pos), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			b.rope.apply(xs[t*width:(t+1)*width], int(pos[t]))
		}
	})
}

// attnItem is one unit of attention work: qBlock query rows of one head of
// one sequence.
type attnItem struct {
	start, n int // the sequence's first token and length
	head, i0 int // query head and first query row within the sequence
}

// attention computes, for every sequence and query head, softmax(q·kᵀ /
// sqrt(head_dim))·v over the sequence's own tokens with no mask; query head
// h reads kv head h/(heads/kv_heads). Work items run in parallel.
func (b *Backend) attention(out, q, k, v *tensor.Dense, cu []int32) {
	c := b.cfg
	H, D := c.NumAttentionHeads, c.HeadDim
	group := H / c.NumKeyValueHeads
	qStride, kvStride := q.Shape()[1], k.Shape()[1]
	scale := float32(1 / math.Sqrt(float64(D)))
	qs, ks, vs, outs := q.Float32s(), k.Float32s(), v.Float32s(), out.Float32s()

	items := b.ws.items[:0]
	for s := 0; s+1 < len(cu); s++ {
		start, n := int(cu[s]), int(cu[s+1]-cu[s])
		for h := range H {
			for i0 := 0; i0 < n; i0 += qBlock {
				items = append(items, attnItem{start, n, h, i0})
			}
		}
	}
	b.ws.items = items

	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(len(b.ws.scores), len(items)) {
		scores := b.ws.scores[w]
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				it := items[i]
				rowsN := min(qBlock, it.n-it.i0)
				kv := it.head / group
				qa := qs[(it.start+it.i0)*qStride+it.head*D:]
				kb := ks[it.start*kvStride+kv*D:]
				vb := vs[it.start*kvStride+kv*D:]
				oa := outs[(it.start+it.i0)*qStride+it.head*D:]
				sc := scores[:rowsN*it.n]
				gemm.SgemmNT(rowsN, it.n, D, qa, qStride, kb, kvStride, sc, it.n)
				for r := range rowsN {
					row := sc[r*it.n : (r+1)*it.n]
					for j := range row {
						row[j] *= scale
					}
					softmaxRow(row)
				}
				gemm.SgemmNN(rowsN, D, it.n, sc, it.n, vb, kvStride, oa, qStride)
			}
		})
	}
	wg.Wait()
}

// meanPool returns, per sequence, the mean of its rows of x [T, hidden],
// summed in float64.
func meanPool(x *tensor.Dense, cu []int32) [][]float32 {
	h := x.Shape()[1]
	xs := x.Float32s()
	out := make([][]float32, len(cu)-1)
	backing := make([]float32, (len(cu)-1)*h)
	parallelFor(len(out), func(lo, hi int) {
		sum := make([]float64, h)
		for s := lo; s < hi; s++ {
			clear(sum)
			for t := cu[s]; t < cu[s+1]; t++ {
				for j, v := range xs[int(t)*h : int(t+1)*h] {
					sum[j] += float64(v)
				}
			}
			o := backing[s*h : (s+1)*h]
			n := float64(cu[s+1] - cu[s])
			for j := range o {
				o[j] = float32(sum[j] / n)
			}
			out[s] = o
		}
	})
	return out
}

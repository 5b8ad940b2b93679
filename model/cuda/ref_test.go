package cuda

// CPU references for the kernels, in float64, rounding to bf16 exactly where
// the kernels store bf16. The GPU tests compare each kernel with them; the
// host test TestReferenceForwardMatchesFixture runs them as a whole encoder
// against testdata/tiny-llama-a.json, so the references (and the host-side
// tables they share with the backend) are themselves checked.

import (
	"math"
	"strconv"

	"llamaembed/model"
	"llamaembed/weights"
)

// bf rounds to the nearest bf16 value.
func bf(x float64) float32 { return weights.BF16ToFloat32(weights.Float32ToBF16(float32(x))) }

// refGemm: y[m,n] = bf(sum_k x[m,k] w[n,k] (+ r[m,n])).
func refGemm(x, w, r []float32, M, N, K int) []float32 {
	y := make([]float32, M*N)
	for m := 0; m < M; m++ {
		xr := x[m*K : (m+1)*K]
		for n := 0; n < N; n++ {
			wr := w[n*K : (n+1)*K]
			var s float64
			for k := range xr {
				s += float64(xr[k]) * float64(wr[k])
			}
			if r != nil {
				s += float64(r[m*N+n])
			}
			y[m*N+n] = bf(s)
		}
	}
	return y
}

// refAddNorm updates the fp32 residual h with delta (if any) and returns
// the bf16 normed rows.
func refAddNorm(h, delta, w []float32, T, H int, eps float64) []float32 {
	out := make([]float32, T*H)
	for t := 0; t < T; t++ {
		row := h[t*H : (t+1)*H]
		var ss float64
		for i := range row {
			if delta != nil {
				row[i] = float32(float64(row[i]) + float64(delta[t*H+i]))
			}
			ss += float64(row[i]) * float64(row[i])
		}
		inv := 1 / math.Sqrt(ss/float64(H)+eps)
		for i := range row {
			out[t*H+i] = bf(float64(row[i]) * inv * float64(w[i]))
		}
	}
	return out
}

// refRope rotates the q and k heads of qkv in place.
func refRope(qkv []float32, pos []int32, cos, sin []float32, T int, s shape) {
	half, ld := s.HeadDim/2, s.QKVDim()
	for t := 0; t < T; t++ {
		for hd := 0; hd < s.Heads+s.KVHeads; hd++ {
			x := qkv[t*ld+hd*s.HeadDim:]
			for i := 0; i < half; i++ {
				c, sn := float64(cos[int(pos[t])*half+i]), float64(sin[int(pos[t])*half+i])
				a, b := float64(x[i]), float64(x[i+half])
				x[i], x[i+half] = bf(a*c-b*sn), bf(b*c+a*sn)
			}
		}
	}
}

// refAttention: softmax(q kᵀ / sqrt(D)) v within each sequence, no mask.
func refAttention(qkv []float32, cu []int32, s shape) []float32 {
	D, ld := s.HeadDim, s.QKVDim()
	T := int(cu[len(cu)-1])
	out := make([]float32, T*s.QDim())
	scale := 1 / math.Sqrt(float64(D))
	for si := 0; si+1 < len(cu); si++ {
		t0, t1 := int(cu[si]), int(cu[si+1])
		for h := 0; h < s.Heads; h++ {
			kvh := h / (s.Heads / s.KVHeads)
			qo, ko, vo := h*D, s.QDim()+kvh*D, s.QDim()+s.KVDim()+kvh*D
			sc := make([]float64, t1-t0)
			for i := t0; i < t1; i++ {
				mx := math.Inf(-1)
				for j := t0; j < t1; j++ {
					var d float64
					for e := 0; e < D; e++ {
						d += float64(qkv[i*ld+qo+e]) * float64(qkv[j*ld+ko+e])
					}
					sc[j-t0] = d * scale
					mx = math.Max(mx, sc[j-t0])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for e := 0; e < D; e++ {
					var o float64
					for j := t0; j < t1; j++ {
						o += sc[j-t0] * float64(qkv[j*ld+vo+e])
					}
					out[i*s.QDim()+h*D+e] = bf(o / sum)
				}
			}
		}
	}
	return out
}

// refSwiGLU: out[t,i] = bf(silu(gu[t,i]) * gu[t,I+i]).
func refSwiGLU(gu []float32, T, I int) []float32 {
	out := make([]float32, T*I)
	for t := 0; t < T; t++ {
		for i := 0; i < I; i++ {
			g, u := float64(gu[t*2*I+i]), float64(gu[t*2*I+I+i])
			out[t*I+i] = bf(g / (1 + math.Exp(-g)) * u)
		}
	}
	return out
}

// refEmbed gathers rows of the bf16 table into the fp32 residual.
func refEmbed(table []float32, tokens []int32, H int) []float32 {
	h := make([]float32, len(tokens)*H)
	for t, id := range tokens {
		copy(h[t*H:(t+1)*H], table[int(id)*H:(int(id)+1)*H])
	}
	return h
}

// refMeanPool: per-sequence mean of x's rows, in float64.
func refMeanPool(x []float32, cu []int32, H int) [][]float64 {
	out := make([][]float64, len(cu)-1)
	for s := range out {
		v := make([]float64, H)
		t0, t1 := int(cu[s]), int(cu[s+1])
		for t := t0; t < t1; t++ {
			for d := 0; d < H; d++ {
				v[d] += float64(x[t*H+d])
			}
		}
		for d := range v {
			v[d] /= float64(t1 - t0)
		}
		out[s] = v
	}
	return out
}

// refNormalize truncates to dims and L2-normalises.
func refNormalize(v []float64, dims int) []float64 {
	var ss float64
	for _, x := range v[:dims] {
		ss += x * x
	}
	n := math.Max(math.Sqrt(ss), 1e-12)
	out := make([]float64, dims)
	for i := range out {
		out[i] = v[i] / n
	}
	return out
}

// refModel is an encoder's weights as float32 (bf16 values), fused as the
// backend fuses them.
type refModel struct {
	sh        shape
	embed     []float32
	finalNorm []float32
	layers    []refLayer
	cos, sin  []float32
}

type refLayer struct {
	inNorm, postNorm, qkv, o, gateUp, down []float32
}

func loadRefModel(w *weights.Model, maxPos int) (*refModel, error) {
	sh, err := shapeOf(w.Config)
	if err != nil {
		return nil, err
	}
	f := func(name string) []float32 {
		b, err2 := bf16Tensor(w, name, w.Tensor(name).Shape...)
		if err2 != nil {
			err = err2
			return nil
		}
		out := make([]float32, len(b)/2)
		weights.ToFloat32(out, b, weights.BF16)
		return out
	}
	m := &refModel{sh: sh, embed: f("embed_tokens.weight"), finalNorm: f("norm.weight")}
	for l := 0; l < sh.Layers; l++ {
		p := "layers." + strconv.Itoa(l) + "."
		var rl refLayer
		rl.inNorm = f(p + "input_layernorm.weight")
		rl.postNorm = f(p + "post_attention_layernorm.weight")
		rl.qkv = append(append(f(p+"self_attn.q_proj.weight"), f(p+"self_attn.k_proj.weight")...), f(p+"self_attn.v_proj.weight")...)
		rl.o = f(p + "self_attn.o_proj.weight")
		rl.gateUp = append(f(p+"mlp.gate_proj.weight"), f(p+"mlp.up_proj.weight")...)
		rl.down = f(p + "mlp.down_proj.weight")
		m.layers = append(m.layers, rl)
	}
	m.cos, m.sin = ropeTables(model.RopeInvFreq(w.Config, sh.HeadDim), maxPos)
	return m, err
}

// forward is the backend's forward pass, step for step, on the CPU: the
// pooled, normalised (full-width) vector per sequence.
func (m *refModel) forward(p *packed) [][]float64 {
	sh := m.sh
	T, H, I := len(p.Tokens), sh.Hidden, sh.Inter
	eps := float64(sh.Eps)
	h := refEmbed(m.embed, p.Tokens, H)
	var pending []float32
	for _, l := range m.layers {
		xn := refAddNorm(h, pending, l.inNorm, T, H, eps)
		qkv := refGemm(xn, l.qkv, nil, T, sh.QKVDim(), H)
		refRope(qkv, p.Positions, m.cos, m.sin, T, sh)
		attn := refAttention(qkv, p.CuSeqlens, sh)
		delta := refGemm(attn, l.o, nil, T, H, sh.QDim())
		xn = refAddNorm(h, delta, l.postNorm, T, H, eps)
		gu := refGemm(xn, l.gateUp, nil, T, 2*I, H)
		act := refSwiGLU(gu, T, I)
		pending = refGemm(act, l.down, nil, T, H, I)
	}
	xn := refAddNorm(h, pending, m.finalNorm, T, H, eps)
	pooled := refMeanPool(xn, p.CuSeqlens, H)
	for i := range pooled {
		pooled[i] = refNormalize(pooled[i], H)
	}
	return pooled
}

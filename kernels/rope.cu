// rope.cu: rotary position embedding, in place on the q and k heads of the
// fused QKV output, in the rotate-half convention of Hugging Face Llama:
//
//   a = x[i], b = x[i + D/2], c = cos_t[pos[t], i], s = sin_t[pos[t], i]   (i < D/2)
//   x[i]       = a*c - b*s
//   x[i + D/2] = b*c + a*s
//
// pos holds each token's position inside its own sequence (0..n-1, built on
// the host from cu_seqlens). cos_t and sin_t are [max_pos][D/2] fp32 tables
// of the llama3-scaled frequencies, computed once on the host in float64 and
// rounded once, so large positions lose nothing to an fp32 angle and the
// kernel does no transcendental math.
//
// Launch: 1-D, one thread per (token, q-or-k head, i): grid
// ceil(tokens*(heads+kv_heads)*D/2 / ROPE_THREADS), block ROPE_THREADS.
#include "common.cuh"

#define ROPE_THREADS 256

extern "C" __global__ void __launch_bounds__(ROPE_THREADS)
rope_qk(__nv_bfloat16 *__restrict__ qkv, const int *__restrict__ pos, const float *__restrict__ cos_t,
	const float *__restrict__ sin_t, int tokens, int heads, int kv_heads, int head_dim) {
	const int half = head_dim / 2;
	const int rot_heads = heads + kv_heads; // q heads then k heads, contiguous in a row
	const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= (long long)tokens * rot_heads * half) return;
	const int i = (int)(idx % half);
	const long long th = idx / half;
	const int hd = (int)(th % rot_heads);
	const int t = (int)(th / rot_heads);
	__nv_bfloat16 *x = qkv + (size_t)t * (heads + 2 * kv_heads) * head_dim + (size_t)hd * head_dim;
	const size_t ti = (size_t)pos[t] * half + i;
	const float c = cos_t[ti], s = sin_t[ti];
	const float a = bf2f(x[i]), b = bf2f(x[i + half]);
	x[i] = f2bf(a * c - b * s);
	x[i + half] = f2bf(b * c + a * s);
}

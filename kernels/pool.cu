// pool.cu: the sentence embedding from the final-norm hidden states.
//
//   mean_pool:    pooled[s, d] = mean over t in sequence s of x[t, d]
//   l2_normalize: out[s, :dims] = pooled[s, :dims] / max(||pooled[s, :dims]||, 1e-12)
//
// x is bf16 [tokens, hidden], sequences given by cu_seqlens; pooled and out
// are fp32. dims <= hidden truncates first (Matryoshka), then normalises, as
// the models' reference pooling does.
//
// Launch: mean_pool grid (sequences, ceil(hidden/POOL_THREADS)), block
// POOL_THREADS; l2_normalize grid (sequences), block POOL_THREADS.
#include "common.cuh"

#define POOL_THREADS 256

extern "C" __global__ void __launch_bounds__(POOL_THREADS)
mean_pool(const __nv_bfloat16 *__restrict__ x, const int *__restrict__ cu_seqlens, float *__restrict__ pooled,
	  int hidden) {
	const int s = blockIdx.x, d = blockIdx.y * blockDim.x + threadIdx.x;
	if (d >= hidden) return;
	const int t0 = cu_seqlens[s], t1 = cu_seqlens[s + 1];
	// Four independent partial sums keep several loads in flight.
	float a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;
	int t = t0;
	for (; t + 4 <= t1; t += 4) {
		a0 += bf2f(x[(size_t)t * hidden + d]);
		a1 += bf2f(x[(size_t)(t + 1) * hidden + d]);
		a2 += bf2f(x[(size_t)(t + 2) * hidden + d]);
		a3 += bf2f(x[(size_t)(t + 3) * hidden + d]);
	}
	for (; t < t1; t++) a0 += bf2f(x[(size_t)t * hidden + d]);
	const int n = t1 - t0;
	pooled[(size_t)s * hidden + d] = n > 0 ? ((a0 + a1) + (a2 + a3)) / (float)n : 0.f;
}

extern "C" __global__ void __launch_bounds__(POOL_THREADS)
l2_normalize(const float *__restrict__ pooled, float *__restrict__ out, int hidden, int dims) {
	__shared__ float scratch[32];
	const float *in = pooled + (size_t)blockIdx.x * hidden;
	float ss = 0.f;
	for (int d = threadIdx.x; d < dims; d += blockDim.x) ss += in[d] * in[d];
	ss = block_sum(ss, scratch);
	const float inv = 1.f / fmaxf(sqrtf(ss), 1e-12f);
	for (int d = threadIdx.x; d < dims; d += blockDim.x) out[(size_t)blockIdx.x * dims + d] = in[d] * inv;
}

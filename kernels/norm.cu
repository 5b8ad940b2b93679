// norm.cu: the fused residual add + RMSNorm that sits between every pair of
// sublayers:
//
//   h[t,:] += delta[t,:]                      (skipped when delta is null)
//   out[t,:] = h[t,:] / sqrt(mean(h[t,:]^2) + eps) * w
//
// h is the fp32 residual stream [tokens, hidden] (kept in fp32 so that 16 or
// 32 layers of additions do not round away in bf16), delta a sublayer's bf16
// output, w the norm's bf16 weight, out the bf16 input of the next GEMM. The
// same kernel with delta = null is the first layer's input norm; with the
// last MLP's output it is the final norm.
//
// Launch: grid (tokens), block NORM_THREADS. Requires hidden % 2 == 0.
#include "common.cuh"

#define NORM_THREADS 256

extern "C" __global__ void __launch_bounds__(NORM_THREADS)
add_rmsnorm(float *__restrict__ h, const __nv_bfloat16 *__restrict__ delta, const __nv_bfloat16 *__restrict__ w,
	    __nv_bfloat16 *__restrict__ out, int hidden, float eps) {
	__shared__ float scratch[32];
	const size_t row = (size_t)blockIdx.x * hidden;
	float2 *h2 = reinterpret_cast<float2 *>(h + row);
	const int n2 = hidden / 2;
	float ss = 0.f;
	for (int i = threadIdx.x; i < n2; i += blockDim.x) {
		float2 x = h2[i];
		if (delta != nullptr) {
			const float2 d = unpack_bf16x2(reinterpret_cast<const uint32_t *>(delta + row)[i]);
			x.x += d.x;
			x.y += d.y;
			h2[i] = x;
		}
		ss += x.x * x.x + x.y * x.y;
	}
	ss = block_sum(ss, scratch);
	const float inv = rsqrtf(ss / (float)hidden + eps);
	uint32_t *o2 = reinterpret_cast<uint32_t *>(out + row);
	const uint32_t *w2 = reinterpret_cast<const uint32_t *>(w);
	for (int i = threadIdx.x; i < n2; i += blockDim.x) {
		const float2 x = h2[i]; // this thread wrote it above
		const float2 ww = unpack_bf16x2(w2[i]);
		o2[i] = pack_bf16x2(x.x * inv * ww.x, x.y * inv * ww.y);
	}
}

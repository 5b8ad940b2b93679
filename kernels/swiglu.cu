// swiglu.cu: the MLP's gated activation on the fused gate/up projection:
//
//   out[t, i] = silu(gu[t, i]) * gu[t, inter + i],  silu(x) = x / (1 + e^-x)
//
// gu is [tokens, 2*inter] (gate columns first, then up, as the host fuses
// the two weights), out is [tokens, inter]; bf16 in and out, fp32 math.
//
// Launch: 1-D over tokens*inter/2 (two columns per thread), block
// SWIGLU_THREADS. Requires inter % 2 == 0.
#include "common.cuh"

#define SWIGLU_THREADS 256

extern "C" __global__ void __launch_bounds__(SWIGLU_THREADS)
swiglu(const __nv_bfloat16 *__restrict__ gu, __nv_bfloat16 *__restrict__ out, int tokens, int inter) {
	const int half = inter / 2;
	const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
	if (idx >= (long long)tokens * half) return;
	const int t = (int)(idx / half), i = (int)(idx % half) * 2;
	const __nv_bfloat16 *row = gu + (size_t)t * 2 * inter;
	const float2 g = unpack_bf16x2(*reinterpret_cast<const uint32_t *>(row + i));
	const float2 u = unpack_bf16x2(*reinterpret_cast<const uint32_t *>(row + inter + i));
	const float a = g.x / (1.f + expf(-g.x)) * u.x;
	const float b = g.y / (1.f + expf(-g.y)) * u.y;
	*reinterpret_cast<uint32_t *>(out + (size_t)t * inter + i) = pack_bf16x2(a, b);
}

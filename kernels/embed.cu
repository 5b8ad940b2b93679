// embed.cu: the embedding lookup, h[t, :] = float(table[tokens[t], :]), from
// the bf16 table into the fp32 residual stream. The host validates token ids
// before upload; an id outside [0, vocab) that slipped through writes NaN,
// so it shows in the output instead of reading another row.
//
// Launch: grid (tokens), block EMBED_THREADS. Requires hidden % 2 == 0.
#include "common.cuh"

#define EMBED_THREADS 256

extern "C" __global__ void __launch_bounds__(EMBED_THREADS)
embed_gather(const __nv_bfloat16 *__restrict__ table, const int *__restrict__ tokens, float *__restrict__ h,
	     int hidden, int vocab) {
	const int id = tokens[blockIdx.x];
	float2 *dst = reinterpret_cast<float2 *>(h + (size_t)blockIdx.x * hidden);
	const int n2 = hidden / 2;
	if (id < 0 || id >= vocab) {
		for (int i = threadIdx.x; i < n2; i += blockDim.x) dst[i] = make_float2(__int_as_float(0x7fc00000), __int_as_float(0x7fc00000));
		return;
	}
	const uint32_t *src = reinterpret_cast<const uint32_t *>(table + (size_t)id * hidden);
	for (int i = threadIdx.x; i < n2; i += blockDim.x) dst[i] = unpack_bf16x2(src[i]);
}

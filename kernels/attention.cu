// attention.cu: bidirectional (no causal mask) multi-head attention over a
// packed variable-length batch, flash-attention style: one pass over K and V
// with an online softmax, so the seq x seq score matrix never reaches memory.
//
//   out[t, h, :] = softmax_j(q[t,h,:] · k[j,kvh,:] * scale) · v[j,kvh,:]
//
// for j over the tokens of t's own sequence (cu_seqlens), kvh = h / (heads /
// kv_heads) (grouped-query attention). q, k and v are read from the fused QKV
// projection's output, one row per token: [q heads | k heads | v heads],
// each head_dim wide. out is [tokens, heads*head_dim]. bf16 in and out; the
// scores, softmax and accumulators are fp32 (mma.sync m16n8k16).
//
// Launch: grid (ntiles, heads), block ATTN_THREADS, dynamic shared memory
// attn_smem_bytes(D) = (ATTN_BQ + 2*2*ATTN_BKV) * D * 2. tiles holds ntiles
// pairs (sequence, first query row): the host cuts each sequence into
// ATTN_BQ-row query tiles, so no block is spent on padding.
// scale_log2 = log2(e) / sqrt(head_dim): the softmax runs in base 2.
//
// Each of the 4 warps owns 16 query rows. Q stays in registers; K and V
// tiles are double-buffered through shared memory with cp.async, rows XOR-
// swizzled in 16-byte chunks so ldmatrix reads are free of bank conflicts.
#include "common.cuh"

#define ATTN_BQ 64
#define ATTN_BKV 64
#define ATTN_THREADS 128

// Element offset of (row, 16-byte chunk c) in a [rows][D] swizzled tile.
template <int D> DEVI int attn_swz(int row, int c) {
	constexpr int CH = D / 8;
	constexpr int MASK = CH >= 8 ? 7 : CH - 1;
	return row * D + ((c ^ (row & MASK)) << 3);
}

// Copies rows [0, 64) of one head from qkv (row stride ld elements) starting
// at token row0; rows at or past nrows are zero-filled.
template <int D>
DEVI void attn_load_tile(__nv_bfloat16 *s, const __nv_bfloat16 *__restrict__ base, int row0, int nrows,
			 size_t ld) {
	constexpr int CH = D / 8;
#pragma unroll
	for (int i = 0; i < (ATTN_BKV * CH + ATTN_THREADS - 1) / ATTN_THREADS; i++) {
		const int c = threadIdx.x + i * ATTN_THREADS;
		if (c < ATTN_BKV * CH) {
			const int r = c / CH, ch = c % CH;
			const bool ok = r < nrows;
			const __nv_bfloat16 *src = ok ? base + (size_t)(row0 + r) * ld + ch * 8 : base;
			cp_async16(s + attn_swz<D>(r, ch), src, ok);
		}
	}
}

template <int D>
DEVI void attn_fwd(const __nv_bfloat16 *__restrict__ qkv, __nv_bfloat16 *__restrict__ out,
		   const int *__restrict__ cu_seqlens, const int *__restrict__ tiles, int heads, int kv_heads,
		   float scale_log2) {
	static_assert(D % 16 == 0 && D <= 128, "head_dim must be a multiple of 16, at most 128");
	constexpr int KSTEPS = D / 16; // k-steps of Q·Kᵀ
	constexpr int DT = D / 8;      // n8 tiles of the output
	DYN_SMEM(attn_smem);
	__nv_bfloat16 *sQ = reinterpret_cast<__nv_bfloat16 *>(attn_smem);
	__nv_bfloat16 *sK = sQ + ATTN_BQ * D;          // [2][BKV][D]
	__nv_bfloat16 *sV = sK + 2 * ATTN_BKV * D;     // [2][BKV][D]

	const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
	const int h = blockIdx.y, kvh = h / (heads / kv_heads);
	const int start = cu_seqlens[seq], len = cu_seqlens[seq + 1] - start;
	const size_t ld = (size_t)(heads + 2 * kv_heads) * D;
	const __nv_bfloat16 *qbase = qkv + (size_t)start * ld + (size_t)h * D;
	const __nv_bfloat16 *kbase = qkv + (size_t)start * ld + (size_t)(heads + kvh) * D;
	const __nv_bfloat16 *vbase = qkv + (size_t)start * ld + (size_t)(heads + kv_heads + kvh) * D;

	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int g = lane >> 2, t = lane & 3;
	const int nkv = (len + ATTN_BKV - 1) / ATTN_BKV;

	attn_load_tile<D>(sQ, qbase, q0, len - q0, ld);
	attn_load_tile<D>(sK, kbase, 0, len, ld);
	attn_load_tile<D>(sV, vbase, 0, len, ld);
	cp_async_commit();

	uint32_t qf[KSTEPS][4];
	float o[DT][4];
#pragma unroll
	for (int j = 0; j < DT; j++)
#pragma unroll
		for (int e = 0; e < 4; e++) o[j][e] = 0.f;
	float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f; // rows g and g+8

	for (int it = 0; it < nkv; it++) {
		const int buf = it & 1;
		if (it + 1 < nkv) {
			const int kv1 = (it + 1) * ATTN_BKV;
			attn_load_tile<D>(sK + (buf ^ 1) * ATTN_BKV * D, kbase, kv1, len - kv1, ld);
			attn_load_tile<D>(sV + (buf ^ 1) * ATTN_BKV * D, vbase, kv1, len - kv1, ld);
			cp_async_commit();
			cp_async_wait<1>();
		} else {
			cp_async_wait<0>();
		}
		__syncthreads();
		if (it == 0) {
#pragma unroll
			for (int kk = 0; kk < KSTEPS; kk++) {
				const int r = warp * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
				ldmatrix_x4(qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], sQ + attn_swz<D>(r, c));
			}
		}
		const __nv_bfloat16 *k = sK + buf * ATTN_BKV * D;
		const __nv_bfloat16 *v = sV + buf * ATTN_BKV * D;

		// S = Q Kᵀ for this warp's 16 rows and the tile's 64 keys.
		float s[ATTN_BKV / 8][4];
#pragma unroll
		for (int j = 0; j < ATTN_BKV / 8; j++)
#pragma unroll
			for (int e = 0; e < 4; e++) s[j][e] = 0.f;
#pragma unroll
		for (int kk = 0; kk < KSTEPS; kk++) {
#pragma unroll
			for (int p = 0; p < ATTN_BKV / 16; p++) {
				const int r = p * 16 + (lane & 7) + (lane >> 4) * 8;
				const int c = kk * 2 + ((lane >> 3) & 1);
				uint32_t b0, b1, b2, b3;
				ldmatrix_x4(b0, b1, b2, b3, k + attn_swz<D>(r, c));
				mma_bf16_16816(s[2 * p], qf[kk], b0, b1);
				mma_bf16_16816(s[2 * p + 1], qf[kk], b2, b3);
			}
		}

		// Online softmax in base 2; keys past the sequence's end get -inf.
		const int kv0 = it * ATTN_BKV;
		float mx_lo = m_lo, mx_hi = m_hi;
#pragma unroll
		for (int j = 0; j < ATTN_BKV / 8; j++) {
			const int col = kv0 + j * 8 + 2 * t;
#pragma unroll
			for (int e = 0; e < 4; e++) {
				const bool valid = col + (e & 1) < len;
				s[j][e] = valid ? s[j][e] * scale_log2 : -INFINITY;
			}
			mx_lo = fmaxf(mx_lo, fmaxf(s[j][0], s[j][1]));
			mx_hi = fmaxf(mx_hi, fmaxf(s[j][2], s[j][3]));
		}
#pragma unroll
		for (int off = 1; off < 4; off <<= 1) {
			mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, off));
			mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, off));
		}
		// Key 0 of every tile is inside the sequence, so mx_* is finite here.
		const float corr_lo = exp2f(m_lo - mx_lo), corr_hi = exp2f(m_hi - mx_hi);
		m_lo = mx_lo;
		m_hi = mx_hi;
		float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
		for (int j = 0; j < ATTN_BKV / 8; j++) {
			s[j][0] = exp2f(s[j][0] - m_lo);
			s[j][1] = exp2f(s[j][1] - m_lo);
			s[j][2] = exp2f(s[j][2] - m_hi);
			s[j][3] = exp2f(s[j][3] - m_hi);
			sum_lo += s[j][0] + s[j][1];
			sum_hi += s[j][2] + s[j][3];
		}
		l_lo = l_lo * corr_lo + sum_lo;
		l_hi = l_hi * corr_hi + sum_hi;
#pragma unroll
		for (int j = 0; j < DT; j++) {
			o[j][0] *= corr_lo;
			o[j][1] *= corr_lo;
			o[j][2] *= corr_hi;
			o[j][3] *= corr_hi;
		}

		// O += P V: P's accumulators are already laid out as A fragments.
#pragma unroll
		for (int kk = 0; kk < ATTN_BKV / 16; kk++) {
			uint32_t pa[4];
			pa[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
			pa[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
			pa[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
			pa[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
			for (int p = 0; p < DT / 2; p++) {
				const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
				const int c = p * 2 + (lane >> 4);
				uint32_t b0, b1, b2, b3;
				ldmatrix_x4_trans(b0, b1, b2, b3, v + attn_swz<D>(r, c));
				mma_bf16_16816(o[2 * p], pa, b0, b1);
				mma_bf16_16816(o[2 * p + 1], pa, b2, b3);
			}
		}
		__syncthreads(); // the next iteration's prefetch overwrites this buffer
	}

#pragma unroll
	for (int off = 1; off < 4; off <<= 1) {
		l_lo += __shfl_xor_sync(0xffffffffu, l_lo, off);
		l_hi += __shfl_xor_sync(0xffffffffu, l_hi, off);
	}
	const float inv_lo = 1.f / l_lo, inv_hi = 1.f / l_hi;
	const int row_lo = q0 + warp * 16 + g, row_hi = row_lo + 8;
	const size_t ldo = (size_t)heads * D;
	__nv_bfloat16 *obase = out + (size_t)start * ldo + (size_t)h * D;
#pragma unroll
	for (int j = 0; j < DT; j++) {
		const int col = j * 8 + 2 * t;
		if (row_lo < len)
			*reinterpret_cast<uint32_t *>(obase + (size_t)row_lo * ldo + col) =
			    pack_bf16x2(o[j][0] * inv_lo, o[j][1] * inv_lo);
		if (row_hi < len)
			*reinterpret_cast<uint32_t *>(obase + (size_t)row_hi * ldo + col) =
			    pack_bf16x2(o[j][2] * inv_hi, o[j][3] * inv_hi);
	}
}

// One entry point per head_dim, so each gets its own fully unrolled code.
// 64: llama-nemotron-embed-1b-v2; 128: llama-embed-nemotron-8b; 16: the tiny
// test fixture.
#define ATTN_INSTANCE(D)                                                                              \
	extern "C" __global__ void __launch_bounds__(ATTN_THREADS)                                       \
	    attn_fwd_d##D(const __nv_bfloat16 *__restrict__ qkv, __nv_bfloat16 *__restrict__ out,       \
			  const int *__restrict__ cu_seqlens, const int *__restrict__ tiles, int heads,      \
			  int kv_heads, float scale_log2) {                                                  \
		attn_fwd<D>(qkv, out, cu_seqlens, tiles, heads, kv_heads, scale_log2);                     \
	}
ATTN_INSTANCE(16)
ATTN_INSTANCE(64)
ATTN_INSTANCE(128)

// gemm.cu: Y[M,N] = X[M,K] · W[N,K]ᵀ (+ R[M,N]), the projections of every
// layer, and the same product with a SwiGLU epilogue for the MLP's fused
// gate/up projection (gemm_bf16_tn_swiglu, below). X holds token-major activations, W a weight matrix as stored in the
// checkpoint ([out, in], "TN": both operands K-contiguous), R an optional
// residual added in the epilogue. bf16 in and out, fp32 accumulation on the
// tensor cores (mma.sync m16n8k16), operands streamed through shared memory
// by a GEMM_STAGES-deep cp.async pipeline and read back with ldmatrix.
//
// Launch: grid (ceil(N/GEMM_BN), ceil(M/GEMM_BM)), block GEMM_THREADS,
// dynamic shared memory GEMM_SMEM_BYTES (over 48 KB: the host raises the
// function's limit). Requires K % 8 == 0 and N % 2 == 0 (16-byte rows of
// X and W, paired bf16 stores); any M. Rows and K past the end are
// zero-filled by cp.async, so no shape needs padding.
//
// The host-side geometry in model/cuda reads the GEMM_* defines below
// (a test keeps them in step).
#include "common.cuh"

#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 32
#define GEMM_STAGES 4
#define GEMM_THREADS 256
// Row pitch in shared memory: BK plus 8 bf16 (16 bytes) of padding, so the
// eight 16-byte rows one ldmatrix reads fall in distinct banks.
#define GEMM_LDS (GEMM_BK + 8)
#define GEMM_SMEM_BYTES (GEMM_STAGES * (GEMM_BM + GEMM_BN) * GEMM_LDS * 2)

// 8 warps as 2 (M) x 4 (N); each warp owns a 64x32 tile of Y:
// 4 m16 fragments x 4 n8 fragments.
#define WARP_M 64
#define WARP_N 32
#define MI (WARP_M / 16)
#define NI (WARP_N / 8)

// Copies one BMxBK tile of X and one BNxBK tile of W into a stage.
// 16-byte chunks: BK/8 = 4 per row; (BM+BN)*4 = 1024 chunks, 4 per thread.
__device__ __forceinline__ void gemm_load_stage(__nv_bfloat16 *sA, __nv_bfloat16 *sB,
						const __nv_bfloat16 *__restrict__ X,
						const __nv_bfloat16 *__restrict__ W, int M, int N, int K,
						int m0, int n0, int k0) {
	const int tid = threadIdx.x;
#pragma unroll
	for (int i = 0; i < (GEMM_BM * GEMM_BK / 8) / GEMM_THREADS; i++) {
		const int c = tid + i * GEMM_THREADS;
		const int row = c / (GEMM_BK / 8), kc = (c % (GEMM_BK / 8)) * 8;
		const bool ok = (m0 + row < M) && (k0 + kc < K);
		const __nv_bfloat16 *src = ok ? X + (size_t)(m0 + row) * K + k0 + kc : X;
		cp_async16(sA + row * GEMM_LDS + kc, src, ok);
	}
#pragma unroll
	for (int i = 0; i < (GEMM_BN * GEMM_BK / 8) / GEMM_THREADS; i++) {
		const int c = tid + i * GEMM_THREADS;
		const int row = c / (GEMM_BK / 8), kc = (c % (GEMM_BK / 8)) * 8;
		const bool ok = (n0 + row < N) && (k0 + kc < K);
		const __nv_bfloat16 *src = ok ? W + (size_t)(n0 + row) * K + k0 + kc : W;
		cp_async16(sB + row * GEMM_LDS + kc, src, ok);
	}
}

// The GEMM; SWIGLU selects the epilogue (see gemm_bf16_tn_swiglu).
template <bool SWIGLU>
DEVI void gemm_tn(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
		  const __nv_bfloat16 *__restrict__ R, __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
	DYN_SMEM(gemm_smem);
	__nv_bfloat16 *sA = reinterpret_cast<__nv_bfloat16 *>(gemm_smem);
	__nv_bfloat16 *sB = sA + GEMM_STAGES * GEMM_BM * GEMM_LDS;

	const int m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
	const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
	const int wm = (warp / (GEMM_BN / WARP_N)) * WARP_M;
	const int wn = (warp % (GEMM_BN / WARP_N)) * WARP_N;

	float acc[MI][NI][4];
#pragma unroll
	for (int i = 0; i < MI; i++)
#pragma unroll
		for (int j = 0; j < NI; j++)
#pragma unroll
			for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

	const int ktiles = (K + GEMM_BK - 1) / GEMM_BK;
#pragma unroll
	for (int s = 0; s < GEMM_STAGES - 1; s++) {
		if (s < ktiles)
			gemm_load_stage(sA + s * GEMM_BM * GEMM_LDS, sB + s * GEMM_BN * GEMM_LDS, X, W, M, N, K,
					m0, n0, s * GEMM_BK);
		cp_async_commit();
	}

	for (int kt = 0; kt < ktiles; kt++) {
		cp_async_wait<GEMM_STAGES - 2>();
		__syncthreads(); // tile kt landed; every warp is done with tile kt-1's stage
		{
			const int nk = kt + GEMM_STAGES - 1;
			if (nk < ktiles) {
				const int s = nk % GEMM_STAGES;
				gemm_load_stage(sA + s * GEMM_BM * GEMM_LDS, sB + s * GEMM_BN * GEMM_LDS, X, W, M, N,
						K, m0, n0, nk * GEMM_BK);
			}
			cp_async_commit();
		}
		const __nv_bfloat16 *a = sA + (kt % GEMM_STAGES) * GEMM_BM * GEMM_LDS;
		const __nv_bfloat16 *b = sB + (kt % GEMM_STAGES) * GEMM_BN * GEMM_LDS;
#pragma unroll
		for (int kk = 0; kk < GEMM_BK; kk += 16) {
			uint32_t af[MI][4], bfr[NI][2];
#pragma unroll
			for (int i = 0; i < MI; i++) {
				const int r = wm + i * 16 + (lane & 15), c = kk + (lane >> 4) * 8;
				ldmatrix_x4(af[i][0], af[i][1], af[i][2], af[i][3], a + r * GEMM_LDS + c);
			}
#pragma unroll
			for (int p = 0; p < NI / 2; p++) {
				const int r = wn + p * 16 + (lane & 7) + (lane >> 4) * 8;
				const int c = kk + ((lane >> 3) & 1) * 8;
				ldmatrix_x4(bfr[2 * p][0], bfr[2 * p][1], bfr[2 * p + 1][0], bfr[2 * p + 1][1],
					    b + r * GEMM_LDS + c);
			}
#pragma unroll
			for (int i = 0; i < MI; i++)
#pragma unroll
				for (int j = 0; j < NI; j++) mma_bf16_16816(acc[i][j], af[i], bfr[j][0], bfr[j][1]);
		}
	}
	cp_async_wait<0>();

	// Epilogue: each lane holds (g, 2t..2t+1) and (g+8, 2t..2t+1) of every fragment.
	const int g = lane >> 2, t = lane & 3;
	if constexpr (SWIGLU) {
		// W's rows interleave gate and up in blocks of 8 (see below), so n8
		// fragment 2p is gate and 2p+1 is up for the same 8 intermediate
		// columns, starting at (n0 + wn + 16p) / 2.
		const int inter = N / 2;
#pragma unroll
		for (int i = 0; i < MI; i++) {
#pragma unroll
			for (int p = 0; p < NI / 2; p++) {
				const int col = (n0 + wn + 16 * p) / 2 + 2 * t;
				if (col >= inter) continue;
#pragma unroll
				for (int h = 0; h < 2; h++) {
					const int row = m0 + wm + i * 16 + g + h * 8;
					if (row >= M) continue;
					const float g0 = acc[i][2 * p][2 * h], g1 = acc[i][2 * p][2 * h + 1];
					const float u0 = acc[i][2 * p + 1][2 * h], u1 = acc[i][2 * p + 1][2 * h + 1];
					*reinterpret_cast<uint32_t *>(Y + (size_t)row * inter + col) =
					    pack_bf16x2(g0 / (1.f + expf(-g0)) * u0, g1 / (1.f + expf(-g1)) * u1);
				}
			}
		}
	} else {
#pragma unroll
		for (int i = 0; i < MI; i++) {
#pragma unroll
			for (int j = 0; j < NI; j++) {
				const int col = n0 + wn + j * 8 + 2 * t;
				if (col >= N) continue;
#pragma unroll
				for (int h = 0; h < 2; h++) {
					const int row = m0 + wm + i * 16 + g + h * 8;
					if (row >= M) continue;
					float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
					const size_t off = (size_t)row * N + col;
					if (R != nullptr) {
						const float2 r = unpack_bf16x2(*reinterpret_cast<const uint32_t *>(R + off));
						v0 += r.x;
						v1 += r.y;
					}
					*reinterpret_cast<uint32_t *>(Y + off) = pack_bf16x2(v0, v1);
				}
			}
		}
	}
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
gemm_bf16_tn(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
	     const __nv_bfloat16 *__restrict__ R, __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
	gemm_tn<false>(X, W, R, Y, M, N, K);
}

// The MLP's gate/up projection with SwiGLU in the epilogue:
//   Y[m, i] = silu(X·Wgᵀ)[m, i] * (X·Wuᵀ)[m, i],  Y [M, N/2]
// W is [N, K] with N = 2*inter and its rows interleaved in blocks of 8:
// rows 16b..16b+7 are gate rows 8b..8b+7, rows 16b+8..16b+15 the up rows
// 8b..8b+7 (the host lays them out so at upload). The gate and up products
// never reach memory, in bf16 or otherwise. Requires N % 16 == 0.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 1)
gemm_bf16_tn_swiglu(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
		    __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
	gemm_tn<true>(X, W, nullptr, Y, M, N, K);
}

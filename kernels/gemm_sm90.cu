// gemm_sm90.cu: the same product as gemm.cu, Y[M,N] = X[M,K] · W[N,K]ᵀ
// (+ R[M,N]), bf16 in and out with fp32 accumulation, for Hopper (sm_90a)
// on the warpgroup tensor-core instruction wgmma.mma_async.
//
// A 128x128 tile of Y per block of two warpgroups (256 threads); each
// warpgroup owns 64 rows and issues m64n128k16 wgmma with both operands
// read from shared memory through matrix descriptors. X and W tiles of
// 64 K-elements (128 bytes per row) are staged GEMMW_STAGES deep with
// cp.async, written in the 128-byte-swizzle layout wgmma expects (16-byte
// chunk c of row r at chunk c ^ (r % 8), 8-row atoms of 1024 bytes), so the
// descriptors use swizzle mode 1 with a 1024-byte stride between atoms.
// Each thread fences its cp.async writes into the async proxy before the
// barrier that precedes the wgmma reading them. Loads run two tiles ahead;
// one wgmma group stays in flight across each step's barrier.
//
// Launch: grid (ceil(N/GEMMW_BN), ceil(M/GEMMW_BM)), block GEMMW_THREADS,
// dynamic shared memory GEMMW_SMEM_BYTES (the host raises the limit).
// Requires K % 8 == 0 and N % 2 == 0, as gemm.cu. Compiled for sm_80 too,
// where the entry exists but traps: the host uses it on sm_90a only, and
// only after a startup check against gemm_bf16_tn.
#include "common.cuh"

#define GEMMW_BM 128
#define GEMMW_BN 128
#define GEMMW_BK 64
#define GEMMW_STAGES 4
#define GEMMW_THREADS 256
#define GEMMW_AHEAD (GEMMW_STAGES - 2) // tiles loaded ahead of the one computed
#define GEMMW_STAGE_BYTES ((GEMMW_BM + GEMMW_BN) * GEMMW_BK * 2)
// One extra KB lets the kernel align its tiles to 1024 bytes.
#define GEMMW_SMEM_BYTES (GEMMW_STAGES * GEMMW_STAGE_BYTES + 1024)

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GEMMW_HAVE_WGMMA 1
#endif

#if defined(GEMMW_HAVE_WGMMA) || defined(LLAMAEMBED_EMU)
// Shared-memory matrix descriptor: start address, leading-dimension offset
// (unused for swizzled K-major tiles; 16 bytes), stride between 8-row atoms
// (1024 bytes), 128-byte swizzle. Addresses and offsets are in 16-byte units.
DEVI uint64_t wgmma_desc(uint32_t smem_byte_addr) {
	uint64_t d = 0;
	d |= (uint64_t)((smem_byte_addr & 0x3FFFF) >> 4);
	d |= (uint64_t)(16 >> 4) << 16;
	d |= (uint64_t)(1024 >> 4) << 32;
	d |= (uint64_t)1 << 62;
	return d;
}

#ifdef GEMMW_HAVE_WGMMA
DEVI void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
DEVI void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
DEVI void wgmma_wait0() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
DEVI void wgmma_wait1() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Pins the accumulators at this point of the program: the compiler may not
// move their reads or writes across it (they are in flight during wgmma).
DEVI void wgmma_fence_operands(float d[64]) {
#pragma unroll
	for (int i = 0; i < 64; i++) asm volatile("" : "+f"(d[i])::"memory");
}
DEVI void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// d (64x128 fp32, this thread's 64) (+)= A(64x16) · B(16x128), both K-major
// in shared memory.
DEVI void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db, int accumulate) {
	asm volatile("{\n"
		     ".reg .pred p;\n"
		     "setp.ne.b32 p, %66, 0;\n"
		     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
		     "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
		     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
		     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
		     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
		     "%64, %65, p, 1, 1, 0, 0;\n"
		     "}\n"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
		       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
		       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
		       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
		       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
		       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
		       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
		       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
		     : "l"(da), "l"(db), "r"(accumulate));
}

// cp.async to a shared-memory address (as the descriptors use them).
DEVI void cp_async16_shared(uint32_t dst, const void *src, bool pred) {
	const int n = pred ? 16 : 0;
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
#endif // GEMMW_HAVE_WGMMA; emu/emu.h has the CPU versions

// Copies a ROWSx64 bf16 tile (rows from row0 of a [rows_total, K] matrix,
// K-columns from k0) into the swizzled layout; out-of-range chunks read as 0.
template <int ROWS>
DEVI void gemmw_load(uint32_t s, const __nv_bfloat16 *__restrict__ G, int rows_total, int K, int row0, int k0) {
#pragma unroll
	for (int i = 0; i < ROWS * 8 / GEMMW_THREADS; i++) {
		const int c = threadIdx.x + i * GEMMW_THREADS;
		const int r = c >> 3, ch = c & 7;
		const bool ok = (row0 + r < rows_total) && (k0 + ch * 8 < K);
		const __nv_bfloat16 *src = ok ? G + (size_t)(row0 + r) * K + k0 + ch * 8 : G;
		const uint32_t dst = s + r * 128 + ((ch ^ (r & 7)) << 4);
		cp_async16_shared(dst, src, ok);
	}
}
#endif

#if defined(GEMMW_HAVE_WGMMA) || defined(LLAMAEMBED_EMU)
// The GEMM; SWIGLU selects the epilogue, as in gemm.cu.
template <bool SWIGLU>
DEVI void gemmw_tn(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
		   const __nv_bfloat16 *__restrict__ R, __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
	DYN_SMEM(gemmw_smem);
	const uint32_t base = (smem_addr(gemmw_smem) + 1023) & ~1023u;
	const int m0 = blockIdx.y * GEMMW_BM, n0 = blockIdx.x * GEMMW_BN;
	const int wg = threadIdx.x >> 7; // warpgroup: rows wg*64 .. wg*64+63
	float d[64];
#pragma unroll
	for (int i = 0; i < 64; i++) d[i] = 0.f;

	// Loads run GEMMW_AHEAD tiles ahead and one wgmma group stays in flight
	// while the next tile is waited for and the one after is requested: the
	// stage refilled at step kt last fed the wgmma of tile kt-2, which every
	// warpgroup has waited for before the barrier of step kt.
	const int ktiles = (K + GEMMW_BK - 1) / GEMMW_BK;
#pragma unroll
	for (int s = 0; s < GEMMW_AHEAD; s++) {
		if (s < ktiles) {
			const uint32_t st = base + s * GEMMW_STAGE_BYTES;
			gemmw_load<GEMMW_BM>(st, X, M, K, m0, s * GEMMW_BK);
			gemmw_load<GEMMW_BN>(st + GEMMW_BM * 128, W, N, K, n0, s * GEMMW_BK);
		}
		cp_async_commit();
	}
	for (int kt = 0; kt < ktiles; kt++) {
		cp_async_wait<GEMMW_AHEAD - 1>(); // tile kt has landed (this thread's part)
		fence_proxy_async();              // and is visible to the async proxy (wgmma)
		__syncthreads();                  // everyone's part; stage (kt+AHEAD) is idle
		{
			const int nk = kt + GEMMW_AHEAD;
			if (nk < ktiles) {
				const uint32_t st = base + (nk % GEMMW_STAGES) * GEMMW_STAGE_BYTES;
				gemmw_load<GEMMW_BM>(st, X, M, K, m0, nk * GEMMW_BK);
				gemmw_load<GEMMW_BN>(st + GEMMW_BM * 128, W, N, K, n0, nk * GEMMW_BK);
			}
			cp_async_commit();
		}
		const uint32_t sa = base + (kt % GEMMW_STAGES) * GEMMW_STAGE_BYTES + wg * 64 * 128;
		const uint32_t sb = base + (kt % GEMMW_STAGES) * GEMMW_STAGE_BYTES + GEMMW_BM * 128;
		wgmma_fence_operands(d);
		wgmma_fence();
#pragma unroll
		for (int k = 0; k < GEMMW_BK / 16; k++)
			wgmma_m64n128k16(d, wgmma_desc(sa + k * 32), wgmma_desc(sb + k * 32), (kt > 0 || k > 0) ? 1 : 0);
		wgmma_commit();
		wgmma_wait1(); // tile kt-1's group is done; tile kt's may run on
		wgmma_fence_operands(d);
	}
	wgmma_wait0();
	wgmma_fence_operands(d);
	cp_async_wait<0>();

	// Accumulator layout: warp w of the warpgroup holds rows w*16 + g and
	// w*16 + g + 8; n8 block j holds columns j*8 + 2t, +1 in d[4j..4j+3].
	const int warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
	const int g = lane >> 2, t = lane & 3;
	if constexpr (SWIGLU) {
		// n8 blocks 2p (gate) and 2p+1 (up) cover the same 8 intermediate
		// columns, from (n0 + 16p) / 2: W's rows interleave gate and up.
		const int inter = N / 2;
#pragma unroll
		for (int p = 0; p < GEMMW_BN / 16; p++) {
			const int col = (n0 + 16 * p) / 2 + 2 * t;
			if (col >= inter) continue;
#pragma unroll
			for (int h = 0; h < 2; h++) {
				const int row = m0 + wg * 64 + warp * 16 + g + h * 8;
				if (row >= M) continue;
				const float g0 = d[8 * p + 2 * h], g1 = d[8 * p + 2 * h + 1];
				const float u0 = d[8 * p + 4 + 2 * h], u1 = d[8 * p + 4 + 2 * h + 1];
				*reinterpret_cast<uint32_t *>(Y + (size_t)row * inter + col) =
				    pack_bf16x2(g0 / (1.f + expf(-g0)) * u0, g1 / (1.f + expf(-g1)) * u1);
			}
		}
	} else {
#pragma unroll
		for (int j = 0; j < GEMMW_BN / 8; j++) {
			const int col = n0 + j * 8 + 2 * t;
			if (col >= N) continue;
#pragma unroll
			for (int h = 0; h < 2; h++) {
				const int row = m0 + wg * 64 + warp * 16 + g + h * 8;
				if (row >= M) continue;
				float v0 = d[4 * j + 2 * h], v1 = d[4 * j + 2 * h + 1];
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
#endif

extern "C" __global__ void __launch_bounds__(GEMMW_THREADS, 1)
gemm_bf16_tn_wgmma(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
		   const __nv_bfloat16 *__restrict__ R, __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
#if defined(GEMMW_HAVE_WGMMA) || defined(LLAMAEMBED_EMU)
	gemmw_tn<false>(X, W, R, Y, M, N, K);
#else
	__trap(); // built for a GPU without wgmma: the host never launches this
#endif
}

// gemm_bf16_tn_swiglu on wgmma: Y [M, N/2] = silu(gate) * up, W's rows
// interleaved in blocks of 8 as described in gemm.cu.
extern "C" __global__ void __launch_bounds__(GEMMW_THREADS, 1)
gemm_bf16_tn_swiglu_wgmma(const __nv_bfloat16 *__restrict__ X, const __nv_bfloat16 *__restrict__ W,
			  __nv_bfloat16 *__restrict__ Y, int M, int N, int K) {
#if defined(GEMMW_HAVE_WGMMA) || defined(LLAMAEMBED_EMU)
	gemmw_tn<true>(X, W, nullptr, Y, M, N, K);
#else
	__trap();
#endif
}

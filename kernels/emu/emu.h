// emu.h: just enough of CUDA to run the kernels on a CPU, for tests on
// machines without a GPU. Each CUDA thread of a block is a fiber (ucontext)
// on one OS thread; blocks run one after another. __syncthreads and the
// warp collectives (shuffles, ldmatrix, mma.sync) are barriers at which the
// fibers yield, so every thread of the block or warp has arrived before any
// reads the others' values. The collectives are implemented from their PTX
// ISA definitions (fragment layouts of m16n8k16 and ldmatrix), written
// independently of the kernels that use them.
//
// What this proves: indexing, fragment layouts, swizzles, masking, the
// online softmax and the cp.async group accounting compute the right
// function. What it does not: timing, races that need real concurrency
// between blocks or within a warp, register or shared-memory limits, and
// hardware behaviour that differs from this reading of the PTX ISA.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __shared__ static
#define __trap() emu_trap()

struct EmuDim3 {
	unsigned x, y, z;
};
struct float2 {
	float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }

struct __nv_bfloat16 {
	uint16_t x;
};
struct __nv_bfloat162 {
	__nv_bfloat16 x, y;
};

inline float __bfloat162float(__nv_bfloat16 b) {
	uint32_t u = (uint32_t)b.x << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
	uint32_t u;
	memcpy(&u, &f, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{(uint16_t)((u >> 16) | 0x40)};
	u += 0x7fffu + ((u >> 16) & 1);
	return __nv_bfloat16{(uint16_t)(u >> 16)};
}
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
	return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return float2{__bfloat162float(v.x), __bfloat162float(v.y)}; }
inline float __int_as_float(int i) {
	float f;
	memcpy(&f, &i, 4);
	return f;
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

// The scheduler's state, defined in emu.cpp.
struct EmuWarp {
	unsigned gen;
	int arrived;
	uint64_t slot[32][6];
};
struct EmuState {
	EmuDim3 grid, block, bid;
	int nthreads, cur;
	EmuDim3 *tids;
	unsigned char *dyn_smem;
	unsigned block_gen;
	int block_arrived;
	EmuWarp warps[32];
	unsigned long progress;
	int trapped;
};
extern EmuState emu;
void emu_yield();
void emu_trap();

#define threadIdx (emu.tids[emu.cur])
#define blockIdx (emu.bid)
#define blockDim (emu.block)
#define gridDim (emu.grid)

inline unsigned char *emu_dynamic_smem() { return emu.dyn_smem; }

inline void __syncthreads() {
	unsigned g = emu.block_gen;
	if (++emu.block_arrived == emu.nthreads) {
		emu.block_arrived = 0;
		emu.block_gen++;
		emu.progress++;
		return;
	}
	while (emu.block_gen == g) emu_yield();
}

inline int emu_lane() { return (int)(threadIdx.x & 31); }
inline EmuWarp &emu_warp() { return emu.warps[threadIdx.x >> 5]; }

inline void emu_warp_barrier() {
	EmuWarp &w = emu_warp();
	unsigned g = w.gen;
	if (++w.arrived == 32) {
		w.arrived = 0;
		w.gen++;
		emu.progress++;
		return;
	}
	while (w.gen == g) emu_yield();
}

inline float __shfl_xor_sync(unsigned, float v, int off) {
	EmuWarp &w = emu_warp();
	const int lane = emu_lane();
	memcpy(&w.slot[lane][0], &v, 4);
	emu_warp_barrier();
	float r;
	memcpy(&r, &w.slot[lane ^ off][0], 4);
	emu_warp_barrier();
	return r;
}

// cp.async: each copy lands at a random point between its issue and the
// cp.async.wait_group that covers it (zero-fill when !pred): at once, or
// only at that wait. Shared memory read before its wait may still hold
// stale bytes, and a buffer refilled too early may change under a reader,
// so a missing wait or barrier shows in the results.
void emu_cp_async(void *smem, const void *gmem, bool pred);
void emu_cp_commit();
void emu_cp_wait(int pending);
inline void cp_async16(void *smem, const void *gmem, bool pred) { emu_cp_async(smem, gmem, pred); }
inline void cp_async_commit() { emu_cp_commit(); }
template <int N> inline void cp_async_wait() { emu_cp_wait(N); }

// ldmatrix .m8n8 .b16: matrix i's 8 rows come from the addresses of lanes
// 8i..8i+7 (16 bytes each). Without .trans, lane l gets row l/4, elements
// 2(l%4) and 2(l%4)+1; with .trans, elements (row 2(l%4), col l/4) and
// (row 2(l%4)+1, col l/4). The lower-indexed element is the low half.
template <int NUM, bool TRANS> inline void emu_ldmatrix(uint32_t *r, const void *p) {
	EmuWarp &w = emu_warp();
	const int lane = emu_lane();
	w.slot[lane][0] = (uint64_t)(uintptr_t)p;
	emu_warp_barrier();
	for (int i = 0; i < NUM; i++) {
		uint16_t lo, hi;
		if (!TRANS) {
			const uint16_t *row = (const uint16_t *)(uintptr_t)w.slot[8 * i + lane / 4][0];
			lo = row[2 * (lane % 4)];
			hi = row[2 * (lane % 4) + 1];
		} else {
			const uint16_t *r0 = (const uint16_t *)(uintptr_t)w.slot[8 * i + 2 * (lane % 4)][0];
			const uint16_t *r1 = (const uint16_t *)(uintptr_t)w.slot[8 * i + 2 * (lane % 4) + 1][0];
			lo = r0[lane / 4];
			hi = r1[lane / 4];
		}
		r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
	}
	emu_warp_barrier();
}
inline void ldmatrix_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
	uint32_t r[4];
	emu_ldmatrix<4, false>(r, p);
	r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
inline void ldmatrix_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
	uint32_t r[4];
	emu_ldmatrix<4, true>(r, p);
	r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
inline void ldmatrix_x2(uint32_t &r0, uint32_t &r1, const void *p) {
	uint32_t r[2];
	emu_ldmatrix<2, false>(r, p);
	r0 = r[0], r1 = r[1];
}
inline void ldmatrix_x2_trans(uint32_t &r0, uint32_t &r1, const void *p) {
	uint32_t r[2];
	emu_ldmatrix<2, true>(r, p);
	r0 = r[0], r1 = r[1];
}

inline float emu_bf16_half(uint32_t reg, int hi) {
	return __bfloat162float(__nv_bfloat16{(uint16_t)(hi ? reg >> 16 : reg & 0xffff)});
}

// mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, per the PTX ISA fragment
// figures (groupID g = lane/4, threadID_in_group t = lane%4):
//   A (16x16): a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   B (16x8):  b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   D (16x8):  d0,d1 = D[g][2t..2t+1], d2,d3 = D[g+8][2t..2t+1]
inline void mma_bf16_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
	EmuWarp &w = emu_warp();
	const int lane = emu_lane();
	w.slot[lane][0] = a[0], w.slot[lane][1] = a[1], w.slot[lane][2] = a[2], w.slot[lane][3] = a[3];
	w.slot[lane][4] = b0, w.slot[lane][5] = b1;
	emu_warp_barrier();
	auto A = [&](int r, int k) {
		const int g = r % 8, reg = (r >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0), kk = k % 8;
		return emu_bf16_half((uint32_t)w.slot[4 * g + kk / 2][reg], kk % 2);
	};
	auto B = [&](int k, int n) {
		const int kk = k % 8;
		return emu_bf16_half((uint32_t)w.slot[4 * n + kk / 2][k >= 8 ? 5 : 4], kk % 2);
	};
	const int g = lane / 4, t = lane % 4;
	for (int e = 0; e < 4; e++) {
		const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
		float s = 0.f;
		for (int k = 0; k < 16; k++) s += A(row, k) * B(k, col);
		d[e] += s;
	}
	emu_warp_barrier();
}

// ---- Hopper pieces used by gemm_sm90.cu ----
// Shared addresses are offsets into the block's dynamic shared memory.
inline uint32_t smem_addr(const void *p) { return (uint32_t)((const unsigned char *)p - emu.dyn_smem); }
inline void cp_async16_shared(uint32_t dst, const void *src, bool pred) { cp_async16(emu.dyn_smem + dst, src, pred); }
// wgmma groups: emu.cpp runs each queued wgmma at a random moment between
// its issue and the wgmma.wait_group that covers it, reading shared memory
// then, so a stage refilled while a wgmma may still read it shows up.
void emu_wgmma_issue(float *d, uint64_t da, uint64_t db, int accumulate);
void emu_wgmma_commit();
void emu_wgmma_wait(int pending);
inline void wgmma_fence() {}
inline void wgmma_commit() { emu_wgmma_commit(); }
inline void wgmma_wait0() { emu_wgmma_wait(0); }
inline void wgmma_wait1() { emu_wgmma_wait(1); }
inline void wgmma_fence_operands(float *) {}
inline void fence_proxy_async() {}

// The bf16 element (row, k) of a K-major operand in shared memory, read
// through a wgmma matrix descriptor, per the PTX ISA: start address in bits
// 0-13, stride-dimension byte offset (between 8-row core-matrix groups) in
// bits 32-45, both in 16-byte units; swizzle mode in bits 62-63, of which
// only 1 (128-byte) is emulated: within each 8x128-byte atom the 16-byte
// chunk index (address bits 4-6) is XORed with the row (bits 7-9).
inline float emu_desc_elem(uint64_t desc, int row, int k) {
	if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0) {
		emu_trap();
		return 0.f;
	}
	const uint32_t start = (uint32_t)(desc & 0x3fff) << 4;
	const uint32_t sbo = (uint32_t)((desc >> 32) & 0x3fff) << 4;
	uint32_t addr = start + (uint32_t)(row / 8) * sbo + (uint32_t)(row % 8) * 128 + (uint32_t)k * 2;
	addr ^= ((addr >> 7) & 7) << 4;
	uint16_t v;
	memcpy(&v, emu.dyn_smem + addr, 2);
	return __bfloat162float(__nv_bfloat16{v});
}

// wgmma.mma_async m64n128k16 f32 += bf16 x bf16, A and B K-major from shared
// memory. Accumulator fragment (PTX ISA): warp w of the warpgroup owns rows
// 16w..16w+15; for each n8 block j, thread (g = lane/4, t = lane%4) holds
// d[4j+0], d[4j+1] = D[16w+g][8j+2t], D[16w+g][8j+2t+1] and d[4j+2],
// d[4j+3] = the same columns of row 16w+g+8. Each thread reads the operands
// it needs itself, so no exchange between threads is needed.
inline void emu_wgmma_run(float d[64], uint64_t da, uint64_t db, int accumulate) {
	const int lane = emu_lane(), w = (threadIdx.x >> 5) & 3, g = lane / 4, t = lane % 4;
	for (int j = 0; j < 16; j++)
		for (int e = 0; e < 4; e++) {
			const int row = 16 * w + g + (e >= 2 ? 8 : 0), col = 8 * j + 2 * t + (e & 1);
			float s = 0.f;
			for (int k = 0; k < 16; k++) s += emu_desc_elem(da, row, k) * emu_desc_elem(db, col, k);
			d[4 * j + e] = accumulate ? d[4 * j + e] + s : s;
		}
}

inline void wgmma_m64n128k16(float d[64], uint64_t da, uint64_t db, int accumulate) {
	emu_wgmma_issue(d, da, db, accumulate);
}

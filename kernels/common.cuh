// common.cuh: small device helpers shared by the kernels: bf16 conversion,
// warp reductions, cp.async, ldmatrix and the m16n8k16 bf16 tensor-core MMA.
// Everything here is inline PTX or plain CUDA C, so the kernels need only
// cuda_bf16.h from the toolkit.
#pragma once
#ifdef LLAMAEMBED_EMU
// CPU emulation for kernel tests (emu/emu.h): the CUDA built-ins, and the
// warp-collective helpers below implemented from their PTX definitions.
#include "emu/emu.h"
#else
#include <cuda_bf16.h>
#include <stdint.h>
#endif

#define DEVI __device__ __forceinline__

// The kernel's dynamic shared memory (sized at launch).
#ifdef LLAMAEMBED_EMU
#define DYN_SMEM(name) unsigned char *name = emu_dynamic_smem()
#else
#define DYN_SMEM(name) extern __shared__ __align__(1024) unsigned char name[]
#endif

DEVI float bf2f(__nv_bfloat16 x) { return __bfloat162float(x); }
DEVI __nv_bfloat16 f2bf(float x) { return __float2bfloat16_rn(x); }

// Two floats packed into one 32-bit register as bf16x2 (lo in the low half).
DEVI uint32_t pack_bf16x2(float lo, float hi) {
	__nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
	return *reinterpret_cast<uint32_t *>(&v);
}
DEVI float2 unpack_bf16x2(uint32_t v) {
	__nv_bfloat162 b = *reinterpret_cast<__nv_bfloat162 *>(&v);
	return __bfloat1622float2(b);
}

DEVI float warp_sum(float v) {
#pragma unroll
	for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}

// Sum over the block; every thread gets the result. scratch holds 32 floats.
DEVI float block_sum(float v, float *scratch) {
	const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	v = warp_sum(v);
	__syncthreads(); // scratch may still be read by a previous call
	if (lane == 0) scratch[warp] = v;
	__syncthreads();
	const int nw = (blockDim.x + 31) >> 5;
	v = lane < nw ? scratch[lane] : 0.f;
	return warp_sum(v);
}

#ifndef LLAMAEMBED_EMU
DEVI uint32_t smem_addr(const void *p) {
	return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global->shared copy that bypasses L1; when !pred nothing is read
// and the 16 shared bytes are zero-filled (rows past the end of a matrix).
DEVI void cp_async16(void *smem, const void *gmem, bool pred) {
	const int n = pred ? 16 : 0;
	asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(n));
}
DEVI void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> DEVI void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

DEVI void ldmatrix_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
		     : "r"(smem_addr(p)));
}
DEVI void ldmatrix_x4_trans(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
		     : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
		     : "r"(smem_addr(p)));
}
DEVI void ldmatrix_x2(uint32_t &r0, uint32_t &r1, const void *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
		     : "=r"(r0), "=r"(r1)
		     : "r"(smem_addr(p)));
}
DEVI void ldmatrix_x2_trans(uint32_t &r0, uint32_t &r1, const void *p) {
	asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
		     : "=r"(r0), "=r"(r1)
		     : "r"(smem_addr(p)));
}

// d += a(16x16, row) * b(16x8, col), bf16 inputs, fp32 accumulators.
// Fragment layout (lane = 4*g + t): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g,
// 2t+8..), a3 (g+8, 2t+8..); b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g);
// d0,d1 (g, 2t..2t+1), d2,d3 (g+8, 2t..2t+1).
DEVI void mma_bf16_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
	asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
		     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
		     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
		     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif // LLAMAEMBED_EMU

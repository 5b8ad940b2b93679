#include "textflag.h"

// Transposing packs for AVX-512: 16 consecutive rows of a row-major matrix
// become 16 consecutive columns of a packed panel (dst row stride nr floats).
// One dword gather per k-pair reads rows[0..15][k:k+2] at once.

DATA iota16<>+0(SB)/4, $0
DATA iota16<>+4(SB)/4, $1
DATA iota16<>+8(SB)/4, $2
DATA iota16<>+12(SB)/4, $3
DATA iota16<>+16(SB)/4, $4
DATA iota16<>+20(SB)/4, $5
DATA iota16<>+24(SB)/4, $6
DATA iota16<>+28(SB)/4, $7
DATA iota16<>+32(SB)/4, $8
DATA iota16<>+36(SB)/4, $9
DATA iota16<>+40(SB)/4, $10
DATA iota16<>+44(SB)/4, $11
DATA iota16<>+48(SB)/4, $12
DATA iota16<>+52(SB)/4, $13
DATA iota16<>+56(SB)/4, $14
DATA iota16<>+60(SB)/4, $15
GLOBL iota16<>(SB), RODATA|NOPTR, $64

// setup loads DI=dst, SI=src, DX=dst row stride in bytes, CX=count, and
// Z3 = byte offsets of the 16 rows.
#define SETUP \
	MOVQ dst+0(FP), DI \
	MOVQ src+8(FP), SI \
	MOVQ rowBytes+16(FP), AX \
	MOVQ n+24(FP), CX \
	MOVQ nr+32(FP), DX \
	SHLQ $2, DX \
	VPBROADCASTD AX, Z1 \
	VMOVDQU32 iota16<>(SB), Z2 \
	VPMULLD Z1, Z2, Z3

// func packBF16x16(dst *float32, src *byte, rowBytes, n, nr int)
// n k-pairs of bf16: dst[(2p)*nr+j], dst[(2p+1)*nr+j] = rows[j][2p], rows[j][2p+1].
TEXT ·packBF16x16(SB), NOSPLIT, $0-40
	SETUP
	MOVL $0xffff0000, BX
	VPBROADCASTD BX, Z4
	TESTQ CX, CX
	JZ bf16_done
bf16_loop:
	KXNORW K1, K1, K1
	VPGATHERDD (SI)(Z3*1), K1, Z5
	VPSLLD $16, Z5, Z6
	VPANDD Z4, Z5, Z7
	VMOVUPS Z6, (DI)
	VMOVUPS Z7, (DI)(DX*1)
	ADDQ $4, SI
	LEAQ (DI)(DX*2), DI
	DECQ CX
	JNZ bf16_loop
bf16_done:
	VZEROUPPER
	RET

// func packF16x16(dst *float32, src *byte, rowBytes, n, nr int)
// As packBF16x16 for IEEE halves, widened exactly by VCVTPH2PS.
TEXT ·packF16x16(SB), NOSPLIT, $0-40
	SETUP
	TESTQ CX, CX
	JZ f16_done
f16_loop:
	KXNORW K1, K1, K1
	VPGATHERDD (SI)(Z3*1), K1, Z5
	VPMOVDW Z5, Y6
	VPSRLD $16, Z5, Z7
	VPMOVDW Z7, Y7
	VCVTPH2PS Y6, Z6
	VCVTPH2PS Y7, Z7
	VMOVUPS Z6, (DI)
	VMOVUPS Z7, (DI)(DX*1)
	ADDQ $4, SI
	LEAQ (DI)(DX*2), DI
	DECQ CX
	JNZ f16_loop
f16_done:
	VZEROUPPER
	RET

// func packF32x16(dst *float32, src *byte, rowBytes, n, nr int)
// n values of float32 rows: dst[k*nr+j] = rows[j][k].
TEXT ·packF32x16(SB), NOSPLIT, $0-40
	SETUP
	TESTQ CX, CX
	JZ f32_done
f32_loop:
	KXNORW K1, K1, K1
	VPGATHERDD (SI)(Z3*1), K1, Z5
	VMOVUPS Z5, (DI)
	ADDQ $4, SI
	ADDQ DX, DI
	DECQ CX
	JNZ f32_loop
f32_done:
	VZEROUPPER
	RET


// func splitRowBF16x3(dst *uint16, src *float32, chunks int)
// For each chunk of 32 floats of src, writes the bf16 parts hi, mid, lo
// (x = hi + mid + lo exactly, each by truncation of the remainder) to
// dst+0, dst+2048 and dst+4096 bytes; dst advances 6144 bytes per chunk
// (the AMX A layout: [chunk][part][half][16 rows][32]).
TEXT ·splitRowBF16x3(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ chunks+16(FP), CX
	MOVL $0xffff0000, BX
	VPBROADCASTD BX, Z31
	TESTQ CX, CX
	JZ split_done
split_loop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VPANDD Z31, Z0, Z2      // hi
	VPANDD Z31, Z1, Z3
	VSUBPS Z2, Z0, Z0       // r1 = x - hi (exact)
	VSUBPS Z3, Z1, Z1
	VPANDD Z31, Z0, Z4      // mid
	VPANDD Z31, Z1, Z5
	VSUBPS Z4, Z0, Z0       // lo = r1 - mid (exact, fits bf16)
	VSUBPS Z5, Z1, Z1
	VPSRLD $16, Z2, Z2
	VPSRLD $16, Z3, Z3
	VPSRLD $16, Z4, Z4
	VPSRLD $16, Z5, Z5
	VPSRLD $16, Z0, Z0
	VPSRLD $16, Z1, Z1
	VPMOVDW Z2, (DI)
	VPMOVDW Z3, 32(DI)
	VPMOVDW Z4, 2048(DI)
	VPMOVDW Z5, 2080(DI)
	VPMOVDW Z0, 4096(DI)
	VPMOVDW Z1, 4128(DI)
	ADDQ $128, SI
	ADDQ $6144, DI
	DECQ CX
	JNZ split_loop
split_done:
	VZEROUPPER
	RET

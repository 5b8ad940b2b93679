#include "textflag.h"

// func clockChain(n int)
// n iterations of 8 dependent 64-bit multiplies (IMUL r64, r64: latency 3
// cycles on every Intel core since Nehalem; adds of immediates are folded at
// rename on newer cores, so they cannot time the clock), so it takes 24n
// core cycles.
TEXT ·clockChain(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	MOVQ $1, AX
	MOVQ $1, BX
clock_loop:
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	DECQ CX
	JNZ clock_loop
	RET

// func fmaThroughput(n int)
// n iterations of 24 independent 512-bit FMAs: 24×16×2 flops each, with no
// memory traffic, to measure what the FMA ports deliver.
TEXT ·fmaThroughput(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
fma_loop:
	VFMADD231PS Z24, Z25, Z0
	VFMADD231PS Z24, Z25, Z1
	VFMADD231PS Z24, Z25, Z2
	VFMADD231PS Z24, Z25, Z3
	VFMADD231PS Z24, Z25, Z4
	VFMADD231PS Z24, Z25, Z5
	VFMADD231PS Z24, Z25, Z6
	VFMADD231PS Z24, Z25, Z7
	VFMADD231PS Z24, Z25, Z8
	VFMADD231PS Z24, Z25, Z9
	VFMADD231PS Z24, Z25, Z10
	VFMADD231PS Z24, Z25, Z11
	VFMADD231PS Z24, Z25, Z12
	VFMADD231PS Z24, Z25, Z13
	VFMADD231PS Z24, Z25, Z14
	VFMADD231PS Z24, Z25, Z15
	VFMADD231PS Z24, Z25, Z16
	VFMADD231PS Z24, Z25, Z17
	VFMADD231PS Z24, Z25, Z18
	VFMADD231PS Z24, Z25, Z19
	VFMADD231PS Z24, Z25, Z20
	VFMADD231PS Z24, Z25, Z21
	VFMADD231PS Z24, Z25, Z22
	VFMADD231PS Z24, Z25, Z23
	DECQ CX
	JNZ fma_loop
	VZEROUPPER
	RET

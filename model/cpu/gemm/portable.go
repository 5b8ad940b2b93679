package gemm

// The portable microkernel: 4×4 tiles in plain Go, for machines without
// AVX2/FMA (and the reference the assembly kernels are tested beside).

var portableImpl = &impl{kind: kernelPortable, mr: 4, nr: 4, micro: microPortable}

func microPortable(kc int, a, b, c []float32, ldc int, accumulate bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for kk := 0; kk < kc; kk++ {
		av := a[kk*4 : kk*4+4 : kk*4+4]
		bv := b[kk*4 : kk*4+4 : kk*4+4]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		a0 := av[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := av[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := av[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := av[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	rows := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	for r := range rows {
		d := c[r*ldc : r*ldc+4 : r*ldc+4]
		if accumulate {
			d[0] += rows[r][0]
			d[1] += rows[r][1]
			d[2] += rows[r][2]
			d[3] += rows[r][3]
		} else {
			d[0], d[1], d[2], d[3] = rows[r][0], rows[r][1], rows[r][2], rows[r][3]
		}
	}
}

package gemm

//go:generate sh -c "go run gen_kernels.go > kernels_amd64.s"

import "golang.org/x/sys/cpu"

//go:noescape
func kernAVX512(kc int, a, b, c *float32, ldc int, accumulate bool)

//go:noescape
func kernAVX2(kc int, a, b, c *float32, ldc int, accumulate bool)

var (
	avx512Impl = &impl{kind: kernelAVX512, mr: 12, nr: 32, micro: microAVX512}
	avx2Impl   = &impl{kind: kernelAVX2, mr: 6, nr: 16, micro: microAVX2}
)

// The wrappers re-check the extents the assembly will touch, so a driver bug
// faults here as an index panic instead of corrupting memory.
func microAVX512(kc int, a, b, c []float32, ldc int, accumulate bool) {
	_, _, _ = a[kc*12-1], b[kc*32-1], c[11*ldc+31]
	kernAVX512(kc, &a[0], &b[0], &c[0], ldc, accumulate)
}

func microAVX2(kc int, a, b, c []float32, ldc int, accumulate bool) {
	_, _, _ = a[kc*6-1], b[kc*16-1], c[5*ldc+15]
	kernAVX2(kc, &a[0], &b[0], &c[0], ldc, accumulate)
}

// available lists the implementations this CPU runs, best last.
func available() []*impl {
	impls := []*impl{portableImpl}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		impls = append(impls, avx2Impl)
	}
	if cpu.X86.HasAVX512F {
		impls = append(impls, avx512Impl)
	}
	if amxEnabled() {
		impls = append(impls, amxImpl)
	}
	return impls
}

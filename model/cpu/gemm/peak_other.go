//go:build !amd64 || !linux

package gemm

// Peak describes this machine's float32 FMA ceiling (measured on amd64 only).
type Peak struct {
	GHz            float64
	Cores          int
	FlopsPerCycle  int
	GFLOPS         float64
	MeasuredGFLOPS float64
}

// MeasurePeak returns the zero Peak: the clock probe is Linux amd64 only.
func MeasurePeak() Peak { return Peak{} }

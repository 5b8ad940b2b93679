//go:build !amd64

package gemm

// available lists the implementations this CPU runs, best last.
func available() []*impl { return []*impl{portableImpl} }

func linearAMX(outs [][]float32, x []float32, ws []Weight, m int, workers int) { panic("gemm: no AMX") }

type amxPacked struct{}

func packAMX(w Weight) Weight { return w }

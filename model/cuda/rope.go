package cuda

import "math"

// ropeTables are the rope kernel's cos and sin tables, [maxPos][half]
// float32, each entry computed in float64 and rounded once.
func ropeTables(inv []float64, maxPos int) (cos, sin []float32) {
	half := len(inv)
	cos = make([]float32, maxPos*half)
	sin = make([]float32, maxPos*half)
	for p := 0; p < maxPos; p++ {
		for i, f := range inv {
			s, c := math.Sincos(float64(p) * f)
			cos[p*half+i], sin[p*half+i] = float32(c), float32(s)
		}
	}
	return cos, sin
}

package cuda

import (
	"math"

	"llamaembed/weights"
)

// invFreq is RoPE's inverse frequency per rotated pair, theta^(-2i/D),
// rescaled as transformers' _compute_llama3_parameters does when the config
// asks for llama3 scaling: wavelengths above original/low_freq_factor are
// divided by factor, those below original/high_freq_factor kept, and those
// between blended linearly in original/wavelength.
func invFreq(cfg *weights.Config, headDim int) []float64 {
	half := headDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(headDim))
	}
	rs := cfg.RopeScaling
	if rs == nil || rs.Type != "llama3" {
		return inv
	}
	old := float64(rs.OriginalMaxPositionEmbeddings)
	lowWavelen, highWavelen := old/rs.LowFreqFactor, old/rs.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < highWavelen:
		case wavelen > lowWavelen:
			inv[i] = f / rs.Factor
		default:
			smooth := (old/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			inv[i] = (1-smooth)*f/rs.Factor + smooth*f
		}
	}
	return inv
}

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

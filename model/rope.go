package model

import (
	"math"

	"llamaembed/weights"
)

// RopeInvFreq is RoPE's inverse frequency per rotated pair of a head of
// headDim values, theta^(-2i/headDim), rescaled as transformers'
// _compute_llama3_parameters does when the config asks for llama3 scaling:
// wavelengths longer than original/low_freq_factor are slowed by factor,
// those shorter than original/high_freq_factor kept, and those between
// blended linearly in original/wavelength. Every backend builds its RoPE
// tables from it, in float64, so devices agree on the angles.
func RopeInvFreq(cfg *weights.Config, headDim int) []float64 {
	inv := make([]float64, headDim/2)
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
			// high frequency: unchanged
		case wavelen > lowWavelen:
			inv[i] = f / rs.Factor
		default:
			smooth := (old/wavelen - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
			inv[i] = (1-smooth)*f/rs.Factor + smooth*f
		}
	}
	return inv
}

package cuda

import (
	"fmt"
	"math"

	"llamaembed/kernels"
	"llamaembed/model/cuda/driver"
)

// kernelSet is every kernel function, loaded from the embedded PTX for the
// device's architecture.
type kernelSet struct {
	arch    kernels.Arch
	modules []driver.Module

	gemm            driver.Function         // mma.sync, every arch
	gemmSwiGLU      driver.Function         // mma.sync with the SwiGLU epilogue
	gemmWgmma       driver.Function         // wgmma, sm_90a only (0 elsewhere)
	gemmWgmmaSwiGLU driver.Function         // wgmma with the SwiGLU epilogue
	useWgmma        bool                    // set once checkWgmma agreed with gemm
	attn            map[int]driver.Function // by head_dim
	addNorm         driver.Function
	rope            driver.Function
	swiglu          driver.Function
	embed           driver.Function
	meanPool        driver.Function
	normalize       driver.Function
}

// loadKernels JIT-loads the modules into the current context. maxSmem is the
// device's opt-in shared memory per block, checked against what the kernels
// ask for.
func loadKernels(major, minor, maxSmem int) (*kernelSet, error) {
	arch, err := kernels.ArchFor(major, minor)
	if err != nil {
		return nil, err
	}
	ks := &kernelSet{arch: arch, attn: map[int]driver.Function{}}
	mods := map[string]driver.Module{}
	module := func(name string) (driver.Module, error) {
		if m, ok := mods[name]; ok {
			return m, nil
		}
		ptx, err := kernels.PTX(arch, name)
		if err != nil {
			return 0, err
		}
		m, err := driver.LoadModule(ptx)
		if err != nil {
			return 0, fmt.Errorf("load kernels %s/%s: %w", arch, name, err)
		}
		mods[name] = m
		ks.modules = append(ks.modules, m)
		return m, nil
	}
	fn := func(mod, name string, dst *driver.Function, smem uint32) error {
		m, err := module(mod)
		if err != nil {
			return err
		}
		f, err := m.Function(name)
		if err != nil {
			return fmt.Errorf("load kernels %s/%s: %w", arch, mod, err)
		}
		if smem > 48<<10 {
			if int(smem) > maxSmem {
				return fmt.Errorf("kernel %s needs %d bytes of shared memory per block, the device allows %d", name, smem, maxSmem)
			}
			if err := f.SetMaxDynamicShared(int(smem)); err != nil {
				return fmt.Errorf("kernel %s: %w", name, err)
			}
		}
		*dst = f
		return nil
	}
	var attn [3]driver.Function
	for _, k := range []struct {
		mod, name string
		dst       *driver.Function
		smem      uint32
	}{
		{"gemm", "gemm_bf16_tn", &ks.gemm, gemmSmemBytes},
		{"gemm", "gemm_bf16_tn_swiglu", &ks.gemmSwiGLU, gemmSmemBytes},
		{"attention", "attn_fwd_d16", &attn[0], attnSmemBytes(16)},
		{"attention", "attn_fwd_d64", &attn[1], attnSmemBytes(64)},
		{"attention", "attn_fwd_d128", &attn[2], attnSmemBytes(128)},
		{"norm", "add_rmsnorm", &ks.addNorm, 0},
		{"rope", "rope_qk", &ks.rope, 0},
		{"swiglu", "swiglu", &ks.swiglu, 0},
		{"embed", "embed_gather", &ks.embed, 0},
		{"pool", "mean_pool", &ks.meanPool, 0},
		{"pool", "l2_normalize", &ks.normalize, 0},
	} {
		if err := fn(k.mod, k.name, k.dst, k.smem); err != nil {
			ks.unload()
			return nil, err
		}
	}
	ks.attn[16], ks.attn[64], ks.attn[128] = attn[0], attn[1], attn[2]
	if arch == kernels.SM90a {
		if err := fn("gemm_sm90", "gemm_bf16_tn_wgmma", &ks.gemmWgmma, gemmWSmemBytes); err != nil {
			ks.unload()
			return nil, err
		}
		if err := fn("gemm_sm90", "gemm_bf16_tn_swiglu_wgmma", &ks.gemmWgmmaSwiGLU, gemmWSmemBytes); err != nil {
			ks.unload()
			return nil, err
		}
	}
	return ks, nil
}

func (ks *kernelSet) unload() {
	for _, m := range ks.modules {
		m.Unload()
	}
	ks.modules = nil
}

// Launchers: geometry from geometry.go, arguments in the kernels' order.

// launchGemm runs the wgmma GEMM where it is enabled, else mma.sync.
func (ks *kernelSet) launchGemm(s driver.Stream, x, w, r, y driver.DevicePtr, m, n, k int) error {
	return ks.launchGemmWith(ks.useWgmma, s, x, w, r, y, m, n, k)
}

func (ks *kernelSet) launchGemmWith(wgmma bool, s driver.Stream, x, w, r, y driver.DevicePtr, m, n, k int) error {
	if wgmma {
		if ks.gemmWgmma == 0 {
			return fmt.Errorf("gemm: no wgmma kernel on %s", ks.arch)
		}
		l, err := gemmWLaunch(m, n, k)
		if err != nil {
			return err
		}
		return ks.gemmWgmma.Launch(l.Grid, l.Block, l.Smem, s, x, w, r, y, int32(m), int32(n), int32(k))
	}
	l, err := gemmLaunch(m, n, k)
	if err != nil {
		return err
	}
	return ks.gemm.Launch(l.Grid, l.Block, l.Smem, s, x, w, r, y, int32(m), int32(n), int32(k))
}

// launchGemmSwiGLU: act[m, n/2] = silu(gate) * up from x[m,k] and the
// interleaved gate/up weight w[n,k] (see interleaveGateUp).
func (ks *kernelSet) launchGemmSwiGLU(s driver.Stream, x, w, act driver.DevicePtr, m, n, k int) error {
	return ks.launchGemmSwiGLUWith(ks.useWgmma, s, x, w, act, m, n, k)
}

func (ks *kernelSet) launchGemmSwiGLUWith(wgmma bool, s driver.Stream, x, w, act driver.DevicePtr, m, n, k int) error {
	f := ks.gemmSwiGLU
	if wgmma {
		if ks.gemmWgmmaSwiGLU == 0 {
			return fmt.Errorf("gemm swiglu: no wgmma kernel on %s", ks.arch)
		}
		f = ks.gemmWgmmaSwiGLU
	}
	l, err := gemmSwiGLULaunch(wgmma, m, n, k)
	if err != nil {
		return err
	}
	return f.Launch(l.Grid, l.Block, l.Smem, s, x, w, act, int32(m), int32(n), int32(k))
}

func (ks *kernelSet) launchAttention(s driver.Stream, qkv, out, cu, tiles driver.DevicePtr, ntiles int, sh shape) error {
	l, err := attnLaunch(ntiles, sh.Heads, sh.HeadDim)
	if err != nil {
		return err
	}
	scaleLog2 := float32(math.Log2E / math.Sqrt(float64(sh.HeadDim)))
	return ks.attn[sh.HeadDim].Launch(l.Grid, l.Block, l.Smem, s, qkv, out, cu, tiles, int32(sh.Heads), int32(sh.KVHeads), scaleLog2)
}

func (ks *kernelSet) launchAddNorm(s driver.Stream, h, delta, w, out driver.DevicePtr, tokens, hidden int, eps float32) error {
	l, err := rowLaunch("add_rmsnorm", tokens, normThreads)
	if err != nil {
		return err
	}
	return ks.addNorm.Launch(l.Grid, l.Block, 0, s, h, delta, w, out, int32(hidden), eps)
}

func (ks *kernelSet) launchRope(s driver.Stream, qkv, pos, cos, sin driver.DevicePtr, tokens int, sh shape) error {
	l, err := ropeLaunch(tokens, sh)
	if err != nil {
		return err
	}
	return ks.rope.Launch(l.Grid, l.Block, 0, s, qkv, pos, cos, sin, int32(tokens), int32(sh.Heads), int32(sh.KVHeads), int32(sh.HeadDim))
}

func (ks *kernelSet) launchSwiGLU(s driver.Stream, gu, out driver.DevicePtr, tokens, inter int) error {
	l, err := swigluLaunch(tokens, inter)
	if err != nil {
		return err
	}
	return ks.swiglu.Launch(l.Grid, l.Block, 0, s, gu, out, int32(tokens), int32(inter))
}

func (ks *kernelSet) launchEmbed(s driver.Stream, table, tokens, h driver.DevicePtr, n, hidden, vocab int) error {
	l, err := rowLaunch("embed_gather", n, embedThreads)
	if err != nil {
		return err
	}
	return ks.embed.Launch(l.Grid, l.Block, 0, s, table, tokens, h, int32(hidden), int32(vocab))
}

func (ks *kernelSet) launchMeanPool(s driver.Stream, x, cu, pooled driver.DevicePtr, seqs, hidden int) error {
	l, err := meanPoolLaunch(seqs, hidden)
	if err != nil {
		return err
	}
	return ks.meanPool.Launch(l.Grid, l.Block, 0, s, x, cu, pooled, int32(hidden))
}

func (ks *kernelSet) launchNormalize(s driver.Stream, pooled, out driver.DevicePtr, seqs, hidden, dims int) error {
	l, err := normalizeLaunch(seqs)
	if err != nil {
		return err
	}
	return ks.normalize.Launch(l.Grid, l.Block, 0, s, pooled, out, int32(hidden), int32(dims))
}

package cuda

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"llamaembed/model"
	"llamaembed/model/cuda/driver"
	"llamaembed/weights"
)

func init() { model.RegisterBackend("cuda", New) }

// minDriverVersion is the oldest driver (as cuDriverGetVersion reports it)
// that JIT-compiles the embedded PTX: nvcc 12.4 writes PTX ISA 8.4.
const minDriverVersion = 12040

// DefaultMaxBatchTokens sizes the workspace when the options leave it at 0.
const DefaultMaxBatchTokens = 16384

// layerWeights are one layer's device weights.
type layerWeights struct {
	inNorm, postNorm driver.DevicePtr // bf16 [hidden]
	qkv              driver.DevicePtr // bf16 [q+2kv, hidden]: q, k, v rows stacked
	o                driver.DevicePtr // bf16 [hidden, q]
	gateUp           driver.DevicePtr // bf16 [2*inter, hidden]: gate and up rows interleaved in blocks of 8
	down             driver.DevicePtr // bf16 [hidden, inter]
}

// Backend runs the encoder on one CUDA device.
type Backend struct {
	mu     sync.Mutex
	name   string // "cuda:0 NVIDIA H100 80GB HBM3"
	ctx    *driver.Context
	stream driver.Stream
	ks     *kernelSet
	sh     shape
	opts   model.Options

	allocs    []driver.DevicePtr // everything to free on Close
	embed     driver.DevicePtr
	finalNorm driver.DevicePtr
	layers    []layerWeights
	cos, sin  driver.DevicePtr
	ws        map[string]driver.DevicePtr
	plan      workspacePlan
	staging   []byte // pinned: tokens, positions, cu_seqlens, tiles
}

// parseDevice reads "cuda" or "cuda:N".
func parseDevice(device string) (int, error) {
	kind, idx, hasIdx := strings.Cut(device, ":")
	if kind != "cuda" {
		return 0, fmt.Errorf("cuda backend: device %q: want cuda or cuda:N", device)
	}
	if !hasIdx {
		return 0, nil
	}
	n, err := strconv.Atoi(idx)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("cuda backend: device %q: %q is not a device index", device, idx)
	}
	return n, nil
}

// Available reports how many CUDA devices this machine has, or why none
// can be used (no driver, no device): for logs and `llamaembed devices`.
func Available() (int, error) {
	n, err := driver.DeviceCount()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, driver.ErrNoDevice
	}
	return n, nil
}

// Devices describes every CUDA device.
func Devices() ([]driver.Info, error) {
	n, err := Available()
	if err != nil {
		return nil, err
	}
	out := make([]driver.Info, 0, n)
	for i := 0; i < n; i++ {
		inf, err := driver.DeviceInfo(i)
		if err != nil {
			return out, fmt.Errorf("cuda:%d: %w", i, err)
		}
		out = append(out, inf)
	}
	return out, nil
}

// New builds the backend on device ("cuda", "cuda:N") over w: it loads the
// kernels, checks that weights and workspace fit, uploads the weights and
// allocates the workspace. With no driver or no such device it returns an
// error matching model.ErrNoDevice.
func New(w *weights.Model, device string, opts model.Options) (model.Backend, error) {
	ordinal, err := parseDevice(device)
	if err != nil {
		return nil, err
	}
	if w == nil || w.Config == nil {
		return nil, fmt.Errorf("cuda backend: no weights")
	}
	sh, err := shapeOf(w.Config)
	if err != nil {
		return nil, fmt.Errorf("cuda backend: %w", err)
	}
	n, err := Available()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", device, model.ErrNoDevice, err)
	}
	if ordinal >= n {
		return nil, fmt.Errorf("%s: %w: this machine has %d CUDA device(s)", device, model.ErrNoDevice, n)
	}
	if v, err := driver.Version(); err != nil {
		return nil, fmt.Errorf("%s: %w", device, err)
	} else if v < minDriverVersion {
		// The driver would refuse the PTX at module load; say why up front
		// (and let auto fall back to the CPU).
		return nil, fmt.Errorf("%s: %w: the CUDA driver supports CUDA %d.%d, the kernels (PTX ISA 8.4) need %d.%d or newer: update the NVIDIA driver",
			device, model.ErrNoDevice, v/1000, v%1000/10, minDriverVersion/1000, minDriverVersion%1000/10)
	}
	if opts.MaxBatchTokens == 0 {
		opts.MaxBatchTokens = DefaultMaxBatchTokens
	}
	if opts.MaxSeqLen == 0 || opts.MaxSeqLen > opts.MaxBatchTokens {
		opts.MaxSeqLen = opts.MaxBatchTokens
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	inf, err := driver.DeviceInfo(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda:%d: %w", ordinal, err)
	}
	b := &Backend{name: fmt.Sprintf("cuda:%d %s", ordinal, inf.Name), sh: sh, opts: opts, ws: map[string]driver.DevicePtr{}}
	dev, err := driver.GetDevice(ordinal)
	if err != nil {
		return nil, err
	}
	if b.ctx, err = dev.RetainPrimaryContext(); err != nil {
		return nil, fmt.Errorf("%s: %w", b.name, err)
	}
	if err := b.init(w, dev, inf); err != nil {
		b.closeLocked()
		return nil, fmt.Errorf("%s: %w", b.name, err)
	}
	gemm := "mma.sync"
	if b.ks.useWgmma {
		gemm = "wgmma"
	}
	slog.Info("cuda backend ready", "device", b.name, "arch", b.ks.arch, "gemm", gemm, "sm", inf.SMs,
		"max_batch_tokens", opts.MaxBatchTokens, "workspace", gib(b.plan.Total()))
	return b, nil
}

func (b *Backend) init(w *weights.Model, dev driver.Device, inf driver.Info) error {
	maxSmem, err := dev.Attribute(driver.AttrMaxSharedMemoryPerBlockOptin)
	if err != nil {
		return err
	}
	if b.ks, err = loadKernels(inf.Major, inf.Minor, maxSmem); err != nil {
		return err
	}
	if b.plan, err = planWorkspace(b.sh, b.opts.MaxBatchTokens); err != nil {
		return err
	}
	free, _, err := driver.MemGetInfo()
	if err != nil {
		return err
	}
	if err := checkFits(b.name, free, totalBytes(weightBuffers(b.sh)), b.plan.Total(),
		ropeTableBytes(b.sh, b.opts.MaxSeqLen), b.opts.MaxBatchTokens); err != nil {
		return err
	}
	if b.stream, err = driver.StreamCreate(); err != nil {
		return err
	}
	if err := b.ks.checkWgmma(b.stream); err != nil {
		return err
	}
	if err := b.uploadWeights(w); err != nil {
		return err
	}
	cos, sin := ropeTables(model.RopeInvFreq(w.Config, b.sh.HeadDim), b.opts.MaxSeqLen)
	if b.cos, err = b.upload("rope cos", float32Bytes(cos)); err != nil {
		return err
	}
	if b.sin, err = b.upload("rope sin", float32Bytes(sin)); err != nil {
		return err
	}
	// The uploads may still be in flight when the synchronous copies return.
	if err := driver.Synchronize(); err != nil {
		return err
	}
	for _, buf := range b.plan.Buffers {
		p, err := b.alloc(buf.Name, buf.Bytes)
		if err != nil {
			return err
		}
		b.ws[buf.Name] = p
	}
	stage := 4 * (2*b.plan.MaxTokens + b.plan.MaxSeqs + 1 + 2*b.plan.MaxTiles)
	if b.staging, err = driver.MemAllocHost(stage); err != nil {
		return err
	}
	return nil
}

// alloc allocates device memory, recorded for Close.
func (b *Backend) alloc(what string, n int64) (driver.DevicePtr, error) {
	p, err := driver.MemAlloc(uint64(max(n, 1)))
	if err != nil {
		if driver.IsOutOfMemory(err) {
			return 0, fmt.Errorf("out of device memory allocating %s (%s): %w", what, gib(n), err)
		}
		return 0, fmt.Errorf("allocate %s: %w", what, err)
	}
	b.allocs = append(b.allocs, p)
	return p, nil
}

func (b *Backend) upload(what string, data []byte) (driver.DevicePtr, error) {
	p, err := b.alloc(what, int64(len(data)))
	if err != nil {
		return 0, err
	}
	if err := driver.CopyHtoD(p, data); err != nil {
		return 0, fmt.Errorf("upload %s: %w", what, err)
	}
	return p, nil
}

// uploadWeights copies every tensor to the device as bf16, fusing q/k/v and
// gate/up by stacking their rows.
func (b *Backend) uploadWeights(w *weights.Model) error {
	sh := b.sh
	h := sh.Hidden
	var err error
	get := func(name string, shape ...int) ([]byte, error) { return bf16Tensor(w, name, shape...) }
	fused := func(what string, parts ...[]byte) (driver.DevicePtr, error) {
		var all []byte
		for _, p := range parts {
			all = append(all, p...)
		}
		return b.upload(what, all)
	}
	emb, err := get("embed_tokens.weight", sh.Vocab, h)
	if err != nil {
		return err
	}
	if b.embed, err = b.upload("embed_tokens.weight", emb); err != nil {
		return err
	}
	fn, err := get("norm.weight", h)
	if err != nil {
		return err
	}
	if b.finalNorm, err = b.upload("norm.weight", fn); err != nil {
		return err
	}
	b.layers = make([]layerWeights, sh.Layers)
	for l := range b.layers {
		p := fmt.Sprintf("layers.%d.", l)
		lw := &b.layers[l]
		t := map[string][]byte{}
		for _, m := range []struct {
			name  string
			shape []int
		}{
			{"input_layernorm.weight", []int{h}},
			{"post_attention_layernorm.weight", []int{h}},
			{"self_attn.q_proj.weight", []int{sh.QDim(), h}},
			{"self_attn.k_proj.weight", []int{sh.KVDim(), h}},
			{"self_attn.v_proj.weight", []int{sh.KVDim(), h}},
			{"self_attn.o_proj.weight", []int{h, sh.QDim()}},
			{"mlp.gate_proj.weight", []int{sh.Inter, h}},
			{"mlp.up_proj.weight", []int{sh.Inter, h}},
			{"mlp.down_proj.weight", []int{h, sh.Inter}},
		} {
			if t[m.name], err = get(p+m.name, m.shape...); err != nil {
				return err
			}
		}
		if lw.inNorm, err = b.upload(p+"input_layernorm.weight", t["input_layernorm.weight"]); err != nil {
			return err
		}
		if lw.postNorm, err = b.upload(p+"post_attention_layernorm.weight", t["post_attention_layernorm.weight"]); err != nil {
			return err
		}
		if lw.qkv, err = fused(p+"qkv_proj", t["self_attn.q_proj.weight"], t["self_attn.k_proj.weight"], t["self_attn.v_proj.weight"]); err != nil {
			return err
		}
		if lw.o, err = b.upload(p+"self_attn.o_proj.weight", t["self_attn.o_proj.weight"]); err != nil {
			return err
		}
		gu := interleaveGateUp(t["mlp.gate_proj.weight"], t["mlp.up_proj.weight"], sh.Inter, h)
		if lw.gateUp, err = b.upload(p+"gate_up_proj", gu); err != nil {
			return err
		}
		if lw.down, err = b.upload(p+"mlp.down_proj.weight", t["mlp.down_proj.weight"]); err != nil {
			return err
		}
	}
	return nil
}

// interleaveGateUp stacks the gate and up projections ([inter, hidden] bf16
// each) into one [2*inter, hidden] matrix whose rows alternate in blocks of
// 8: gate rows 8b..8b+7, then up rows 8b..8b+7, for b = 0, 1, ... The fused
// GEMM's epilogue then holds a gate value and its up value in the same
// thread and applies SwiGLU without writing either (gemm_bf16_tn_swiglu).
func interleaveGateUp(gate, up []byte, inter, hidden int) []byte {
	row := 2 * hidden
	out := make([]byte, 0, len(gate)+len(up))
	for b := 0; b < inter; b += 8 {
		out = append(out, gate[b*row:(b+8)*row]...)
		out = append(out, up[b*row:(b+8)*row]...)
	}
	return out
}

// bf16Tensor returns a tensor's elements as little-endian bf16, checking its
// shape: BF16 data as stored (no copy), F16 and F32 rounded to nearest even.
func bf16Tensor(w *weights.Model, name string, shape ...int) ([]byte, error) {
	t := w.Tensor(name)
	if t == nil {
		return nil, fmt.Errorf("tensor %s is missing", name)
	}
	if len(t.Shape) != len(shape) {
		return nil, fmt.Errorf("tensor %s has shape %v, want %v", name, t.Shape, shape)
	}
	n := 1
	for i := range shape {
		if t.Shape[i] != shape[i] {
			return nil, fmt.Errorf("tensor %s has shape %v, want %v", name, t.Shape, shape)
		}
		n *= shape[i]
	}
	if len(t.Data) != n*t.DType.Size() {
		return nil, fmt.Errorf("tensor %s: %d bytes of data for %d %s elements", name, len(t.Data), n, t.DType)
	}
	return toBF16(t.Data, t.DType, n)
}

// toBF16 converts n elements of dt to bf16 bytes.
func toBF16(data []byte, dt weights.DType, n int) ([]byte, error) {
	switch dt {
	case weights.BF16:
		return data, nil
	case weights.F16, weights.F32:
		f := make([]float32, n)
		weights.ToFloat32(f, data, dt)
		out := make([]byte, 2*n)
		for i, v := range f {
			binary.LittleEndian.PutUint16(out[2*i:], weights.Float32ToBF16(v))
		}
		return out, nil
	}
	return nil, fmt.Errorf("dtype %s cannot be uploaded", dt)
}

func float32Bytes(f []float32) []byte {
	out := make([]byte, 4*len(f))
	for i, v := range f {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
	}
	return out
}

// Device names the GPU.
func (b *Backend) Device() string { return b.name }

// Forward runs the encoder on a packed batch and returns, per sequence, the
// L2-normalised mean of the final-norm hidden states.
func (b *Backend) Forward(ctx context.Context, batch model.Batch) ([][]float32, error) {
	p, err := packBatch(batch, b.plan.MaxTokens, b.opts.MaxSeqLen, b.sh.Vocab)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		return nil, errors.New("cuda backend: closed")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := b.ctx.SetCurrent(); err != nil {
		return nil, err
	}
	out, err := b.forward(ctx, p)
	if err != nil {
		// Leave the stream idle for the next call whatever happened.
		b.stream.Synchronize()
		return nil, fmt.Errorf("%s: forward: %w", b.name, err)
	}
	return out, nil
}

func (b *Backend) forward(ctx context.Context, p *packed) ([][]float32, error) {
	sh, ks, s, ws := b.sh, b.ks, b.stream, b.ws
	T, S, H := len(p.Tokens), p.Seqs(), sh.Hidden

	// Inputs through the pinned staging buffer, one async copy each.
	off := 0
	for _, in := range []struct {
		dst driver.DevicePtr
		v   []int32
	}{{ws[bufTokens], p.Tokens}, {ws[bufPositions], p.Positions}, {ws[bufCuSeqlens], p.CuSeqlens}, {ws[bufTiles], p.Tiles}} {
		n := 4 * len(in.v)
		for i, x := range in.v {
			binary.LittleEndian.PutUint32(b.staging[off+4*i:], uint32(x))
		}
		if err := driver.CopyHtoDAsync(in.dst, b.staging[off:off+n], s); err != nil {
			return nil, err
		}
		off += n
	}

	h, xn, qkv, attn, delta := ws[bufResidual], ws[bufNormed], ws[bufQKV], ws[bufAttn], ws[bufDelta]
	act := ws[bufAct]
	if err := ks.launchEmbed(s, b.embed, ws[bufTokens], h, T, H, sh.Vocab); err != nil {
		return nil, err
	}
	pending := driver.DevicePtr(0) // the delta not yet added to the residual
	for l, lw := range b.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		steps := []func() error{
			func() error { return ks.launchAddNorm(s, h, pending, lw.inNorm, xn, T, H, sh.Eps) },
			func() error { return ks.launchGemm(s, xn, lw.qkv, 0, qkv, T, sh.QKVDim(), H) },
			func() error { return ks.launchRope(s, qkv, ws[bufPositions], b.cos, b.sin, T, sh) },
			func() error {
				return ks.launchAttention(s, qkv, attn, ws[bufCuSeqlens], ws[bufTiles], p.NumTiles(), sh)
			},
			func() error { return ks.launchGemm(s, attn, lw.o, 0, delta, T, H, sh.QDim()) },
			func() error { return ks.launchAddNorm(s, h, delta, lw.postNorm, xn, T, H, sh.Eps) },
			func() error { return ks.launchGemmSwiGLU(s, xn, lw.gateUp, act, T, 2*sh.Inter, H) },
			func() error { return ks.launchGemm(s, act, lw.down, 0, delta, T, H, sh.Inter) },
		}
		for i, step := range steps {
			if err := step(); err != nil {
				return nil, fmt.Errorf("layer %d step %d: %w", l, i, err)
			}
		}
		pending = delta
	}
	if err := ks.launchAddNorm(s, h, pending, b.finalNorm, xn, T, H, sh.Eps); err != nil {
		return nil, err
	}
	if err := ks.launchMeanPool(s, xn, ws[bufCuSeqlens], ws[bufPooled], S, H); err != nil {
		return nil, err
	}
	if err := ks.launchNormalize(s, ws[bufPooled], ws[bufOut], S, H, H); err != nil {
		return nil, err
	}
	if err := s.Synchronize(); err != nil {
		return nil, err
	}
	raw := make([]byte, 4*S*H)
	if err := driver.CopyDtoH(raw, ws[bufOut]); err != nil {
		return nil, err
	}
	out := make([][]float32, S)
	for i := range out {
		v := make([]float32, H)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(i*H+j):]))
		}
		out[i] = v
	}
	return out, nil
}

// Close frees the device memory and releases the context.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return b.closeLocked()
}

func (b *Backend) closeLocked() error {
	if b.ctx == nil {
		return nil
	}
	var errs []error
	if err := b.ctx.SetCurrent(); err != nil {
		errs = append(errs, err)
	}
	if b.stream != 0 {
		errs = append(errs, b.stream.Synchronize(), b.stream.Destroy())
		b.stream = 0
	}
	for _, p := range b.allocs {
		errs = append(errs, driver.MemFree(p))
	}
	b.allocs = nil
	if b.staging != nil {
		errs = append(errs, driver.MemFreeHost(b.staging))
		b.staging = nil
	}
	if b.ks != nil {
		b.ks.unload()
	}
	errs = append(errs, b.ctx.Release())
	b.ctx = nil
	return errors.Join(errs...)
}

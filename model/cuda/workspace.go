package cuda

import "fmt"

// buffer is one device allocation of the workspace or of the weights.
type buffer struct {
	Name  string
	Bytes int64
}

// workspacePlan lists the activation buffers for batches of up to
// MaxTokens tokens (and so at most MaxTokens sequences).
type workspacePlan struct {
	MaxTokens, MaxSeqs, MaxTiles int
	Buffers                      []buffer
}

// The workspace buffers by name, in allocation order.
const (
	bufTokens    = "tokens"     // int32 [T]
	bufPositions = "positions"  // int32 [T]
	bufCuSeqlens = "cu_seqlens" // int32 [S+1]
	bufTiles     = "attn_tiles" // int32 [2*tiles]
	bufResidual  = "residual"   // fp32 [T, hidden]
	bufNormed    = "normed"     // bf16 [T, hidden]
	bufQKV       = "qkv"        // bf16 [T, q+2kv]
	bufAttn      = "attn"       // bf16 [T, heads*head_dim]
	bufDelta     = "delta"      // bf16 [T, hidden]
	bufAct       = "act"        // bf16 [T, inter]
	bufPooled    = "pooled"     // fp32 [S, hidden]
	bufOut       = "out"        // fp32 [S, hidden]
)

// maxAttnTiles bounds the attention query tiles of any batch of at most
// maxTokens tokens in at most maxSeqs sequences: each sequence of n tokens
// has ceil(n/ATTN_BQ) <= n/ATTN_BQ + 1 tiles.
func maxAttnTiles(maxTokens, maxSeqs int) int {
	t := maxTokens/attnBQ + maxSeqs
	if t > maxTokens {
		// A tile holds at least one token.
		t = maxTokens
	}
	return t
}

// planWorkspace sizes every activation buffer for s and maxTokens.
func planWorkspace(s shape, maxTokens int) (workspacePlan, error) {
	if maxTokens <= 0 {
		return workspacePlan{}, fmt.Errorf("workspace: max batch tokens %d must be positive", maxTokens)
	}
	T, S := int64(maxTokens), int64(maxTokens)
	tiles := maxAttnTiles(maxTokens, maxTokens)
	h := int64(s.Hidden)
	p := workspacePlan{MaxTokens: maxTokens, MaxSeqs: maxTokens, MaxTiles: tiles}
	p.Buffers = []buffer{
		{bufTokens, 4 * T},
		{bufPositions, 4 * T},
		{bufCuSeqlens, 4 * (S + 1)},
		{bufTiles, 4 * 2 * int64(tiles)},
		{bufResidual, 4 * T * h},
		{bufNormed, 2 * T * h},
		{bufQKV, 2 * T * int64(s.QKVDim())},
		{bufAttn, 2 * T * int64(s.QDim())},
		{bufDelta, 2 * T * h},
		{bufAct, 2 * T * int64(s.Inter)},
		{bufPooled, 4 * S * h},
		{bufOut, 4 * S * h},
	}
	return p, nil
}

// Total is the sum of the buffers, each rounded up to the driver's 256-byte
// allocation granularity.
func (p workspacePlan) Total() int64 { return totalBytes(p.Buffers) }

func totalBytes(bs []buffer) int64 {
	var n int64
	for _, b := range bs {
		n += (b.Bytes + 255) &^ 255
	}
	return n
}

// ropeTableBytes is the size of the cos and sin tables for maxPos positions.
func ropeTableBytes(s shape, maxPos int) int64 {
	return 2 * 4 * int64(maxPos) * int64(s.HeadDim/2)
}

// weightBuffers lists the device copies of the weights: bf16, with q/k/v and
// gate/up fused.
func weightBuffers(s shape) []buffer {
	h := int64(s.Hidden)
	bs := []buffer{{"embed_tokens", 2 * int64(s.Vocab) * h}, {"norm", 2 * h}}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("layers.%d.", l)
		bs = append(bs,
			buffer{p + "input_layernorm", 2 * h},
			buffer{p + "qkv_proj", 2 * int64(s.QKVDim()) * h},
			buffer{p + "o_proj", 2 * h * int64(s.QDim())},
			buffer{p + "post_attention_layernorm", 2 * h},
			buffer{p + "gate_up_proj", 2 * 2 * int64(s.Inter) * h},
			buffer{p + "down_proj", 2 * h * int64(s.Inter)},
		)
	}
	return bs
}

// memoryReserve is kept free beyond weights and workspace: the context, the
// JIT-compiled modules and the driver's own allocations.
const memoryReserve = 512 << 20

// checkFits returns a startup error when the device's free memory cannot
// hold the weights, the workspace and the RoPE tables with memoryReserve
// to spare.
func checkFits(device string, free uint64, weightsBytes, workspaceBytes, ropeBytes int64, maxTokens int) error {
	need := weightsBytes + workspaceBytes + ropeBytes + memoryReserve
	if uint64(need) <= free {
		return nil
	}
	return fmt.Errorf("%s: not enough device memory: need %s (weights %s, workspace %s for max batch tokens %d, rope tables %s, reserve %s) but %s is free; lower the max batch tokens or use a larger GPU",
		device, gib(need), gib(weightsBytes), gib(workspaceBytes), maxTokens, gib(ropeBytes), gib(memoryReserve), gib(int64(free)))
}

func gib(n int64) string { return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30)) }

package weights_test

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"llamaembed/weights"
)

// TestOpenFromEnv opens the checkpoint in $WEIGHTS_OPEN_DIR (for example a
// full-size fixture from `llamaembed mkmodel --preset nemotron-1b DIR`) and
// logs how long Open takes and the resident memory after it, then after
// reading every weight once. Skipped when the variable is unset.
func TestOpenFromEnv(t *testing.T) {
	dir := os.Getenv("WEIGHTS_OPEN_DIR")
	if dir == "" {
		t.Skip("WEIGHTS_OPEN_DIR not set")
	}
	runtime.GC()
	before := rssKiB(t)
	start := time.Now()
	m, err := weights.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	openTime := time.Since(start)
	after := rssKiB(t)
	var bytes int64
	for _, n := range m.Names() {
		bytes += int64(len(m.Tensor(n).Data))
	}
	t.Logf("Open %s: %d tensors, %.2f GiB, open+validate %v, RSS %d MiB before, %d MiB after",
		dir, len(m.Names()), float64(bytes)/(1<<30), openTime, before>>10, after>>10)

	// Decode every tensor row by row, as a CPU backend would, into one buffer.
	start = time.Now()
	buf := make([]float32, 1<<20)
	var sum float32
	for _, n := range m.Names() {
		tn := m.Tensor(n)
		es := tn.DType.Size()
		for off := 0; off < len(tn.Data); off += len(buf) * es {
			k := min(len(buf), (len(tn.Data)-off)/es)
			weights.ToFloat32(buf[:k], tn.Data[off:], tn.DType)
			sum += buf[0]
		}
	}
	dt := time.Since(start)
	t.Logf("decoded all weights in %v (%.2f GB/s of stored data), RSS %d MiB (page cache mapped in), checksum %v",
		dt, float64(bytes)/dt.Seconds()/1e9, rssKiB(t)>>10, sum)
}

func rssKiB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kib int64
			for _, f := range strings.Fields(line)[1:2] {
				for _, c := range f {
					kib = kib*10 + int64(c-'0')
				}
			}
			return kib
		}
	}
	return 0
}

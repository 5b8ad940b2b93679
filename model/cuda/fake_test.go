package cuda

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebitengine/purego"

	"llamaembed/model"
	"llamaembed/model/cuda/driver"
	"llamaembed/weights/fixture"
)

// withFakeDriver binds the driver package to driver/testdata/fakecuda.c
// (built with the host C compiler): a libcuda that computes nothing but
// checks every launch against the PTX it was given (parameter count, each
// pointer inside a live allocation, block size within .maxntid, shared
// memory within what was opted in) and tracks allocations. It returns the
// fake's count of live allocations.
func withFakeDriver(t *testing.T) func() int {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		if cc, err = exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler to build the fake driver")
		}
	}
	so := filepath.Join(t.TempDir(), "libcuda.so.1")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", so, "driver/testdata/fakecuda.c").CombinedOutput(); err != nil {
		t.Fatalf("build fake driver: %v\n%s", err, out)
	}
	restore, err := driver.UseLibraryForTests(so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restore)
	h, err := purego.Dlopen(so, purego.RTLD_NOW|purego.RTLD_GLOBAL) // the same loaded copy
	if err != nil {
		t.Fatal(err)
	}
	var live func() int32
	purego.RegisterLibFunc(&live, h, "fake_live_allocations")
	return func() int { return int(live()) }
}

// TestBackendOnFakeDriver drives New, Forward and Close through the fake
// driver: every kernel is found in the embedded PTX for sm_90a (the fake
// reports compute capability 9.0), every launch passes the fake's checks,
// the output has the right shape, and Close frees every allocation. It
// says nothing about what the kernels compute.
func TestBackendOnFakeDriver(t *testing.T) {
	live := withFakeDriver(t)
	for _, c := range []struct {
		name string
		mod  func(*fixture.Options)
	}{
		{"head_dim 16", nil},
		{"head_dim 64", func(o *fixture.Options) {
			o.Hidden, o.Heads, o.KVHeads, o.HeadDim, o.Inter, o.Vocab = 256, 4, 2, 64, 512, 500
		}},
		{"head_dim 128", func(o *fixture.Options) {
			o.Hidden, o.Heads, o.KVHeads, o.HeadDim, o.Inter, o.Vocab = 512, 4, 1, 128, 1024, 500
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := live()
			w := tinyModel(t, c.mod)
			b, err := New(w, "cuda:0", model.Options{MaxBatchTokens: 1024})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(b.Device(), "cuda:0 Fake GPU 0") {
				t.Errorf("Device() = %q", b.Device())
			}
			if b.(*Backend).ks.useWgmma {
				t.Error("wgmma enabled although the fake computes nothing: the startup check is not checking")
			}
			batch := model.Pack([][]int32{{1, 2, 3}, make([]int32, 200), {7}})
			out, err := b.Forward(context.Background(), batch)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 3 || len(out[0]) != w.Config.HiddenSize {
				t.Errorf("Forward returned %d vectors of %d", len(out), len(out[0]))
			}
			if _, err := b.Forward(context.Background(), model.Pack([][]int32{make([]int32, 1025)})); err == nil {
				t.Error("a batch over max batch tokens was accepted")
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, err := b.Forward(ctx, batch); !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled context: %v", err)
			}
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if n := live(); n != before {
				t.Errorf("%d allocations live after Close, %d before New", n, before)
			}
			if _, err := b.Forward(context.Background(), batch); err == nil {
				t.Error("Forward after Close succeeded")
			}
		})
	}
}

func TestBackendStartupErrorsOnFakeDriver(t *testing.T) {
	live := withFakeDriver(t)
	w := tinyModel(t, nil)
	before := live()
	_, err := New(w, "cuda", model.Options{MaxBatchTokens: 1 << 28})
	if err == nil || !strings.Contains(err.Error(), "not enough device memory") || !strings.Contains(err.Error(), "cuda:0 Fake GPU 0") {
		t.Errorf("oversized workspace: %v", err)
	}
	if n := live(); n != before {
		t.Errorf("a failed New left %d allocations", n-before)
	}
	if _, err := New(w, "cuda:3", model.Options{}); !errors.Is(err, model.ErrNoDevice) || !strings.Contains(err.Error(), "1 CUDA device") {
		t.Errorf("cuda:3 on a one-GPU machine: %v", err)
	}
	t.Setenv("FAKECUDA_VERSION", "12020")
	if _, err := New(w, "cuda", model.Options{}); !errors.Is(err, model.ErrNoDevice) || !strings.Contains(err.Error(), "supports CUDA 12.2") {
		t.Errorf("a 12.2 driver: %v", err)
	}
	t.Setenv("FAKECUDA_VERSION", "12040")
	n, err := Available()
	if err != nil || n != 1 {
		t.Errorf("Available = %d, %v", n, err)
	}
	devs, err := Devices()
	if err != nil || len(devs) != 1 || devs[0].Name != "Fake GPU 0" {
		t.Errorf("Devices = %+v, %v", devs, err)
	}
}

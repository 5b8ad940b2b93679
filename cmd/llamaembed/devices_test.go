package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"llamaembed/model/cuda/driver"
)

func TestDevicesCommandExitsZero(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"devices"}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("devices exited %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "cpu ") {
		t.Fatalf("devices output:\n%s", out.String())
	}
	// Either GPUs are listed or a line says why not.
	if !strings.HasPrefix(lines[1], "cuda:") && !strings.HasPrefix(lines[1], "cuda ") {
		t.Errorf("second line %q is neither a GPU nor the reason there is none", lines[1])
	}
	if code := runMain([]string{"devices", "extra"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Errorf("devices with an argument exited %d, want 2", code)
	}
}

func TestListDevices(t *testing.T) {
	for _, c := range []struct {
		name string
		gpus func() ([]driver.Info, error)
		want []string
	}{
		{"no driver", func() ([]driver.Info, error) {
			return nil, fmt.Errorf("%w: dlopen libcuda.so.1: not found", driver.ErrNoDriver)
		}, []string{"cpu      Test CPU, 8 cores", "cuda     no CUDA driver found (no CUDA driver: dlopen libcuda.so.1: not found)"}},
		{"no device", func() ([]driver.Info, error) { return nil, driver.ErrNoDevice },
			[]string{"cpu      Test CPU, 8 cores", "cuda     the CUDA driver found no GPU (no CUDA device)"}},
		{"two gpus", func() ([]driver.Info, error) {
			return []driver.Info{
				{Ordinal: 0, Name: "NVIDIA H100 80GB HBM3", TotalMem: 80 << 30, Major: 9, Minor: 0, SMs: 132},
				{Ordinal: 1, Name: "Tesla T4", TotalMem: 15 << 30, Major: 7, Minor: 5, SMs: 40},
			}, nil
		}, []string{
			"cpu      Test CPU, 8 cores",
			"cuda:0   NVIDIA H100 80GB HBM3, 80.0 GiB, compute capability 9.0, 132 SMs (kernels sm_90a)",
			"cuda:1   Tesla T4, 15.0 GiB, compute capability 7.5, 40 SMs (unsupported: needs compute capability 8.0+)",
		}},
		{"query error", func() ([]driver.Info, error) { return nil, errors.New("cuDeviceGet: boom") },
			[]string{"cpu      Test CPU, 8 cores", "cuda     error: cuDeviceGet: boom"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			listDevices(&b, "Test CPU", 8, c.gpus)
			got := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

func TestCPUModelName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpuinfo")
	os.WriteFile(p, []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: other\n"), 0o644)
	if got := cpuModelName(p); got != "Intel(R) Xeon(R) CPU @ 2.20GHz" {
		t.Errorf("cpuModelName = %q", got)
	}
	if got := cpuModelName(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("missing file: %q", got)
	}
}

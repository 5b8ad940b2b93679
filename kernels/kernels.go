// Package kernels holds the encoder's CUDA kernels as PTX, built from the
// .cu sources beside it by build.sh (make kernels) and embedded in the
// binary, so a machine needs only the NVIDIA driver, which JIT-compiles the
// PTX for its GPU at load time.
//
// There is one PTX module per source file and per target architecture:
// sm_80 (Ampere and newer, mma.sync) and sm_90a (Hopper). The first line of
// every PTX file records the sources it came from and their sha256; the tests
// fail when a source changed without the PTX being regenerated.
package kernels

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed ptx
var ptxFS embed.FS

// Arch is a PTX target architecture.
type Arch string

const (
	SM80  Arch = "sm_80"  // Ampere and later: mma.sync, cp.async, ldmatrix
	SM90a Arch = "sm_90a" // Hopper only (arch-specific features)
)

// ArchFor picks the PTX target for a device of compute capability
// major.minor: sm_90a only for 9.0 itself (sm_90a code runs on nothing
// else), sm_80 for every other device from 8.0 on. Older GPUs lack the
// bf16 tensor-core instructions the kernels use.
func ArchFor(major, minor int) (Arch, error) {
	switch {
	case major == 9 && minor == 0:
		return SM90a, nil
	case major >= 8:
		return SM80, nil
	}
	return "", fmt.Errorf("compute capability %d.%d: the kernels need 8.0 or newer (bf16 tensor cores)", major, minor)
}

// Modules lists the embedded module names (source files without .cu) for arch.
func Modules(arch Arch) ([]string, error) {
	ents, err := fs.ReadDir(ptxFS, path.Join("ptx", string(arch)))
	if err != nil {
		return nil, fmt.Errorf("kernels: no PTX for %s: %w", arch, err)
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".ptx"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// PTX returns module name's PTX for arch, NUL-terminated as the driver's
// module loader expects.
func PTX(arch Arch, name string) ([]byte, error) {
	b, err := ptxFS.ReadFile(path.Join("ptx", string(arch), name+".ptx"))
	if err != nil {
		return nil, fmt.Errorf("kernels: module %s for %s: %w", name, arch, err)
	}
	out := make([]byte, len(b)+1)
	copy(out, b)
	return out, nil
}

// Provenance is what a PTX file's first line records: the sources it was
// built from, in hashing order, and the sha256 of their concatenation.
type Provenance struct {
	Sources []string
	SHA256  string
}

// ParseProvenance reads the first line of a PTX file written by build.sh:
// "// llamaembed kernels: sources a.cu b.cuh sha256 <hex>".
func ParseProvenance(ptx []byte) (Provenance, error) {
	line, _, _ := strings.Cut(string(ptx), "\n")
	rest, ok := strings.CutPrefix(line, "// llamaembed kernels: sources ")
	if !ok {
		return Provenance{}, fmt.Errorf("first line %q is not a llamaembed provenance line", line)
	}
	files, sum, ok := strings.Cut(rest, " sha256 ")
	if !ok || len(sum) != 64 || strings.TrimLeft(sum, "0123456789abcdef") != "" {
		return Provenance{}, fmt.Errorf("provenance line %q has no sha256", line)
	}
	srcs := strings.Fields(files)
	if len(srcs) == 0 {
		return Provenance{}, fmt.Errorf("provenance line %q names no sources", line)
	}
	return Provenance{Sources: srcs, SHA256: sum}, nil
}

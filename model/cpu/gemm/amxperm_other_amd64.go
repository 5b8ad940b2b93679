//go:build !linux

package gemm

// requestAMX reports false: only Linux is known here to grant tile state.
func requestAMX() bool { return false }

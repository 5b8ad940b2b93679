#!/usr/bin/env bash
# install-nvcc.sh: a local CUDA toolkit (nvcc 12.4 from Debian trixie's
# non-free packages) under .toolchain/cuda, without touching the system's
# CUDA (there is none) or its compiler.
#
# Debian ships nvcc for trixie only; this host is bookworm. We add trixie as an
# apt source pinned low (so nothing is ever upgraded from it), download the
# .deb files, unpack them with dpkg -x into .toolchain/cuda and rewrite
# nvcc.profile, which in the package is a symlink into /etc, so that nvcc
# finds its own headers, libdevice and cicc inside that folder.
#
# Idempotent: re-running with the toolkit in place only checks it.
# Usage: bash kernels/install-nvcc.sh   (root, or sudo, for the apt steps)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${CUDA_TOOLCHAIN:-$root/.toolchain/cuda}"
tk="$dest/usr/lib/nvidia-cuda-toolkit"
# The real driver program; usr/bin/nvcc is a wrapper hard-wired to /usr.
nvcc="$tk/bin/nvcc"

check() {
	"$nvcc" --version >/dev/null 2>&1 || return 1
	local t
	t="$(mktemp -d)"
	printf '%s\n' 'extern "C" __global__ void k(float *x) { x[threadIdx.x] += 1.f; }' >"$t/k.cu"
	"$nvcc" -arch=sm_80 -ptx -o "$t/k.ptx" "$t/k.cu" >/dev/null 2>&1
	local rc=$?
	rm -rf "$t"
	return $rc
}

if [ -x "$nvcc" ] && check; then
	echo "install-nvcc: $("$nvcc" --version | tail -n 2 | head -n 1) at $nvcc"
	exit 0
fi

if [ ! -x "$nvcc" ]; then
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi

src=/etc/apt/sources.list.d/llamaembed-trixie.sources
if [ ! -f "$src" ]; then
	$sudo tee "$src" >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
pin=/etc/apt/preferences.d/llamaembed-trixie
if [ ! -f "$pin" ]; then
	# Priority 1: trixie packages are only ever fetched by name with -t trixie.
	$sudo tee "$pin" >/dev/null <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 1
EOF
fi
$sudo apt-get update -qq

# nvcc and what it needs at compile time: cicc/ptxas (nvidia-cuda-toolkit,
# nvidia-cuda-dev's headers), libnvvm, the CCCL headers (libcu++, cub, thrust,
# which cuda_runtime.h pulls in) and the runtime headers.
pkgs=(nvidia-cuda-toolkit nvidia-cuda-dev libnvvm4 libcu++-dev libcub-dev libthrust-dev)
debs="$root/.toolchain/debs"
mkdir -p "$debs" "$dest"
(cd "$debs" && for p in "${pkgs[@]}"; do
	if ! ls "${p}"_*.deb >/dev/null 2>&1; then
		apt-get download -t trixie "$p" 2>/dev/null || echo "install-nvcc: no package $p (skipped)"
	fi
done)

for d in "$debs"/*.deb; do
	dpkg -x "$d" "$dest"
done
fi

# nvcc.profile: point every path at the unpacked tree, not at /usr. The
# package's copy is a symlink into /etc; replace it with a file.
prof="$tk/bin/nvcc.profile"
rm -f "$prof"
cat >"$prof" <<EOF
NVVMIR_LIBRARY_DIR = $tk/libdevice
PATH            += $tk/bin:$dest/usr/bin:
INCLUDES        += "-I$dest/usr/include" \$(_SPACE_)
LIBRARIES        =+ \$(_SPACE_) "-L$dest/usr/lib/x86_64-linux-gnu/stubs" "-L$dest/usr/lib/x86_64-linux-gnu"
EOF

if ! check; then
	echo "install-nvcc: nvcc at $nvcc does not compile a test kernel" >&2
	"$nvcc" --version >&2 || true
	exit 1
fi
echo "install-nvcc: $("$nvcc" --version | tail -n 2 | head -n 1) at $nvcc"

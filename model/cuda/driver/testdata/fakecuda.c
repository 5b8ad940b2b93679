// fakecuda.c: a stand-in libcuda.so.1 for testing the purego binding's
// calling conventions on machines without a GPU (fake_test.go builds it
// with the host C compiler). "Device memory" is host memory; the only
// "kernel" is add_one(int *p, unsigned n), run on the CPU. Every entry
// point checks the arguments it was given, so a binding that passes an
// argument in the wrong register, stack slot or width fails here.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
/* Runs launched kernels: set by kernels/emu/emu.cpp when it is linked into
 * the same library (a registration rather than a weak symbol, so that a
 * fake loaded later in the process never picks up another's emulator). */
static int (*fake_execute)(const char *name, const unsigned *geom, void **params);
void fake_set_executor(int (*f)(const char *, const unsigned *, void **)) { fake_execute = f; }
#define FAKE_CTX ((void *)0x1234)
#define FAKE_STREAM ((void *)0x5)
#define FAKE_GRAPH ((void *)0x99)
#define FAKE_EXEC ((void *)0xAA)
#define BAD 1 /* CUDA_ERROR_INVALID_VALUE */

CUresult cuInit(unsigned flags) { return flags == 0 ? 0 : BAD; }
CUresult cuDriverGetVersion(int *v) { *v = getenv("FAKECUDA_VERSION") ? atoi(getenv("FAKECUDA_VERSION")) : 12040; return 0; }
CUresult cuGetErrorString(CUresult r, const char **s) {
	*s = r == 2 ? "out of memory" : r == 218 ? "a PTX JIT compilation failed" : r == 1 ? "invalid argument"
	   : r == 700 ? "an illegal memory access was encountered" : r == 701 ? "too many resources requested for launch" : "unknown error";
	return 0;
}
CUresult cuGetErrorName(CUresult r, const char **s) {
	*s = r == 2 ? "CUDA_ERROR_OUT_OF_MEMORY" : r == 218 ? "CUDA_ERROR_INVALID_PTX" : r == 1 ? "CUDA_ERROR_INVALID_VALUE"
	   : r == 700 ? "CUDA_ERROR_ILLEGAL_ADDRESS" : r == 701 ? "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES" : "CUDA_ERROR_UNKNOWN";
	return 0;
}
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return 101; *d = 0; return 0; }
CUresult cuDeviceGetName(char *name, int len, int d) { if (d != 0 || len < 16) return BAD; snprintf(name, len, "Fake GPU %d", d); return 0; }
CUresult cuDeviceTotalMem_v2(size_t *b, int d) { *b = (size_t)80 << 30; return d == 0 ? 0 : BAD; }
CUresult cuDeviceGetAttribute(int *v, int attr, int d) {
	if (d != 0) return BAD;
	switch (attr) {
	case 75: *v = getenv("FAKECUDA_CC_MAJOR") ? atoi(getenv("FAKECUDA_CC_MAJOR")) : 9; break;
	case 76: *v = 0; break;
	case 16: *v = 132; break;
	case 97: *v = 232448; break;
	default: return BAD;
	}
	return 0;
}
CUresult cuDevicePrimaryCtxRetain(void **c, int d) { *c = FAKE_CTX; return d == 0 ? 0 : BAD; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { return d == 0 ? 0 : BAD; }
CUresult cuCtxSetCurrent(void *c) { return c == FAKE_CTX ? 0 : BAD; }
CUresult cuCtxSynchronize(void) { return 0; }
CUresult cuMemGetInfo_v2(size_t *f, size_t *t) { *f = (size_t)70 << 30; *t = (size_t)80 << 30; return 0; }
/* Live "device" allocations, so launches can check their pointers. */
#define MAX_ALLOCS 8192
static struct { uint64_t p; size_t n; } allocs[MAX_ALLOCS];
static int nallocs;
int fake_live_allocations(void) { return nallocs; }
static int inside_allocation(uint64_t p) {
	for (int i = 0; i < nallocs; i++)
		if (p >= allocs[i].p && p < allocs[i].p + allocs[i].n) return 1;
	return 0;
}
CUresult cuMemAlloc_v2(uint64_t *p, size_t n) {
	if (n == 0) return BAD;
	if (n > ((size_t)80 << 30) || nallocs == MAX_ALLOCS) return 2;
	void *m = malloc(n);
	if (!m) return 2;
	*p = (uint64_t)(uintptr_t)m;
	allocs[nallocs].p = *p;
	allocs[nallocs].n = n;
	nallocs++;
	return 0;
}
CUresult cuMemFree_v2(uint64_t p) {
	for (int i = 0; i < nallocs; i++)
		if (allocs[i].p == p) {
			free((void *)(uintptr_t)p);
			allocs[i] = allocs[--nallocs];
			return 0;
		}
	return BAD; /* not an allocation: a double free or a bad pointer */
}
CUresult cuMemAllocHost_v2(void **p, size_t n) { *p = malloc(n); return *p ? 0 : 2; }
CUresult cuMemFreeHost(void *p) { free(p); return 0; }
CUresult cuMemcpyHtoD_v2(uint64_t d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return 0; }
CUresult cuMemcpyDtoH_v2(void *d, uint64_t s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); return 0; }
CUresult cuMemcpyHtoDAsync_v2(uint64_t d, const void *s, size_t n, void *st) {
	if (st != FAKE_STREAM) return BAD;
	memcpy((void *)(uintptr_t)d, s, n);
	return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, uint64_t s, size_t n, void *st) {
	if (st != FAKE_STREAM) return BAD;
	memcpy(d, (void *)(uintptr_t)s, n);
	return 0;
}
CUresult cuMemsetD16_v2(uint64_t p, unsigned short v, size_t n) { for (size_t i = 0; i < n; i++) ((uint16_t *)(uintptr_t)p)[i] = v; return 0; }
CUresult cuMemsetD32_v2(uint64_t p, unsigned v, size_t n) { for (size_t i = 0; i < n; i++) ((uint32_t *)(uintptr_t)p)[i] = v; return 0; }
CUresult cuStreamCreate(void **s, unsigned flags) { *s = FAKE_STREAM; return flags == 0 ? 0 : BAD; }
CUresult cuStreamDestroy_v2(void *s) { return s == FAKE_STREAM ? 0 : BAD; }
CUresult cuStreamSynchronize(void *s) { return s == FAKE_STREAM ? 0 : BAD; }
static long next_event = 0x100;
CUresult cuEventCreate(void **e, unsigned flags) { *e = (void *)next_event++; return flags == 0 ? 0 : BAD; }
CUresult cuEventRecord(void *e, void *s) { return e && s == FAKE_STREAM ? 0 : BAD; }
CUresult cuEventSynchronize(void *e) { return e ? 0 : BAD; }
CUresult cuEventElapsedTime(float *ms, void *a, void *b) { *ms = 0.25f; return a && b && a != b ? 0 : BAD; }
CUresult cuEventDestroy_v2(void *e) { return e ? 0 : BAD; }

/* Modules keep their PTX; functions are looked up in it by name, with
 * their parameter sizes and .maxntid, which launches are checked against. */
#define MAX_MODULES 64
static char *modules[MAX_MODULES];
struct fn {
	char name[64];
	int nparams, psize[32];
	int maxntid;   /* 0: none declared */
	int maxdyn;    /* opted-in dynamic shared memory */
	int add_one;   /* the one kernel the fake runs */
};
#define MAX_FNS 256
static struct fn fns[MAX_FNS];
static int nfns;

CUresult cuModuleLoadDataEx(void **m, const void *image, unsigned n, int *opts, void **vals) {
	const char *ptx = (const char *)image;
	if (!strstr(ptx, ".entry ")) return 218;
	if (strstr(ptx, "add.s32 %r5, %r9, 1;")) { /* the broken module of the driver tests */
		const char *msg = "ptxas application ptx input, line 22; error   : Unknown symbol '%r9'";
		char *buf = NULL;
		size_t cap = 0;
		int size_slot = -1;
		for (unsigned i = 0; i < n; i++) {
			if (opts[i] == 5) buf = (char *)vals[i];
			if (opts[i] == 6) { cap = (size_t)(uintptr_t)vals[i]; size_slot = (int)i; }
		}
		if (!buf || cap == 0 || size_slot < 0) return BAD;
		snprintf(buf, cap, "%s", msg);
		vals[size_slot] = (void *)(uintptr_t)(strlen(msg) + 1);
		return 218;
	}
	for (int i = 0; i < MAX_MODULES; i++)
		if (!modules[i]) {
			modules[i] = strdup(ptx);
			*m = (void *)(uintptr_t)(0x1000 + i);
			return 0;
		}
	return 2;
}
static char *module_ptx(void *m) {
	uintptr_t i = (uintptr_t)m - 0x1000;
	return i < MAX_MODULES ? modules[i] : NULL;
}
CUresult cuModuleUnload(void *m) {
	char *ptx = module_ptx(m);
	if (!ptx) return BAD;
	free(ptx);
	modules[(uintptr_t)m - 0x1000] = NULL;
	return 0;
}
CUresult cuModuleGetFunction(void **f, void *m, const char *name) {
	const char *ptx = module_ptx(m);
	if (!ptx || nfns == MAX_FNS || strlen(name) >= 64) return BAD;
	char pat[80];
	snprintf(pat, sizeof pat, ".entry %s(", name);
	const char *e = strstr(ptx, pat);
	if (!e) return 500; /* CUDA_ERROR_NOT_FOUND */
	struct fn *fn = &fns[nfns];
	memset(fn, 0, sizeof *fn);
	snprintf(fn->name, sizeof fn->name, "%s", name);
	fn->add_one = strcmp(name, "add_one") == 0;
	const char *close = strchr(e, ')'), *body = strchr(e, '{');
	if (!close || !body) return 218;
	for (const char *q = strstr(e, ".param "); q && q < close; q = strstr(q + 1, ".param ")) {
		if (fn->nparams == 32) return 218;
		const char *ty = q + 7;
		fn->psize[fn->nparams++] = (strncmp(ty + 2, "64", 2) == 0) ? 8 : 4;
	}
	const char *mx = strstr(close, ".maxntid");
	if (mx && mx < body) fn->maxntid = atoi(mx + 8);
	*f = fn;
	nfns++;
	return 0;
}
static struct fn *as_fn(void *f) {
	struct fn *fn = (struct fn *)f;
	return fn >= fns && fn < fns + nfns ? fn : NULL;
}
CUresult cuFuncSetAttribute(void *f, int attr, int v) {
	struct fn *fn = as_fn(f);
	if (!fn || attr != 8 || v <= 0 || v > 232448) return BAD;
	fn->maxdyn = v;
	return 0;
}
CUresult cuFuncGetAttribute(int *v, int attr, void *f) { if (!as_fn(f)) return BAD; *v = attr == 4 ? 8 : 0; return 0; }

/* Launches queued while capturing, replayed by cuGraphLaunch. */
struct launch { uint64_t p; unsigned n; };
static struct launch captured[64];
static int ncaptured, capturing;

static void add_one(struct launch l) {
	for (unsigned i = 0; i < l.n; i++) ((int32_t *)(uintptr_t)l.p)[i] += 1;
}

CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
			unsigned smem, void *stream, void **params, void **extra) {
	struct fn *fn = as_fn(f);
	if (!fn || gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || bx == 0 || by == 0 || bz == 0 ||
	    stream != FAKE_STREAM || extra != NULL || (fn->nparams > 0 && params == NULL))
		return BAD;
	if (bx * by * bz > 1024 || (fn->maxntid && bx * by * bz > (unsigned)fn->maxntid)) return 701; /* LAUNCH_OUT_OF_RESOURCES */
	if (smem > 48 * 1024 && smem > (unsigned)fn->maxdyn) return BAD;
	for (int i = 0; i < fn->nparams; i++) {
		if (!params[i]) return BAD;
		if (fn->psize[i] == 8) {
			uint64_t p = *(uint64_t *)params[i];
			if (p != 0 && !inside_allocation(p)) return 700; /* ILLEGAL_ADDRESS */
		}
	}
	if (!fn->add_one) {
		/* With kernels/emu linked in, run the kernel on the CPU; else accept
		 * the launch and compute nothing. */
		if (fake_execute) {
			const unsigned geom[7] = {gx, gy, gz, bx, by, bz, smem};
			return fake_execute(fn->name, geom, params);
		}
		return 0;
	}
	if (gy != 1 || gz != 1 || by != 1 || bz != 1 || smem != 0) return BAD;
	struct launch l = {*(uint64_t *)params[0], *(unsigned *)params[1]};
	if ((uint64_t)gx * bx < l.n) return BAD;
	if (capturing) {
		if (ncaptured == 64) return BAD;
		captured[ncaptured++] = l;
		return 0;
	}
	add_one(l);
	return 0;
}
CUresult cuStreamBeginCapture_v2(void *s, int mode) { if (s != FAKE_STREAM || mode != 1) return BAD; capturing = 1; ncaptured = 0; return 0; }
CUresult cuStreamEndCapture(void *s, void **g) { if (s != FAKE_STREAM || !capturing) return BAD; capturing = 0; *g = FAKE_GRAPH; return 0; }
CUresult cuGraphInstantiateWithFlags(void **e, void *g, unsigned long long flags) { *e = FAKE_EXEC; return g == FAKE_GRAPH && flags == 0 ? 0 : BAD; }
CUresult cuGraphLaunch(void *e, void *s) {
	if (e != FAKE_EXEC || s != FAKE_STREAM) return BAD;
	for (int i = 0; i < ncaptured; i++) add_one(captured[i]);
	return 0;
}
CUresult cuGraphExecDestroy(void *e) { return e == FAKE_EXEC ? 0 : BAD; }
CUresult cuGraphDestroy(void *g) { return g == FAKE_GRAPH ? 0 : BAD; }

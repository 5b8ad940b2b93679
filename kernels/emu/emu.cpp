// emu.cpp: runs the kernels of kernels/*.cu on the CPU for tests (see
// emu.h). Linked with model/cuda/driver/testdata/fakecuda.c into a fake
// libcuda.so.1: the fake driver checks each launch and then calls
// fake_execute, which runs the named kernel here, block by block, each CUDA
// thread a fiber. Built by model/cuda's emulator test:
//
//   cc  -c -fPIC model/cuda/driver/testdata/fakecuda.c -o fake.o
//   c++ -std=c++17 -O1 -fPIC -shared -Wl,-Bsymbolic -DLLAMAEMBED_EMU -Ikernels kernels/emu/emu.cpp fake.o -o libcuda.so.1
//
// (-Bsymbolic: calls inside this library bind to its own definitions, not to
// those of another fake libcuda already loaded in the test process.)
#include <algorithm>
#include <functional>
#include <random>
#include <stdio.h>
#include <stdlib.h>
#include <string>
#include <ucontext.h>
#include <vector>

#include "../common.cuh"

EmuState emu;

#include "../attention.cu"
#include "../embed.cu"
#include "../gemm.cu"
#include "../gemm_sm90.cu"
#include "../norm.cu"
#include "../pool.cu"
#include "../rope.cu"
#include "../swiglu.cu"

namespace {

const size_t kStack = 64 << 10;

// Per-thread cp.async queues: copies, and the index where each committed
// group ends.
struct Copy {
	void *dst;
	const void *src;
	bool pred;
};
struct CpQueue {
	std::vector<Copy> copies;
	std::vector<size_t> group_ends;
};
std::vector<CpQueue> cpq;

// Per-thread wgmma queues, like the cp.async ones.
struct Mma {
	float *d;
	uint64_t da, db;
	int accumulate;
};
struct MmaQueue {
	std::vector<Mma> ops;
	std::vector<size_t> group_ends;
};
std::vector<MmaQueue> mmaq;
std::mt19937 rng(12345);

struct Fiber {
	ucontext_t ctx;
	std::vector<char> stack;
	bool done;
};

ucontext_t sched_ctx;
std::vector<Fiber> fibers;
std::vector<EmuDim3> tids;
std::function<void()> body;

void trampoline() {
	body();
	fibers[emu.cur].done = true;
	emu.progress++;
	// Returning resumes uc_link: the scheduler.
}

// runBlock runs every thread of the current block to completion. It
// returns false on a deadlock (threads waiting at a barrier others left).
bool runBlock() {
	const int n = emu.nthreads;
	for (int i = 0; i < n; i++) {
		Fiber &f = fibers[i];
		f.done = false;
		getcontext(&f.ctx);
		f.ctx.uc_stack.ss_sp = f.stack.data();
		f.ctx.uc_stack.ss_size = f.stack.size();
		f.ctx.uc_link = &sched_ctx;
		makecontext(&f.ctx, trampoline, 0);
	}
	emu.block_gen = 0;
	emu.block_arrived = 0;
	for (auto &w : emu.warps) w.gen = 0, w.arrived = 0;
	cpq.assign(n, CpQueue{});
	mmaq.assign(n, MmaQueue{});
	// Two schedules, picked at random per block: all threads in a fresh
	// random order on every pass (warps in near lockstep), or one warp at a
	// time run as far as it can go before the next (warps far apart, which
	// exposes a missing __syncthreads between a writer and a reader warp).
	const int nwarps = n / 32;
	std::vector<int> order(n), worder(nwarps), lanes(32);
	for (int i = 0; i < n; i++) order[i] = i;
	for (int i = 0; i < nwarps; i++) worder[i] = i;
	for (int i = 0; i < 32; i++) lanes[i] = i;
	const bool runAhead = rng() & 1;
	auto resume = [](int i) {
		if (fibers[i].done) return;
		emu.cur = i;
		swapcontext(&sched_ctx, &fibers[i].ctx);
	};
	int left = n;
	while (left > 0) {
		const unsigned long before = emu.progress;
		if (runAhead) {
			std::shuffle(worder.begin(), worder.end(), rng);
			for (int w : worder)
				for (;;) {
					const unsigned long p0 = emu.progress;
					std::shuffle(lanes.begin(), lanes.end(), rng);
					for (int l : lanes) resume(32 * w + l);
					if (emu.progress == p0) break; // the warp waits at a block barrier, or is done
				}
		} else {
			std::shuffle(order.begin(), order.end(), rng);
			for (int i : order) resume(i);
		}
		left = 0;
		for (int i = 0; i < n; i++) left += !fibers[i].done;
		if (left > 0 && emu.progress == before) return false;
	}
	return true;
}

#define P(i, T) (*(T *)params[i])
typedef __nv_bfloat16 bf;

// The kernels by name, each unpacking cuLaunchKernel's parameter array.
std::function<void()> bind(const std::string &name, void **params) {
	if (name == "gemm_bf16_tn")
		return [=] { gemm_bf16_tn(P(0, const bf *), P(1, const bf *), P(2, const bf *), P(3, bf *), P(4, int), P(5, int), P(6, int)); };
	if (name == "gemm_bf16_tn_swiglu")
		return [=] { gemm_bf16_tn_swiglu(P(0, const bf *), P(1, const bf *), P(2, bf *), P(3, int), P(4, int), P(5, int)); };
	if (name == "gemm_bf16_tn_swiglu_wgmma")
		return [=] { gemm_bf16_tn_swiglu_wgmma(P(0, const bf *), P(1, const bf *), P(2, bf *), P(3, int), P(4, int), P(5, int)); };
	if (name == "gemm_bf16_tn_wgmma")
		return [=] { gemm_bf16_tn_wgmma(P(0, const bf *), P(1, const bf *), P(2, const bf *), P(3, bf *), P(4, int), P(5, int), P(6, int)); };
#define ATTN(D)                                                                                                  \
	if (name == "attn_fwd_d" #D)                                                                             \
		return [=] {                                                                                     \
			attn_fwd_d##D(P(0, const bf *), P(1, bf *), P(2, const int *), P(3, const int *), P(4, int), \
				      P(5, int), P(6, float));                                                   \
		};
	ATTN(16)
	ATTN(64)
	ATTN(128)
	if (name == "add_rmsnorm")
		return [=] { add_rmsnorm(P(0, float *), P(1, const bf *), P(2, const bf *), P(3, bf *), P(4, int), P(5, float)); };
	if (name == "rope_qk")
		return [=] {
			rope_qk(P(0, bf *), P(1, const int *), P(2, const float *), P(3, const float *), P(4, int), P(5, int),
				P(6, int), P(7, int));
		};
	if (name == "swiglu") return [=] { swiglu(P(0, const bf *), P(1, bf *), P(2, int), P(3, int)); };
	if (name == "embed_gather")
		return [=] { embed_gather(P(0, const bf *), P(1, const int *), P(2, float *), P(3, int), P(4, int)); };
	if (name == "mean_pool") return [=] { mean_pool(P(0, const bf *), P(1, const int *), P(2, float *), P(3, int)); };
	if (name == "l2_normalize") return [=] { l2_normalize(P(0, const float *), P(1, float *), P(2, int), P(3, int)); };
	return nullptr;
}

} // namespace

void emu_yield() { swapcontext(&fibers[emu.cur].ctx, &sched_ctx); }

// A copy lands at a random moment the PTX ISA allows: at once (catching a
// buffer refilled while another warp still reads it) or only at the
// wait_group that covers it (catching data read before its wait).
void emu_cp_async(void *smem, const void *gmem, bool pred) {
	if (rng() & 1) {
		if (pred)
			memcpy(smem, gmem, 16);
		else
			memset(smem, 0, 16);
		return;
	}
	cpq[emu.cur].copies.push_back(Copy{smem, gmem, pred});
}
void emu_wgmma_issue(float *d, uint64_t da, uint64_t db, int accumulate) {
	MmaQueue &q = mmaq[emu.cur];
	if (q.ops.empty() && (rng() & 1)) { // nothing older pending: may run at once
		emu_wgmma_run(d, da, db, accumulate);
		return;
	}
	q.ops.push_back(Mma{d, da, db, accumulate});
}
void emu_wgmma_commit() { mmaq[emu.cur].group_ends.push_back(mmaq[emu.cur].ops.size()); }
void emu_wgmma_wait(int pending) {
	MmaQueue &q = mmaq[emu.cur];
	const int groups = (int)q.group_ends.size();
	if (groups <= pending) return;
	const size_t upto = q.group_ends[groups - pending - 1];
	for (size_t i = 0; i < upto; i++) emu_wgmma_run(q.ops[i].d, q.ops[i].da, q.ops[i].db, q.ops[i].accumulate);
	q.ops.erase(q.ops.begin(), q.ops.begin() + upto);
	q.group_ends.erase(q.group_ends.begin(), q.group_ends.begin() + (groups - pending));
	for (auto &e : q.group_ends) e -= upto;
}

void emu_cp_commit() { cpq[emu.cur].group_ends.push_back(cpq[emu.cur].copies.size()); }
void emu_cp_wait(int pending) {
	CpQueue &q = cpq[emu.cur];
	const int groups = (int)q.group_ends.size();
	if (groups <= pending) return;
	const size_t upto = q.group_ends[groups - pending - 1];
	for (size_t i = 0; i < upto; i++) {
		const Copy &c = q.copies[i];
		if (c.pred)
			memcpy(c.dst, c.src, 16);
		else
			memset(c.dst, 0, 16);
	}
	q.copies.erase(q.copies.begin(), q.copies.begin() + upto);
	q.group_ends.erase(q.group_ends.begin(), q.group_ends.begin() + (groups - pending));
	for (auto &e : q.group_ends) e -= upto;
}
void emu_trap() { emu.trapped = 1; }

extern "C" int fake_execute(const char *name, const unsigned *geom, void **params);
extern "C" void fake_set_executor(int (*)(const char *, const unsigned *, void **));
__attribute__((constructor)) static void register_executor() { fake_set_executor(fake_execute); }

// fake_execute is called by fakecuda.c's cuLaunchKernel once the launch
// passed its checks. geom: grid x,y,z, block x,y,z, dynamic shared bytes.
extern "C" int fake_execute(const char *name, const unsigned *geom, void **params) {
	std::function<void()> fn = bind(name, params);
	if (!fn) return 500; // CUDA_ERROR_NOT_FOUND
	const unsigned bx = geom[3], by = geom[4], bz = geom[5];
	if (by != 1 || bz != 1 || bx % 32 != 0 || bx > 1024) return 1; // the kernels are 1-D, whole warps
	emu.grid = EmuDim3{geom[0], geom[1], geom[2]};
	emu.block = EmuDim3{bx, 1, 1};
	emu.nthreads = (int)bx;
	emu.trapped = 0;
	if ((int)fibers.size() < emu.nthreads) {
		fibers.resize(emu.nthreads);
		for (auto &f : fibers)
			if (f.stack.size() != kStack) f.stack.assign(kStack, 0);
	}
	tids.resize(emu.nthreads);
	for (int i = 0; i < emu.nthreads; i++) tids[i] = EmuDim3{(unsigned)i, 0, 0};
	emu.tids = tids.data();
	// Dynamic shared memory starts as 0xff bytes: bf16 NaN, so reading
	// what no thread wrote shows in the output.
	std::vector<unsigned char> smem(geom[6] + 1024, 0xff);
	emu.dyn_smem = (unsigned char *)(((uintptr_t)smem.data() + 1023) & ~(uintptr_t)1023);
	body = fn;
	for (unsigned z = 0; z < emu.grid.z; z++)
		for (unsigned y = 0; y < emu.grid.y; y++)
			for (unsigned x = 0; x < emu.grid.x; x++) {
				emu.bid = EmuDim3{x, y, z};
				if (geom[6]) memset(emu.dyn_smem, 0xff, geom[6]);
				if (!runBlock()) {
					fprintf(stderr, "emu: %s block (%u,%u,%u): deadlock at a barrier\n", name, x, y, z);
					return 719; // CUDA_ERROR_LAUNCH_FAILED
				}
				if (emu.trapped) return 719;
			}
	return 0;
}

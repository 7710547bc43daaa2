// One step of the 8-bit block-wise Adam for XLA:CPU, as an XLA FFI custom call.
//
// Computes, per block of `block_size` consecutive entries (the last block may be short), the
// same float32 operations in the same order as the XLA path of
// jaxopt_papers.quantized.optimizers._adam_leaf_xla: dequantise the two moments, update them, the
// step `u`, and requantise the new moments with the exact nearest-code table of
// jaxopt_papers.quantized.blockwise.Codebook. One pass over the tensor; the float32 moments
// of one block live in a small buffer, each operation correctly rounded (no contraction into
// fused multiply-adds). Blocks are spread over XLA's intra-op thread pool.
//
// Built on first use by jaxopt_papers.quantized._native with the system C++ compiler.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Args {
  const float* g;
  const float* p;
  const uint8_t* mq;
  const float* ma;
  const uint8_t* nq;
  const float* na;
  const float* code1;
  const float* code2;
  const uint32_t* table1;
  const uint32_t* table2;
  int64_t size1;
  int64_t size2;
  float beta1, beta2, one_minus_beta1, one_minus_beta2, c2eps, coef, lrwd;
  bool decay;
  int64_t n, block_size, num_blocks;
  int shift1, shift2;
  float* u;
  uint8_t* mq_out;
  float* ma_out;
  uint8_t* nq_out;
  float* na_out;
};

// Nearest codes of `x[0:len] / den` through a Codebook table (blockwise.Codebook.nearest).
inline void Nearest(const uint32_t* __restrict table, int64_t size, int shift,
                    const float* __restrict x, float den, int64_t len, uint8_t* __restrict out) {
  const uint32_t mask = (1u << shift) - 1u;
  const int32_t tmask = (1 << (shift + 1)) - 1;
  const uint32_t last = static_cast<uint32_t>(size - 1);
  for (int64_t i = 0; i < len; ++i) {
    const float xi = x[i] / den;
    uint32_t bits;
    std::memcpy(&bits, &xi, sizeof bits);
    uint32_t key = bits >> shift;
    key = key < last ? key : last;  // jnp.take(mode="clip")
    const int32_t e = static_cast<int32_t>(table[key]);
    const uint32_t low = ((bits >> 31) == 1u ? (bits ^ mask) : bits) & mask;
    const int32_t above = static_cast<int32_t>(low) >= (e & tmask) ? 1 : 0;
    out[i] = static_cast<uint8_t>((e >> (shift + 1)) + above);
  }
}

// max |x| over x[0:len] as jnp.max(jnp.abs(x)): the bit patterns of non-negative floats order
// as unsigned integers, and a NaN's pattern is above every number's
inline float AbsMax(const float* __restrict x, int64_t len) {
  uint32_t best = 0;
  for (int64_t i = 0; i < len; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &x[i], sizeof bits);
    bits &= 0x7fffffffu;
    best = bits > best ? bits : best;
  }
  float out;
  std::memcpy(&out, &best, sizeof out);
  return out;
}

inline void Decode(const float* __restrict code, const uint8_t* __restrict q, float scale,
                   int64_t len, float* __restrict out) {
  for (int64_t i = 0; i < len; ++i) out[i] = code[q[i]] * scale;
}

// The moments and the step, in the XLA path's order of operations.
template <bool kDecay>
inline void Moments(const float* __restrict g, const float* __restrict p, float* __restrict m,
                    float* __restrict v, float* __restrict u, int64_t len, float beta1,
                    float beta2, float omb1, float omb2, float c2eps, float coef, float lrwd) {
  for (int64_t i = 0; i < len; ++i) {
    const float gi = g[i];
    const bool finite = std::isfinite(gi);
    const float g0 = finite ? gi : 0.0f;
    const float mi = finite ? m[i] * beta1 + omb1 * g0 : 0.0f;
    const float vi = finite ? v[i] * beta2 + (omb2 * g0) * g0 : 0.0f;
    float ui = coef * (mi / (std::sqrt(vi) + c2eps));
    if (kDecay) ui = ui - lrwd * (p[i] + ui);
    u[i] = finite ? ui : 0.0f;
    m[i] = mi;
    v[i] = vi;
  }
}

void Blocks(const Args& a, int64_t first, int64_t last, float* mbuf, float* vbuf) {
  const int64_t bs = a.block_size;
  for (int64_t b = first; b < last; ++b) {
    const int64_t start = b * bs;
    const int64_t len = std::min(bs, a.n - start);
    Decode(a.code1, a.mq + start, a.ma[b], len, mbuf);
    Decode(a.code2, a.nq + start, a.na[b], len, vbuf);
    if (a.decay) {
      Moments<true>(a.g + start, a.p + start, mbuf, vbuf, a.u + start, len, a.beta1, a.beta2,
                    a.one_minus_beta1, a.one_minus_beta2, a.c2eps, a.coef, a.lrwd);
    } else {
      Moments<false>(a.g + start, a.p + start, mbuf, vbuf, a.u + start, len, a.beta1, a.beta2,
                     a.one_minus_beta1, a.one_minus_beta2, a.c2eps, a.coef, a.lrwd);
    }
    const float mmax = AbsMax(mbuf, len), vmax = AbsMax(vbuf, len);
    Nearest(a.table1, a.size1, a.shift1, mbuf, mmax > 0.0f ? mmax : 1.0f, len, a.mq_out + start);
    Nearest(a.table2, a.size2, a.shift2, vbuf, vmax > 0.0f ? vmax : 1.0f, len, a.nq_out + start);
    a.ma_out[b] = mmax;
    a.na_out[b] = vmax;
  }
}

// XLA:CPU allocates a large output afresh at every call, so that writing it first costs one
// page fault per 4 KiB, slow under virtualisation. On Linux, ask for transparent huge pages
// where the system grants them on request. A hint: nothing changes where it is refused.
inline void PrepareOutput(void* ptr, size_t bytes) {
#if defined(__linux__)
  const auto at = reinterpret_cast<uintptr_t>(ptr);
#if defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t{1} << 21;
  const uintptr_t hb = (at + kHuge - 1) & ~(kHuge - 1), he = (at + bytes) & ~(kHuge - 1);
  if (he > hb) madvise(reinterpret_cast<void*>(hb), he - hb, MADV_HUGEPAGE);
#endif
#endif
}

struct Shared {
  Args args;
  int64_t chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

void Work(Shared& s) {
  std::vector<float> mbuf(s.args.block_size), vbuf(s.args.block_size);
  float* m = mbuf.data();
  float* v = vbuf.data();
  for (;;) {
    const int64_t c = s.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= s.num_chunks) return;
    const int64_t first = c * s.chunk;
    const int64_t last = std::min(first + s.chunk, s.args.num_blocks);
    Blocks(s.args, first, last, m, v);
    s.done.fetch_add(1, std::memory_order_release);
  }
}

ffi::Error Adam8bitImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::F32> p,
                        ffi::Buffer<ffi::U8> mq, ffi::Buffer<ffi::F32> ma,
                        ffi::Buffer<ffi::U8> nq, ffi::Buffer<ffi::F32> na,
                        ffi::Buffer<ffi::F32> code1, ffi::Buffer<ffi::F32> code2,
                        ffi::Buffer<ffi::U32> table1, ffi::Buffer<ffi::U32> table2,
                        ffi::Buffer<ffi::F32> scalars, int64_t block_size, int64_t shift1,
                        int64_t shift2, bool decay, int64_t chunk_blocks,
                        ffi::ResultBuffer<ffi::F32> u, ffi::ResultBuffer<ffi::U8> mq_out,
                        ffi::ResultBuffer<ffi::F32> ma_out, ffi::ResultBuffer<ffi::U8> nq_out,
                        ffi::ResultBuffer<ffi::F32> na_out) {
  const int64_t n = static_cast<int64_t>(g.element_count());
  if (block_size < 1 || chunk_blocks < 1) {
    return ffi::Error::InvalidArgument("block_size and chunk_blocks must be positive");
  }
  const int64_t nb = std::max<int64_t>(1, (n + block_size - 1) / block_size);
  if (static_cast<int64_t>(p.element_count()) != n || static_cast<int64_t>(mq.element_count()) != n ||
      static_cast<int64_t>(nq.element_count()) != n ||
      static_cast<int64_t>(ma.element_count()) != nb ||
      static_cast<int64_t>(na.element_count()) != nb || code1.element_count() != 256 ||
      code2.element_count() != 256 || scalars.element_count() != 7) {
    return ffi::Error::InvalidArgument("adam8bit kernel: operand sizes do not match");
  }
  if (shift1 < 1 || shift1 > 30 || shift2 < 1 || shift2 > 30) {
    return ffi::Error::InvalidArgument("adam8bit kernel: bad table shift");
  }
  const float* sc = scalars.typed_data();
  auto shared = std::make_shared<Shared>();
  Args& a = shared->args;
  a = Args{g.typed_data(), p.typed_data(), mq.typed_data(), ma.typed_data(), nq.typed_data(),
           na.typed_data(), code1.typed_data(), code2.typed_data(), table1.typed_data(),
           table2.typed_data(), static_cast<int64_t>(table1.element_count()),
           static_cast<int64_t>(table2.element_count()), sc[0], sc[1], sc[2], sc[3], sc[4],
           sc[5], sc[6], decay, n, block_size, nb, static_cast<int>(shift1),
           static_cast<int>(shift2), u->typed_data(), mq_out->typed_data(),
           ma_out->typed_data(), nq_out->typed_data(), na_out->typed_data()};
  if (n == 0) {
    a.ma_out[0] = 0.0f;
    a.na_out[0] = 0.0f;
    return ffi::Error::Success();
  }
  PrepareOutput(a.u, n * sizeof(float));
  shared->chunk = chunk_blocks;
  shared->num_chunks = (nb + chunk_blocks - 1) / chunk_blocks;
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), shared->num_chunks - 1);
  for (int64_t t = 0; t < helpers; ++t) {
    pool.Schedule([shared]() { Work(*shared); });
  }
  Work(*shared);
  // the caller ran out of chunks: wait for the ones other threads are still computing
  while (shared->done.load(std::memory_order_acquire) < shared->num_chunks) {
    std::this_thread::yield();
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JopAdam8bitCpu, Adam8bitImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // g
                                  .Arg<ffi::Buffer<ffi::F32>>()  // p
                                  .Arg<ffi::Buffer<ffi::U8>>()   // mq
                                  .Arg<ffi::Buffer<ffi::F32>>()  // ma
                                  .Arg<ffi::Buffer<ffi::U8>>()   // nq
                                  .Arg<ffi::Buffer<ffi::F32>>()  // na
                                  .Arg<ffi::Buffer<ffi::F32>>()  // code1
                                  .Arg<ffi::Buffer<ffi::F32>>()  // code2
                                  .Arg<ffi::Buffer<ffi::U32>>()  // table1
                                  .Arg<ffi::Buffer<ffi::U32>>()  // table2
                                  .Arg<ffi::Buffer<ffi::F32>>()  // scalars
                                  .Attr<int64_t>("block_size")
                                  .Attr<int64_t>("shift1")
                                  .Attr<int64_t>("shift2")
                                  .Attr<bool>("decay")
                                  .Attr<int64_t>("chunk_blocks")
                                  .Ret<ffi::Buffer<ffi::F32>>()  // u
                                  .Ret<ffi::Buffer<ffi::U8>>()   // mq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // ma
                                  .Ret<ffi::Buffer<ffi::U8>>()   // nq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // na
);

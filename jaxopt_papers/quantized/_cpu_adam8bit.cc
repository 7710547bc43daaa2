// The requantised state of one step of the 8-bit block-wise Adam, for XLA:CPU, as an XLA FFI
// custom call.
//
// Per block of `block_size` consecutive entries (the last block may be short): dequantise the
// two moments, update them with the gradient and requantise them with the exact nearest-code
// table of jaxopt_papers.quantized.blockwise.Codebook, doing the float32 operations of the XLA
// path (jaxopt_papers.quantized.optimizers._adam_leaf) in the same order, each correctly
// rounded (no contraction into fused multiply-adds). The step itself is left to XLA, which
// fuses it with the parameter update and reads the old codes from the copy this kernel writes
// beside the new ones (so that XLA need not copy the state before the kernel updates it in
// place). One pass over the tensor; the float32 moments of one block live in a small buffer.
// Blocks are spread over XLA's intra-op thread pool. With AVX-512 (VBMI), the 256-entry code
// tables are read by byte permutes in registers rather than by gathers.
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

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>
#define JOP_AVX512 1
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLanes = 64;  // the block buffers are padded to a multiple of this

struct Args {
  const float* g;
  const uint8_t* mq;
  const float* ma;
  const uint8_t* nq;
  const float* na;
  const float* code1;
  const float* code2;
  // Rounding tables (blockwise.Codebook's, repacked by _native), keyed by the top 32 - shift
  // bits of a normalised float32 value: the entry (k0 << (shift + 1)) + 2^(shift + 1) - t
  // carries into the code k0 + 1 exactly when the remaining low bits (flipped for a negative
  // value) reach the bin's threshold t <= 2^shift.
  const uint32_t* table1;
  const uint32_t* table2;
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  int64_t n, block_size, num_blocks;
  int shift1, shift2;
  uint8_t* mq_out;
  float* ma_out;
  uint8_t* nq_out;
  float* na_out;
  uint8_t* mq_old;
  uint8_t* nq_old;
};

#if JOP_AVX512

// A 256-entry float32 table as four byte planes of four registers each: plane k holds byte k
// of every entry, entries 0-63 in reg[k][0], 64-127 in reg[k][1] and so on.
struct ByteTable {
  __m512i reg[4][4];
  explicit ByteTable(const float* code) {
    alignas(64) uint8_t plane[4][256];
    for (int i = 0; i < 256; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &code[i], sizeof bits);
      for (int k = 0; k < 4; ++k) plane[k][i] = static_cast<uint8_t>(bits >> (8 * k));
    }
    for (int k = 0; k < 4; ++k) {
      for (int r = 0; r < 4; ++r) reg[k][r] = _mm512_load_si512(plane[k] + 64 * r);
    }
  }
};

// Input order that makes the byte interleave below (which works within 128-bit lanes) put
// the 64 decoded values in order: position 16 l + 4 k + j takes element 16 k + 4 l + j.
inline __m512i InterleaveOrder() {
  alignas(64) uint8_t idx[64];
  for (int l = 0; l < 4; ++l) {
    for (int k = 0; k < 4; ++k) {
      for (int j = 0; j < 4; ++j) idx[16 * l + 4 * k + j] = static_cast<uint8_t>(16 * k + 4 * l + j);
    }
  }
  return _mm512_load_si512(idx);
}

// code[q[0:len]] * scale into out[0:ceil(len / 64) * 64] (entries past len are code[0] * scale).
inline void Decode(const ByteTable& t, __m512i order, const uint8_t* __restrict q, float scale,
                   int64_t len, float* __restrict out) {
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < len; i += kLanes) {
    const int64_t rest = len - i;
    const __mmask64 valid = rest >= kLanes ? ~__mmask64{0} : (__mmask64{1} << rest) - 1;
    const __m512i codes = _mm512_permutexvar_epi8(order, _mm512_maskz_loadu_epi8(valid, q + i));
    const __mmask64 upper = _mm512_movepi8_mask(codes);  // entries 128-255
    __m512i b[4];
    for (int k = 0; k < 4; ++k) {
      const __m512i lo = _mm512_permutex2var_epi8(t.reg[k][0], codes, t.reg[k][1]);
      const __m512i hi = _mm512_permutex2var_epi8(t.reg[k][2], codes, t.reg[k][3]);
      b[k] = _mm512_mask_blend_epi8(upper, lo, hi);
    }
    const __m512i b01l = _mm512_unpacklo_epi8(b[0], b[1]), b01h = _mm512_unpackhi_epi8(b[0], b[1]);
    const __m512i b23l = _mm512_unpacklo_epi8(b[2], b[3]), b23h = _mm512_unpackhi_epi8(b[2], b[3]);
    const __m512i w[4] = {_mm512_unpacklo_epi16(b01l, b23l), _mm512_unpackhi_epi16(b01l, b23l),
                          _mm512_unpacklo_epi16(b01h, b23h), _mm512_unpackhi_epi16(b01h, b23h)};
    for (int k = 0; k < 4; ++k) {
      _mm512_storeu_ps(out + i + 16 * k, _mm512_mul_ps(_mm512_castsi512_ps(w[k]), s));
    }
  }
}

// The new moments in place, and the block maxima max |m|, max |v| as jnp.max(jnp.abs(.)):
// the bit patterns of non-negative floats order as unsigned integers, a NaN's above all.
inline void Moments(const float* __restrict g, float* __restrict m, float* __restrict v,
                    int64_t len, float beta1, float beta2, float omb1, float omb2, float* mmax,
                    float* vmax) {
  const __m512 b1 = _mm512_set1_ps(beta1), b2 = _mm512_set1_ps(beta2);
  const __m512 c1 = _mm512_set1_ps(omb1), c2 = _mm512_set1_ps(omb2);
  const __m512 inf = _mm512_set1_ps(INFINITY);
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  __m512i mbest = _mm512_setzero_si512(), vbest = _mm512_setzero_si512();
  for (int64_t i = 0; i < len; i += 16) {
    const int64_t rest = len - i;
    const __mmask16 valid = rest >= 16 ? __mmask16(0xffff) : __mmask16((1u << rest) - 1u);
    const __m512 gi = _mm512_maskz_loadu_ps(valid, g + i);
    // finite (not NaN, not infinite) and inside the block; elsewhere the moments are 0
    const __mmask16 keep = _mm512_mask_cmp_ps_mask(valid, _mm512_abs_ps(gi), inf, _CMP_LT_OQ);
    // (a non-finite gradient's products are masked out)
    const __m512 mi = _mm512_maskz_add_ps(keep, _mm512_mul_ps(_mm512_loadu_ps(m + i), b1),
                                          _mm512_mul_ps(c1, gi));
    const __m512 vi = _mm512_maskz_add_ps(
        keep, _mm512_mul_ps(_mm512_loadu_ps(v + i), b2), _mm512_mul_ps(_mm512_mul_ps(c2, gi), gi));
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    mbest = _mm512_max_epu32(mbest, _mm512_and_si512(_mm512_castps_si512(mi), magnitude));
    vbest = _mm512_max_epu32(vbest, _mm512_and_si512(_mm512_castps_si512(vi), magnitude));
  }
  const uint32_t mb = _mm512_reduce_max_epu32(mbest), vb = _mm512_reduce_max_epu32(vbest);
  std::memcpy(mmax, &mb, sizeof mb);
  std::memcpy(vmax, &vb, sizeof vb);
}

// Nearest codes of `x[0:len] * inv` through a rounding table (see Args).
inline void Nearest(const uint32_t* __restrict table, int shift, const float* __restrict x,
                    float inv, int64_t len, uint8_t* __restrict out) {
  const __m512 d = _mm512_set1_ps(inv);
  const __m512i mask = _mm512_set1_epi32((1 << shift) - 1);
  const __m128i sh = _mm_cvtsi32_si128(shift), sh1 = _mm_cvtsi32_si128(shift + 1);
  for (int64_t i = 0; i < len; i += 16) {
    const int64_t rest = len - i;
    const __mmask16 valid = rest >= 16 ? __mmask16(0xffff) : __mmask16((1u << rest) - 1u);
    const __m512i bits = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(x + i), d));
    const __m512i e = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid,
                                                  _mm512_srl_epi32(bits, sh),
                                                  reinterpret_cast<const int*>(table), 4);
    // (bits ^ (bits >> 31 arithmetic)) & mask: the low bits, flipped for a negative value
    const __m512i low = _mm512_ternarylogic_epi32(bits, _mm512_srai_epi32(bits, 31), mask, 0x28);
    const __m512i k = _mm512_srl_epi32(_mm512_add_epi32(e, low), sh1);
    _mm512_mask_cvtepi32_storeu_epi8(out + i, valid, k);
  }
}

#else  // portable loops, vectorised by the compiler where it can

struct ByteTable {
  const float* code;
  explicit ByteTable(const float* c) : code(c) {}
};

inline int InterleaveOrder() { return 0; }

inline void Decode(const ByteTable& t, int, const uint8_t* __restrict q, float scale,
                   int64_t len, float* __restrict out) {
  for (int64_t i = 0; i < len; ++i) out[i] = t.code[q[i]] * scale;
}

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

inline void Moments(const float* __restrict g, float* __restrict m, float* __restrict v,
                    int64_t len, float beta1, float beta2, float omb1, float omb2, float* mmax,
                    float* vmax) {
  for (int64_t i = 0; i < len; ++i) {
    const float gi = g[i];
    const bool finite = std::isfinite(gi);
    const float g0 = finite ? gi : 0.0f;
    m[i] = finite ? m[i] * beta1 + omb1 * g0 : 0.0f;
    v[i] = finite ? v[i] * beta2 + (omb2 * g0) * g0 : 0.0f;
  }
  *mmax = AbsMax(m, len);
  *vmax = AbsMax(v, len);
}

// Nearest codes of `x[0:len] * inv` through a rounding table (see Args).
inline void Nearest(const uint32_t* __restrict table, int shift, const float* __restrict x,
                    float inv, int64_t len, uint8_t* __restrict out) {
  const uint32_t mask = (1u << shift) - 1u;
  for (int64_t i = 0; i < len; ++i) {
    const float xi = x[i] * inv;
    uint32_t bits;
    std::memcpy(&bits, &xi, sizeof bits);
    const uint32_t low = (bits ^ static_cast<uint32_t>(static_cast<int32_t>(bits) >> 31)) & mask;
    out[i] = static_cast<uint8_t>((table[bits >> shift] + low) >> (shift + 1));
  }
}

#endif

struct Shared {
  Args args;
  int64_t chunk;
  int64_t num_chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
};

template <typename Order>
void Blocks(const Args& a, const ByteTable& t1, const ByteTable& t2, Order order, int64_t first,
            int64_t last, float* m, float* v) {
  const int64_t bs = a.block_size;
  for (int64_t b = first; b < last; ++b) {
    const int64_t start = b * bs;
    const int64_t len = std::min(bs, a.n - start);
    Decode(t1, order, a.mq + start, a.ma[b], len, m);
    Decode(t2, order, a.nq + start, a.na[b], len, v);
    std::memcpy(a.mq_old + start, a.mq + start, len);
    std::memcpy(a.nq_old + start, a.nq + start, len);
    float mmax, vmax;
    Moments(a.g + start, m, v, len, a.beta1, a.beta2, a.one_minus_beta1, a.one_minus_beta2,
            &mmax, &vmax);
    Nearest(a.table1, a.shift1, m, 1.0f / (mmax > 0.0f ? mmax : 1.0f), len, a.mq_out + start);
    Nearest(a.table2, a.shift2, v, 1.0f / (vmax > 0.0f ? vmax : 1.0f), len, a.nq_out + start);
    a.ma_out[b] = mmax;
    a.na_out[b] = vmax;
  }
}

void Work(Shared& s) {
  const int64_t padded = (s.args.block_size + kLanes - 1) / kLanes * kLanes;
  std::vector<float> mbuf(padded), vbuf(padded);
  const ByteTable t1(s.args.code1), t2(s.args.code2);
  const auto order = InterleaveOrder();
  for (;;) {
    const int64_t c = s.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= s.num_chunks) return;
    const int64_t first = c * s.chunk;
    const int64_t last = std::min(first + s.chunk, s.args.num_blocks);
    Blocks(s.args, t1, t2, order, first, last, mbuf.data(), vbuf.data());
    s.done.fetch_add(1, std::memory_order_release);
  }
}

ffi::Error Adam8bitImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> g, ffi::Buffer<ffi::U8> mq,
                        ffi::Buffer<ffi::F32> ma, ffi::Buffer<ffi::U8> nq,
                        ffi::Buffer<ffi::F32> na, ffi::Buffer<ffi::F32> code1,
                        ffi::Buffer<ffi::F32> code2, ffi::Buffer<ffi::U32> table1,
                        ffi::Buffer<ffi::U32> table2, ffi::Buffer<ffi::F32> scalars,
                        int64_t block_size, int64_t shift1, int64_t shift2,
                        int64_t chunk_blocks, ffi::ResultBuffer<ffi::U8> mq_out,
                        ffi::ResultBuffer<ffi::F32> ma_out, ffi::ResultBuffer<ffi::U8> nq_out,
                        ffi::ResultBuffer<ffi::F32> na_out, ffi::ResultBuffer<ffi::U8> mq_old,
                        ffi::ResultBuffer<ffi::U8> nq_old) {
  const int64_t n = static_cast<int64_t>(g.element_count());
  if (block_size < 1 || chunk_blocks < 1) {
    return ffi::Error::InvalidArgument("block_size and chunk_blocks must be positive");
  }
  const int64_t nb = std::max<int64_t>(1, (n + block_size - 1) / block_size);
  if (static_cast<int64_t>(mq.element_count()) != n ||
      static_cast<int64_t>(nq.element_count()) != n ||
      static_cast<int64_t>(ma.element_count()) != nb ||
      static_cast<int64_t>(na.element_count()) != nb || code1.element_count() != 256 ||
      code2.element_count() != 256 || scalars.element_count() != 4) {
    return ffi::Error::InvalidArgument("adam8bit kernel: operand sizes do not match");
  }
  if (shift1 < 1 || shift1 > 30 || shift2 < 1 || shift2 > 30 ||
      static_cast<int64_t>(table1.element_count()) != int64_t{1} << (32 - shift1) ||
      static_cast<int64_t>(table2.element_count()) != int64_t{1} << (32 - shift2)) {
    return ffi::Error::InvalidArgument("adam8bit kernel: a table does not match its shift");
  }
  const float* sc = scalars.typed_data();
  auto shared = std::make_shared<Shared>();
  Args& a = shared->args;
  a = Args{g.typed_data(), mq.typed_data(), ma.typed_data(), nq.typed_data(), na.typed_data(),
           code1.typed_data(), code2.typed_data(), table1.typed_data(), table2.typed_data(),
           sc[0], sc[1], sc[2], sc[3], n,
           block_size, nb, static_cast<int>(shift1), static_cast<int>(shift2),
           mq_out->typed_data(), ma_out->typed_data(), nq_out->typed_data(),
           na_out->typed_data(), mq_old->typed_data(), nq_old->typed_data()};
  if (n == 0) {
    a.ma_out[0] = 0.0f;
    a.na_out[0] = 0.0f;
    return ffi::Error::Success();
  }
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
                                  .Attr<int64_t>("chunk_blocks")
                                  .Ret<ffi::Buffer<ffi::U8>>()   // mq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // ma
                                  .Ret<ffi::Buffer<ffi::U8>>()   // nq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // na
                                  .Ret<ffi::Buffer<ffi::U8>>()   // mq before the step
                                  .Ret<ffi::Buffer<ffi::U8>>()   // nq before the step
);

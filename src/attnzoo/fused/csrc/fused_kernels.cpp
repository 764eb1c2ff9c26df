// Fused CPU kernels for the gates of SE/CBAM/HA-CNN soft attention (inference only, fp32, NCHW).
// Each reads the big tensor once per pass and keeps partial results in registers or L1, so a
// module needs the passes over memory its equation needs and no more. See attnzoo/fused/__init__.py.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#ifdef __AVX__
#include <immintrin.h>
#endif

namespace {
constexpr int64_t kChunk = 2048;  // positions per work item of the channel pooling: 2 x 8 KiB accumulators in L1
constexpr int64_t kLanes = 32;    // partial results per plane reduction: 4 AVX2 registers, 4 independent add chains
constexpr float kLowest = -std::numeric_limits<float>::infinity();

// NaN semantics are PyTorch's throughout (no -ffast-math): a NaN reaching a max, a ReLU or a
// sigmoid comes out as NaN. max2 is the fast max of the vectorised loops, exact for every input
// but NaN; a row or column whose sum came out NaN (it holds a NaN, or both infinities) has its
// maximum recomputed by nan_max, which propagates NaN like torch.amax.
inline float max2(float a, float b) { return a > b ? a : b; }
// ReLU that keeps NaN: !(v <= 0) holds for v > 0 and for NaN, one unordered compare and a mask
// per lane (as cheap as a max, which would drop NaN).
inline float rectify(float v) { return !(v <= 0.f) ? v : 0.f; }
// min(max(t, 0), hi) that keeps NaN (the second compare is false for NaN, so it passes through).
inline float clamp_keep_nan(float t, float hi) {
  t = rectify(t);
  return t > hi ? hi : t;
}
inline float nan_max(const float* r, int64_t n, int64_t stride, float w = 1.f) {
  float b = kLowest;
  for (int64_t q = 0; q < n; ++q) {
    const float v = r[q * stride] * w;
    if (v != v) return v;
    b = v > b ? v : b;
  }
  return b;
}

// e^(-t) for t in [0, 87.3] (so that 2^n stays a normal float), vectorisable: t = n ln2 + r with
// |r| <= ln2/2 (ln2 split in two for an exact product), e^-r by Cephes' degree-7 expf polynomial
// (about 1 ulp), 2^n by writing the exponent bits. Inline, so the loop around it stays in registers.
inline float exp_neg(float t) {
  const float n = std::floor(-t * 1.44269504088896341f + 0.5f);
  const float r = -t - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

// The logistic function through exp_neg: 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below, so
// e^-|z| never overflows; |z| past 87.3 gives 0 or 1 to float precision.
inline float sigmoid(float z) {
  if (z != z) return z;
  const float a = z >= 0.f ? z : -z;
  const float e = exp_neg(a < 87.3f ? a : 87.3f);
  return (z >= 0.f ? 1.f : e) / (1.f + e);
}

// The data of an input that must be a contiguous fp32 CPU tensor of `numel` elements (the Python
// side only calls with such tensors; a wrong call fails here rather than reading out of bounds).
const float* input(const torch::Tensor& t, int64_t numel, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous(),
              "attnzoo fused kernels: ", name, " must be a contiguous float32 CPU tensor");
  TORCH_CHECK(t.numel() == numel, "attnzoo fused kernels: ", name, " has ", t.numel(), " elements, expected ", numel);
  return t.data_ptr<float>();
}

const float* input(const c10::optional<torch::Tensor>& t, int64_t numel, const char* name) {
  return t.has_value() ? input(*t, numel, name) : nullptr;
}
}  // namespace

namespace {
// Mean and max of one row r[0, P).
inline void pool_row(const float* r, int64_t P, float* mean, float* max) {
  float t = 0.f, b = kLowest;
  int64_t p = 0;
  if (P >= 4 * kLanes) {  // long rows: kLanes partial results (shorter ones: the plain loop is faster)
    float total[kLanes], best[kLanes];
    for (int64_t k = 0; k < kLanes; ++k) { total[k] = 0.f; best[k] = kLowest; }
    for (; p + kLanes <= P; p += kLanes) {
#pragma omp simd
      for (int64_t k = 0; k < kLanes; ++k) { total[k] += r[p + k]; best[k] = max2(best[k], r[p + k]); }
    }
    for (int64_t k = 0; k < kLanes; ++k) { t += total[k]; b = max2(b, best[k]); }
  }
#pragma omp simd reduction(+ : t) reduction(max : b)
  for (int64_t q = p; q < P; ++q) { t += r[q]; b = max2(b, r[q]); }
  *mean = t / static_cast<float>(P);
  *max = t != t ? nan_max(r, P, 1) : b;
}

// Mean and max over P of every one of `planes` rows of x (planes, P).
void pool_spatial_into(const float* xp, int64_t planes, int64_t P, float* ap, float* mp) {
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pool_row(xp + i * P, P, ap + i, mp + i);
  });
}
// Mean and max over channels of x * w[n, c] (w may be null = 1): x (N, C, P) -> avg[n * stride + p],
// max[n * stride + p]. Four channels per sweep of the accumulators: one load and store of them per
// four rows of x.
void pool_channels_into(const float* xp, const float* wp, int64_t N, int64_t C, int64_t P, float* ap, float* mp, int64_t stride) {
  // Equal chunks of at most kChunk positions (a multiple of 16: whole cache lines), and enough of
  // them to keep every thread busy when few images come at once (one 56x56 image would otherwise
  // be a 2048- and a 1088-position item for two threads).
  const int64_t items_wanted = 4 * at::get_num_threads();
  const int64_t chunks = std::max((P + kChunk - 1) / kChunk, std::min((items_wanted + N - 1) / N, (P + 255) / 256));
  const int64_t chunk = std::min(kChunk, ((P + chunks - 1) / chunks + 15) / 16 * 16);
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    float s[kChunk], m[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, p0 = (item % chunks) * chunk, len = std::max<int64_t>(0, std::min(chunk, P - p0));
      const float* r = xp + n * C * P + p0;
      auto weight = [&](int64_t c) { return wp ? wp[n * C + c] : 1.f; };
      for (int64_t j = 0; j < len; ++j) { s[j] = 0.f; m[j] = kLowest; }
      int64_t c = 0;
      for (; c + 4 <= C; c += 4) {
        const float *r0 = r + c * P, *r1 = r0 + P, *r2 = r1 + P, *r3 = r2 + P;
        const float w0 = weight(c), w1 = weight(c + 1), w2 = weight(c + 2), w3 = weight(c + 3);
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
          const float v0 = r0[j] * w0, v1 = r1[j] * w1, v2 = r2[j] * w2, v3 = r3[j] * w3;
          s[j] += (v0 + v1) + (v2 + v3);
          m[j] = max2(m[j], max2(max2(v0, v1), max2(v2, v3)));
        }
      }
      for (; c < C; ++c) {
        const float* rc = r + c * P;
        const float wc = weight(c);
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) { const float v = rc[j] * wc; s[j] += v; m[j] = max2(m[j], v); }
      }
      for (int64_t j = 0; j < len; ++j) {
        if (s[j] != s[j]) {  // a NaN (or both infinities) at this position: the exact, NaN-propagating max
          m[j] = kLowest;
          for (int64_t q = 0; q < C && m[j] == m[j]; ++q) {
            const float v = r[q * P + j] * weight(q);
            m[j] = v != v ? v : max2(m[j], v);
          }
        }
        ap[n * stride + p0 + j] = s[j] / static_cast<float>(C);
        mp[n * stride + p0 + j] = m[j];
      }
    }
  });
}
}  // namespace

// Mean and max over H*W of every (n, c) plane: x (N, C, P) -> avg (N, C), max (N, C).
std::vector<torch::Tensor> pool_spatial(const torch::Tensor& x) {
  auto avg = torch::empty({x.size(0), x.size(1)}, x.options());
  auto mx = torch::empty_like(avg);
  const int64_t planes = x.size(0) * x.size(1);
  pool_spatial_into(input(x, x.numel(), "x"), planes, x.numel() / planes, avg.data_ptr<float>(), mx.data_ptr<float>());
  return {avg, mx};
}

// Mean and max over channels of x * w[n, c] (w may be undefined = 1): x (N, C, P) -> (N, P) each.
std::vector<torch::Tensor> pool_channels(const torch::Tensor& x, const c10::optional<torch::Tensor>& w) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto avg = torch::empty({N, P}, x.options());
  auto mx = torch::empty_like(avg);
  pool_channels_into(input(x, x.numel(), "x"), input(w, N * C, "w"), N, C, P, avg.data_ptr<float>(), mx.data_ptr<float>(), P);
  return {avg, mx};
}

namespace {
template <bool kRelu>
inline float epilogue(float v) { return kRelu ? rectify(v) : v; }

// Outputs at least this big are written with non-temporal (streaming) stores: they cannot stay in
// the cache anyway, and a normal store first reads each line it writes (read-for-ownership), so a
// pass that writes y would move y twice. Smaller outputs are written normally and stay cached for
// whatever reads them next (half of the 32 MiB L3 of the machine these were tuned on).
constexpr int64_t kStreamBytes = 16 << 20;
constexpr int64_t kStreamBlock = 512;  // positions computed into an L1 buffer, then streamed out
inline bool streamed(const torch::Tensor& y) { return y.numel() * static_cast<int64_t>(sizeof(float)) >= kStreamBytes; }

// dst[0, n) = src[0, n) with streaming stores where dst is 32-byte aligned (AVX), plain stores at
// the unaligned head and the tail.
inline void stream_out(float* dst, const float* src, int64_t n) {
#ifdef __AVX__
  int64_t p = 0;
  for (; p < n && (reinterpret_cast<uintptr_t>(dst + p) & 31) != 0; ++p) dst[p] = src[p];
  for (; p + 8 <= n; p += 8) _mm256_stream_ps(dst + p, _mm256_loadu_ps(src + p));
  for (; p < n; ++p) dst[p] = src[p];
#else
  std::memcpy(dst, src, n * sizeof(float));
#endif
}

// Row o[0, P) written by fill(p, len, dst), which computes positions [p, p + len) into dst: straight
// into o, or (stream) a block at a time into an L1 buffer that streaming stores then move out.
template <typename Fill>
inline void write_row(float* o, int64_t P, bool stream, Fill fill) {
  if (!stream) {
    fill(0, P, o);
    return;
  }
  alignas(64) float buffer[kStreamBlock];
  for (int64_t p = 0; p < P; p += kStreamBlock) {
    const int64_t len = std::min(kStreamBlock, P - p);
    fill(p, len, buffer);
    stream_out(o + p, buffer, len);
  }
}

// The end of a pass that used streaming stores: they are weakly ordered, so fence them before the
// output is handed back.
inline void stream_fence(bool stream) {
#ifdef __AVX__
  if (stream) _mm_sfence();
#endif
}

// One plane of the apply pass: o[p] = epilogue(x[p] * a * b[p] + r[p]) (b, r may be null).
template <bool kRelu>
inline void scale_row(const float* xi, float ac, const float* bn, const float* ri, float* o, int64_t P) {
  if (bn && ri) {
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) o[p] = epilogue<kRelu>(xi[p] * ac * bn[p] + ri[p]);
  } else if (bn) {
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) o[p] = epilogue<kRelu>(xi[p] * ac * bn[p]);
  } else if (ri) {
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) o[p] = epilogue<kRelu>(xi[p] * ac + ri[p]);
  } else {
#pragma omp simd
    for (int64_t p = 0; p < P; ++p) o[p] = epilogue<kRelu>(xi[p] * ac);
  }
}

// y = epilogue(x * a[n, c] * b[n, p] + r) over (N, C, P) planes.
template <bool kRelu>
void scale_planes(const float* xp, const float* ap, const float* bp, const float* rp, float* yp, int64_t N, int64_t C, int64_t P,
                  bool stream) {
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float ac = ap ? ap[i] : 1.f;
      const float* xi = xp + i * P;
      const float* bn = bp ? bp + (i / C) * P : nullptr;
      const float* ri = rp ? rp + i * P : nullptr;
      write_row(yp + i * P, P, stream, [=](int64_t p, int64_t len, float* dst) {
        scale_row<kRelu>(xi + p, ac, bn ? bn + p : nullptr, ri ? ri + p : nullptr, dst, len);
      });
    }
  });
  stream_fence(stream);
}
}  // namespace

// y = x * a[n, c] * b[n, p] (+ r), then max(y, 0) if relu; a, b and r may be undefined (a, b = 1,
// r = 0). With r and relu it is a residual block's epilogue, relu(gate(x) + identity), in one pass.
torch::Tensor scale(const torch::Tensor& x, const c10::optional<torch::Tensor>& a, const c10::optional<torch::Tensor>& b,
                    const c10::optional<torch::Tensor>& r, bool relu) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto y = torch::empty_like(x);
  const float* xp = input(x, x.numel(), "x");
  const float* ap = input(a, N * C, "a");
  const float* bp = input(b, N * P, "b");
  const float* rp = input(r, x.numel(), "r");
  (relu ? scale_planes<true> : scale_planes<false>)(xp, ap, bp, rp, y.data_ptr<float>(), N, C, P, streamed(y));
  return y;
}

namespace {
// The k x k convolution (stride 1, zero padding k/2) of CBAM's spatial attention, 2 maps -> 1,
// then the logistic function if `logistic`: maps (N, 2, H, W), weight (2, k, k) -> out (N, H*W).
void conv_two_to_one_into(const float* mp, int64_t N, int64_t H, int64_t W, const float* wp, int64_t k, float b, float* op, bool logistic) {
  const int64_t pad = k / 2;
  constexpr int64_t kBlock = 32;  // outputs per block: 4 registers of accumulators, 4 independent add chains
  const int64_t Wp = W + 2 * pad + kBlock;  // (+ kBlock: the last block may read past the row; zeros)
  at::parallel_for(0, N * H, 1, [&](int64_t begin, int64_t end) {
    // The k rows of each map that output row i reads, zero-padded: row t = m * k + dy, column pad + x.
    std::vector<float> rows(2 * k * Wp);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / H, i = item % H;
      std::fill(rows.begin(), rows.end(), 0.f);
      for (int64_t m = 0; m < 2; ++m) {
        for (int64_t dy = 0; dy < k; ++dy) {
          const int64_t row = i + dy - pad;
          if (row >= 0 && row < H) std::memcpy(&rows[(m * k + dy) * Wp + pad], mp + ((n * 2 + m) * H + row) * W, W * sizeof(float));
        }
      }
      float* o = op + item * W;
      for (int64_t j0 = 0; j0 < W; j0 += kBlock) {
        float acc[kBlock];
        for (int64_t q = 0; q < kBlock; ++q) acc[q] = b;
        for (int64_t t = 0; t < 2 * k; ++t) {
          for (int64_t dx = 0; dx < k; ++dx) {
            const float w = wp[t * k + dx];
            const float* src = &rows[t * Wp + j0 + dx];
#pragma omp simd
            for (int64_t q = 0; q < kBlock; ++q) acc[q] += w * src[q];
          }
        }
        if (logistic) {
#pragma omp simd
          for (int64_t q = 0; q < kBlock; ++q) acc[q] = sigmoid(acc[q]);
        }
        for (int64_t q = 0; q < std::min(kBlock, W - j0); ++q) o[j0 + q] = acc[q];
      }
    }
  });
}
}  // namespace

// CBAM's spatial convolution alone: maps (N, 2, H, W), weight (1, 2, k, k), bias (1) or undefined
// -> (N, H*W). oneDNN spends ~0.7 ms on this 2.5 MMAC convolution at 8 x 56 x 56; a direct loop
// needs a fraction of that.
torch::Tensor conv_two_to_one(const torch::Tensor& maps, const torch::Tensor& weight, const c10::optional<torch::Tensor>& bias) {
  TORCH_CHECK(maps.dim() == 4 && maps.size(1) == 2 && weight.dim() == 4 && weight.size(3) % 2 == 1,
              "attnzoo fused kernels: conv_two_to_one needs (N, 2, H, W) maps and an odd kernel");
  const int64_t N = maps.size(0), H = maps.size(2), W = maps.size(3), k = weight.size(3);
  auto out = torch::empty({N, H * W}, maps.options());
  const float* bp = input(bias, 1, "bias");
  conv_two_to_one_into(input(maps, maps.numel(), "maps"), N, H, W, input(weight, 2 * k * k, "weight"), k, bp ? bp[0] : 0.f,
                       out.data_ptr<float>(), false);
  return out;
}

// Means of x over channels, (N, P), and over positions, (N, C), from one pass over x (four
// channels per sweep of the accumulators, as in pool_channels).
std::vector<torch::Tensor> means(const torch::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  auto over_c = torch::empty({N, P}, x.options());
  auto partial = torch::empty({N, chunks, C}, x.options());  // per-chunk sums over positions
  const float* xp = input(x, x.numel(), "x");
  float* op = over_c.data_ptr<float>();
  float* pp = partial.data_ptr<float>();
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    float s[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, k = item % chunks, p0 = k * kChunk, len = std::min(kChunk, P - p0);
      const float* r = xp + n * C * P + p0;
      float* rows = pp + (n * chunks + k) * C;
      for (int64_t j = 0; j < len; ++j) s[j] = 0.f;
      int64_t c = 0;
      for (; c + 4 <= C; c += 4) {
        const float *r0 = r + c * P, *r1 = r0 + P, *r2 = r1 + P, *r3 = r2 + P;
        float q0 = 0.f, q1 = 0.f, q2 = 0.f, q3 = 0.f;
#pragma omp simd reduction(+ : q0, q1, q2, q3)
        for (int64_t j = 0; j < len; ++j) {
          s[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]);
          q0 += r0[j]; q1 += r1[j]; q2 += r2[j]; q3 += r3[j];
        }
        rows[c] = q0; rows[c + 1] = q1; rows[c + 2] = q2; rows[c + 3] = q3;
      }
      for (; c < C; ++c) {
        const float* rc = r + c * P;
        float q = 0.f;
#pragma omp simd reduction(+ : q)
        for (int64_t j = 0; j < len; ++j) { s[j] += rc[j]; q += rc[j]; }
        rows[c] = q;
      }
      const float inv_c = 1.f / static_cast<float>(C);
      for (int64_t j = 0; j < len; ++j) op[n * P + p0 + j] = s[j] * inv_c;
    }
  });
  auto over_p = torch::empty({N, C}, x.options());
  float* vp = over_p.data_ptr<float>();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      float total = 0.f;
      for (int64_t k = 0; k < chunks; ++k) total += pp[(n * chunks + k) * C + c];
      vp[n * C + c] = total / static_cast<float>(P);
    }
  }
  return {over_c, over_p};
}

// HA-CNN's spatial map in eval mode, with each ConvBlock's BatchNorm folded into its conv:
// relu(w2 * resize(relu(conv3x3/2(m; w1) + b1)) + b2), the resize bilinear with aligned corners back
// to H x W. m (N, H, W) -> (N, H*W). Through PyTorch these are ~10 calls on 8 x 56 x 56 maps
// (oneDNN ~0.1-0.3 ms for the one-channel conv alone); here one small loop per image.
torch::Tensor ha_spatial_map(const torch::Tensor& m, const torch::Tensor& w1, const torch::Tensor& b1,
                             const torch::Tensor& w2, const torch::Tensor& b2) {
  TORCH_CHECK(m.dim() == 3, "attnzoo fused kernels: ha_spatial_map needs (N, H, W) maps");
  const int64_t N = m.size(0), H = m.size(1), W = m.size(2), oh = (H - 1) / 2 + 1, ow = (W - 1) / 2 + 1;
  const float* mp = input(m, m.numel(), "m");
  const float* k = input(w1, 9, "w1");
  const float c1 = input(b1, 1, "b1")[0], a2 = input(w2, 1, "w2")[0], c2 = input(b2, 1, "b2")[0];
  auto out = torch::empty({N, H * W}, m.options());
  float* op = out.data_ptr<float>();
  // Source coordinates of the resize, as PyTorch computes them: src = dst * (in - 1) / (out - 1).
  const float sy = H > 1 ? static_cast<float>(oh - 1) / static_cast<float>(H - 1) : 0.f;
  const float sx = W > 1 ? static_cast<float>(ow - 1) / static_cast<float>(W - 1) : 0.f;
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> t(oh * ow);
    for (int64_t n = begin; n < end; ++n) {
      const float* img = mp + n * H * W;
      for (int64_t i = 0; i < oh; ++i) {
        for (int64_t j = 0; j < ow; ++j) {
          float acc = c1;
          for (int64_t dy = 0; dy < 3; ++dy) {
            const int64_t y = 2 * i - 1 + dy;
            if (y < 0 || y >= H) continue;
            for (int64_t dx = 0; dx < 3; ++dx) {
              const int64_t x = 2 * j - 1 + dx;
              if (x >= 0 && x < W) acc += k[dy * 3 + dx] * img[y * W + x];
            }
          }
          t[i * ow + j] = rectify(acc);
        }
      }
      float* o = op + n * H * W;
      for (int64_t y = 0; y < H; ++y) {
        const float fy = sy * static_cast<float>(y);
        const int64_t y0 = static_cast<int64_t>(fy), y1 = y0 < oh - 1 ? y0 + 1 : y0;
        const float ly = fy - static_cast<float>(y0);
        for (int64_t x = 0; x < W; ++x) {
          const float fx = sx * static_cast<float>(x);
          const int64_t x0 = static_cast<int64_t>(fx), x1 = x0 < ow - 1 ? x0 + 1 : x0;
          const float lx = fx - static_cast<float>(x0);
          const float v = (1.f - ly) * ((1.f - lx) * t[y0 * ow + x0] + lx * t[y0 * ow + x1]) +
                          ly * ((1.f - lx) * t[y1 * ow + x0] + lx * t[y1 * ow + x1]);
          o[y * W + x] = rectify(a2 * v + c2);
        }
      }
    }
  });
  return out;
}

namespace {
template <bool kRelu>
void rank1_rows(const float* xp, const float* sp, const float* up, const float* vp, const float* rp, float* yp, int64_t N, int64_t C,
                int64_t P, bool stream) {
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float uc = up[i], vc = vp[i % C];
      const float* xi = xp + i * P;
      const float* sn = sp + (i / C) * P;
      const float* ri = rp ? rp + i * P : nullptr;
      write_row(yp + i * P, P, stream, [=](int64_t p0, int64_t len, float* dst) {
        if (ri) {
#pragma omp simd
          for (int64_t p = 0; p < len; ++p) {
            float t = sn[p0 + p] * uc + vc;
            t = clamp_keep_nan(t, 87.3f);
            dst[p] = epilogue<kRelu>(xi[p0 + p] / (1.f + exp_neg(t)) + ri[p0 + p]);
          }
        } else {
#pragma omp simd
          for (int64_t p = 0; p < len; ++p) {
            float t = sn[p0 + p] * uc + vc;
            t = clamp_keep_nan(t, 87.3f);
            dst[p] = epilogue<kRelu>(xi[p0 + p] / (1.f + exp_neg(t)));
          }
        }
      });
    }
  });
  stream_fence(stream);
}
}  // namespace

// HA-CNN soft attention applied: y = x * sigmoid(max(s[n, p] * u[n, c] + v[c], 0)) (+ r), then
// max(y, 0) if relu (a residual block's end). The ReLU inside makes the sigmoid's argument t >= 0,
// so e^-t lies in (0, 1]; past t = 87.3 the gate is 1.
torch::Tensor rank1_sigmoid_scale(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& u, const torch::Tensor& v,
                                  const c10::optional<torch::Tensor>& r, bool relu) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto y = torch::empty_like(x);
  const float* xp = input(x, x.numel(), "x");
  const float* sp = input(s, N * P, "s");
  const float* up = input(u, N * C, "u");
  const float* vp = input(v, C, "v");
  const float* rp = input(r, x.numel(), "r");
  (relu ? rank1_rows<true> : rank1_rows<false>)(xp, sp, up, vp, rp, y.data_ptr<float>(), N, C, P, streamed(y));
  return y;
}

namespace {
// out[m, j] = sum_k a[m, k] w[j, k] + bias[j] (bias may be null), for the few rows m of pooled
// descriptors a (M, K) and a linear layer's weight w (J, K). MKL reaches ~45 GFLOP/s on these
// shapes on one core and nothing more on two; each weight row here stays in L1 while four rows
// of a go past it (four independent accumulators), split over the threads by weight rows.
void linear_rows(const float* a, int64_t M, int64_t K, const float* w, int64_t J, const float* bias, float* out) {
  at::parallel_for(0, J, 16, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const float* wj = w + j * K;
      const float b = bias ? bias[j] : 0.f;
      int64_t m = 0;
      for (; m + 4 <= M; m += 4) {
        const float *a0 = a + m * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int64_t k = 0; k < K; ++k) { s0 += a0[k] * wj[k]; s1 += a1[k] * wj[k]; s2 += a2[k] * wj[k]; s3 += a3[k] * wj[k]; }
        out[m * J + j] = s0 + b; out[(m + 1) * J + j] = s1 + b; out[(m + 2) * J + j] = s2 + b; out[(m + 3) * J + j] = s3 + b;
      }
      for (; m < M; ++m) {
        const float* am = a + m * K;
        float s0 = 0.f;
#pragma omp simd reduction(+ : s0)
        for (int64_t k = 0; k < K; ++k) s0 += am[k] * wj[k];
        out[m * J + j] = s0 + b;
      }
    }
  });
}
}  // namespace

// SE, CBAM or one of CBAM's halves, applied in eval mode, optionally as a residual block's end:
//   y = x * Mc[n, c] * Ms[n, p] (+ r), then max(y, 0) if relu, where
//   Mc = sigmoid(W2 relu(W1 avg_p(x) + b1) + b2)                                    (SE), or
//   Mc = sigmoid(W2 (relu(W1 avg_p(x) + b1) + relu(W1 max_p(x) + b1)) + 2 b2)       (with_max: CBAM's
//        shared MLP on both descriptors; W2 is linear, so its two calls are one on the summed
//        hidden vectors),
//   Ms = sigmoid(conv_k([mean_c(x * Mc); max_c(x * Mc)]) + cb)   (CBAM; maps swapped if max_first).
// No channel gate if w1 is undefined, no spatial gate if conv_w is; BatchNorm after the conv (the
// official CBAM variant) must be folded into conv_w / conv_b by the caller. The whole batch goes
// through each step at once: taking it a cache-sized group of images at a time (so that later
// passes re-read a group from L3) measured no faster for SE and slower for CBAM on the 2-core EPYC
// these were tuned on (its L3 reads ~1.4x faster than memory; each group costs its own thread
// fork/joins), so this kernel does the plain thing.
torch::Tensor pooled_gates(const torch::Tensor& x, const c10::optional<torch::Tensor>& r, bool relu,
                           const c10::optional<torch::Tensor>& w1, const c10::optional<torch::Tensor>& b1,
                           const c10::optional<torch::Tensor>& w2, const c10::optional<torch::Tensor>& b2, bool with_max,
                           const c10::optional<torch::Tensor>& conv_w, const c10::optional<torch::Tensor>& conv_b,
                           bool max_first) {
  TORCH_CHECK(x.dim() == 4, "attnzoo fused kernels: pooled_gates needs (N, C, H, W) input");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), P = H * W;
  const float* xp = input(x, x.numel(), "x");
  const float* rp = input(r, x.numel(), "r");
  const bool channel = w1.has_value(), spatial = conv_w.has_value();
  int64_t hidden = 0, k = 0;
  const float *w1p = nullptr, *w2p = nullptr;
  if (channel) {
    TORCH_CHECK(w1->dim() == 2 && w1->size(1) == C && w2.has_value(), "attnzoo fused kernels: pooled_gates needs w1 (h, C) and w2 (C, h)");
    hidden = w1->size(0);
    w1p = input(*w1, hidden * C, "w1");
    w2p = input(*w2, C * hidden, "w2");
  }
  const float* kw = nullptr;
  float kb = 0.f;
  if (spatial) {
    TORCH_CHECK(conv_w->dim() == 4 && conv_w->size(3) % 2 == 1, "attnzoo fused kernels: pooled_gates needs an odd (1, 2, k, k) conv weight");
    k = conv_w->size(3);
    kw = input(*conv_w, 2 * k * k, "conv_w");
    const float* bp = input(conv_b, 1, "conv_b");
    kb = bp ? bp[0] : 0.f;
  }
  auto y = torch::empty_like(x);
  auto pools = torch::empty({2 * N, C}, x.options());  // N rows of spatial means, then N rows of maxima
  auto hidden_rows = torch::empty({2 * N, hidden}, x.options());
  auto mc = torch::empty({N, C}, x.options());
  auto maps = torch::empty({N, 2, P}, x.options());
  auto ms = torch::empty({N, P}, x.options());
  const float *b1p = input(b1, hidden, "b1"), *b2p = input(b2, C, "b2");
  float* mcp = nullptr;
  if (channel) {
    float *pp = pools.data_ptr<float>(), *hp = hidden_rows.data_ptr<float>();
    std::vector<float> twice_b2(b2p && with_max ? C : 0);  // (CBAM: the two MLP calls' biases, summed)
    for (size_t c = 0; c < twice_b2.size(); ++c) twice_b2[c] = 2.f * b2p[c];
    mcp = mc.data_ptr<float>();
    pool_spatial_into(xp, N * C, P, pp, pp + N * C);
    linear_rows(pp, with_max ? 2 * N : N, C, w1p, hidden, b1p, hp);
    for (int64_t i = 0; i < N * hidden; ++i) hp[i] = rectify(hp[i]) + (with_max ? rectify(hp[i + N * hidden]) : 0.f);
    linear_rows(hp, N, hidden, w2p, C, b2p && with_max ? twice_b2.data() : b2p, mcp);
    for (int64_t i = 0; i < N * C; ++i) mcp[i] = sigmoid(mcp[i]);
  }
  if (spatial) {
    float* mp = maps.data_ptr<float>();
    pool_channels_into(xp, mcp, N, C, P, max_first ? mp + P : mp, max_first ? mp : mp + P, 2 * P);
    conv_two_to_one_into(mp, N, H, W, kw, k, kb, ms.data_ptr<float>(), true);
  }
  (relu ? scale_planes<true> : scale_planes<false>)(xp, mcp, spatial ? ms.data_ptr<float>() : nullptr, rp, y.data_ptr<float>(), N, C, P,
                                                   streamed(y));
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pool_spatial", &pool_spatial);
  m.def("pool_channels", &pool_channels);
  m.def("scale", &scale);
  m.def("conv_two_to_one", &conv_two_to_one);
  m.def("means", &means);
  m.def("ha_spatial_map", &ha_spatial_map);
  m.def("rank1_sigmoid_scale", &rank1_sigmoid_scale);
  m.def("pooled_gates", &pooled_gates);
}

// Fused CPU kernels for the gates of SE/CBAM/HA-CNN soft attention (inference only, fp32, NCHW).
// Each reads the big tensor once per pass and keeps partial results in registers or L1, so a
// module needs the passes over memory its equation needs and no more. See attnzoo/layers/fused.py.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {
constexpr int64_t kChunk = 4096;  // positions per work item of the channel pooling (2 x 16 KiB accumulators)
}

// Mean and max over H*W of every (n, c) plane: x (N, C, P) -> avg (N, C), max (N, C).
std::vector<torch::Tensor> pool_spatial(const torch::Tensor& x) {
  const int64_t planes = x.size(0) * x.size(1), P = x.numel() / planes;
  auto avg = torch::empty({x.size(0), x.size(1)}, x.options());
  auto mx = torch::empty_like(avg);
  const float* xp = x.data_ptr<float>();
  float* ap = avg.data_ptr<float>();
  float* mp = mx.data_ptr<float>();
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* r = xp + i * P;
      float total = 0.f, best = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(+ : total) reduction(max : best)
      for (int64_t p = 0; p < P; ++p) { total += r[p]; best = r[p] > best ? r[p] : best; }
      ap[i] = total / static_cast<float>(P);
      mp[i] = best;
    }
  });
  return {avg, mx};
}

// Mean and max over channels of x * w[n, c] (w may be undefined = 1): x (N, C, P) -> (N, P) each.
std::vector<torch::Tensor> pool_channels(const torch::Tensor& x, const c10::optional<torch::Tensor>& w) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto avg = torch::empty({N, P}, x.options());
  auto mx = torch::empty_like(avg);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.has_value() ? w->data_ptr<float>() : nullptr;
  float* ap = avg.data_ptr<float>();
  float* mp = mx.data_ptr<float>();
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    float s[kChunk], m[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, p0 = (item % chunks) * kChunk, len = std::min(kChunk, P - p0);
      for (int64_t j = 0; j < len; ++j) { s[j] = 0.f; m[j] = -std::numeric_limits<float>::infinity(); }
      for (int64_t c = 0; c < C; ++c) {
        const float wc = wp ? wp[n * C + c] : 1.f;
        const float* r = xp + (n * C + c) * P + p0;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) { float v = r[j] * wc; s[j] += v; m[j] = v > m[j] ? v : m[j]; }
      }
      for (int64_t j = 0; j < len; ++j) { ap[n * P + p0 + j] = s[j] / static_cast<float>(C); mp[n * P + p0 + j] = m[j]; }
    }
  });
  return {avg, mx};
}

// y = x * a[n, c] * b[n, p]; either factor may be undefined (= 1).
torch::Tensor scale(const torch::Tensor& x, const c10::optional<torch::Tensor>& a, const c10::optional<torch::Tensor>& b) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* apt = a.has_value() ? a->data_ptr<float>() : nullptr;
  const float* bpt = b.has_value() ? b->data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float ac = apt ? apt[i] : 1.f;
      const float* r = xp + i * P;
      float* o = yp + i * P;
      if (bpt) {
        const float* bn = bpt + (i / C) * P;
#pragma omp simd
        for (int64_t p = 0; p < P; ++p) o[p] = r[p] * ac * bn[p];
      } else {
        for (int64_t p = 0; p < P; ++p) o[p] = r[p] * ac;
      }
    }
  });
  return y;
}

// Means of x over channels, (N, P), and over positions, (N, C), from one pass over x.
std::vector<torch::Tensor> means(const torch::Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  const int64_t chunks = (P + kChunk - 1) / kChunk;
  auto over_c = torch::empty({N, P}, x.options());
  auto partial = torch::empty({N, chunks, C}, x.options());  // per-chunk sums over positions
  const float* xp = x.data_ptr<float>();
  float* op = over_c.data_ptr<float>();
  float* pp = partial.data_ptr<float>();
  at::parallel_for(0, N * chunks, 1, [&](int64_t begin, int64_t end) {
    float s[kChunk];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / chunks, k = item % chunks, p0 = k * kChunk, len = std::min(kChunk, P - p0);
      for (int64_t j = 0; j < len; ++j) s[j] = 0.f;
      for (int64_t c = 0; c < C; ++c) {
        const float* r = xp + (n * C + c) * P + p0;
        float row = 0.f;
#pragma omp simd reduction(+ : row)
        for (int64_t j = 0; j < len; ++j) { s[j] += r[j]; row += r[j]; }
        pp[(n * chunks + k) * C + c] = row;
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

namespace {
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
}  // namespace

// HA-CNN soft attention applied: y = x * sigmoid(max(s[n, p] * u[n, c] + v[c], 0)).
// The ReLU makes the sigmoid's argument t >= 0, so e^-t lies in (0, 1]; past t = 87.3 the gate is 1.
torch::Tensor rank1_sigmoid_scale(const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& u, const torch::Tensor& v) {
  const int64_t N = x.size(0), C = x.size(1), P = x.numel() / (N * C);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  const float* up = u.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float uc = up[i], vc = vp[i % C];
      const float* r = xp + i * P;
      const float* sn = sp + (i / C) * P;
      float* o = yp + i * P;
#pragma omp simd
      for (int64_t p = 0; p < P; ++p) {
        float t = sn[p] * uc + vc;
        t = t > 0.f ? (t < 87.3f ? t : 87.3f) : 0.f;
        o[p] = r[p] / (1.f + exp_neg(t));
      }
    }
  });
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pool_spatial", &pool_spatial);
  m.def("pool_channels", &pool_channels);
  m.def("scale", &scale);
  m.def("means", &means);
  m.def("rank1_sigmoid_scale", &rank1_sigmoid_scale);
}

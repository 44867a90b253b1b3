// An LSTM layer for training on CPU, written out (an experiment of benchmarks/bench_kernels.py,
// not used by marketcast): the forward over a whole sequence keeping what the backward needs,
// and the backward through time. Gate order i, f, g, o as in torch.nn.LSTM.
//
// The input projections of all time steps are one large product, as are the weight gradients;
// per time step there is one (B x H) x (H x 4H) product forward and one (B x 4H) x (4H x H)
// backward, plus the gate arithmetic fused into one loop per step (vectorised by the compiler:
// built with -O3 -fno-trapping-math, which lets GCC turn the clamps into selects; clones for
// AVX-512, AVX2 and baseline x86-64 are chosen at load time).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <tuple>

namespace {

// exp(x) to ~2 ulp for |x| < 87, written without calls or branches so that loops over it
// vectorise: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n by the exponent.
__attribute__((always_inline)) inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 87.0f ? 87.0f : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float t = x * 1.44269504088896341f + shifter;
  float n = t - shifter;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t bits;
  std::memcpy(&bits, &t, sizeof bits);
  int32_t scale_bits = (bits - 0x4B400000 + 127) << 23;
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}

__attribute__((always_inline)) inline float sigmoid(float x) {
  return 1.0f / (1.0f + exp_approx(-x));
}
__attribute__((always_inline)) inline float tanh_approx(float x) {
  return 2.0f / (1.0f + exp_approx(-2.0f * x)) - 1.0f;
}

// One time step: gates (B, 4H) pre-activations in, activations out; c, h (B, H) out.
// c_prev is the previous cell state (zeros at the first step).
__attribute__((target_clones("avx512f", "avx2", "default")))
void cell_forward(float* __restrict gates, const float* __restrict c_prev, float* __restrict c,
                  float* __restrict h, int64_t B, int64_t H) {
  for (int64_t b = 0; b < B; ++b) {
    float* __restrict g = gates + b * 4 * H;
    const float* __restrict cp = c_prev + b * H;
    float* __restrict cb = c + b * H;
    float* __restrict hb = h + b * H;
    for (int64_t j = 0; j < H; ++j) {
      float i = sigmoid(g[j]);
      float f = sigmoid(g[H + j]);
      float z = tanh_approx(g[2 * H + j]);
      float o = sigmoid(g[3 * H + j]);
      float cell = i * z + f * cp[j];
      g[j] = i;
      g[H + j] = f;
      g[2 * H + j] = z;
      g[3 * H + j] = o;
      cb[j] = cell;
      hb[j] = o * tanh_approx(cell);
    }
  }
}

// Backward of one step. dh + dout (B, H) is the gradient reaching h_t: from step t + 1 and
// from the layer's output at t (in); dc (B, H) the one reaching c_t (in) and c_{t-1} (out);
// dgates (B, 4H) the pre-activation gradients (out).
__attribute__((target_clones("avx512f", "avx2", "default")))
void cell_backward(const float* __restrict gates, const float* __restrict c,
                   const float* __restrict c_prev, const float* __restrict dh,
                   const float* __restrict dout, float* __restrict dc,
                   float* __restrict dgates, int64_t B, int64_t H) {
  for (int64_t b = 0; b < B; ++b) {
    const float* __restrict g = gates + b * 4 * H;
    const float* __restrict cb = c + b * H;
    const float* __restrict cp = c_prev + b * H;
    const float* __restrict dhp = dh + b * H;
    const float* __restrict dob = dout + b * H;
    float* __restrict dcb = dc + b * H;
    float* __restrict dg = dgates + b * 4 * H;
    for (int64_t j = 0; j < H; ++j) {
      float i = g[j], f = g[H + j], z = g[2 * H + j], o = g[3 * H + j];
      float dhb = dhp[j] + dob[j];
      float tc = tanh_approx(cb[j]);
      float dcell = dcb[j] + dhb * o * (1.0f - tc * tc);
      dg[j] = dcell * z * i * (1.0f - i);
      dg[H + j] = dcell * cp[j] * f * (1.0f - f);
      dg[2 * H + j] = dcell * i * (1.0f - z * z);
      dg[3 * H + j] = dhb * tc * o * (1.0f - o);
      dcb[j] = dcell * f;
    }
  }
}

void check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
              name, " must be a contiguous float32 CPU tensor");
}

// x (T, B, I); w_ih (4H, I); w_hh (4H, H); bias (4H) = b_ih + b_hh.
// Returns hs (T, B, H), cs (T, B, H), gates (T, B, 4H) activated.
std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_forward(
    const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& bias) {
  check(x, "x"); check(w_ih, "w_ih"); check(w_hh, "w_hh"); check(bias, "bias");
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  auto gates = at::addmm(bias, x.view({T * B, I}), w_ih.t()).view({T, B, 4 * H});
  auto hs = at::empty({T, B, H}, x.options());
  auto cs = at::empty({T, B, H}, x.options());
  auto w_hh_t = w_hh.t();
  auto zeros = at::zeros({B, H}, x.options());
  float* g = gates.data_ptr<float>();
  float* c = cs.data_ptr<float>();
  float* h = hs.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    if (t > 0) {
      auto g_t = gates.select(0, t);
      g_t.addmm_(hs.select(0, t - 1), w_hh_t);
    }
    const float* c_prev = t > 0 ? c + (t - 1) * B * H : zeros.data_ptr<float>();
    at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
      cell_forward(g + (t * B + begin) * 4 * H, c_prev + begin * H, c + (t * B + begin) * H,
                   h + (t * B + begin) * H, end - begin, H);
    });
  }
  return {hs, cs, gates};
}

// Gradients (dx, dw_ih, dw_hh, dbias) from dhs (T, B, H), the gradient of the loss w.r.t. hs.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_backward(
    const at::Tensor& dhs, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
    const at::Tensor& hs, const at::Tensor& cs, const at::Tensor& gates, bool need_dx) {
  check(dhs, "dhs"); check(hs, "hs"); check(cs, "cs"); check(gates, "gates");
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = w_hh.size(1);
  auto dgates = at::empty({T, B, 4 * H}, x.options());
  auto dh = at::zeros({B, H}, x.options());
  auto dc = at::zeros({B, H}, x.options());
  auto zeros = at::zeros({B, H}, x.options());
  const float* g = gates.data_ptr<float>();
  const float* c = cs.data_ptr<float>();
  float* dg = dgates.data_ptr<float>();
  const float* dout = dhs.data_ptr<float>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const float* c_prev = t > 0 ? c + (t - 1) * B * H : zeros.data_ptr<float>();
    at::parallel_for(0, B, 16, [&](int64_t begin, int64_t end) {
      cell_backward(g + (t * B + begin) * 4 * H, c + (t * B + begin) * H, c_prev + begin * H,
                    dh.data_ptr<float>() + begin * H, dout + (t * B + begin) * H,
                    dc.data_ptr<float>() + begin * H,
                    dg + (t * B + begin) * 4 * H, end - begin, H);
    });
    if (t > 0) at::mm_out(dh, dgates.select(0, t), w_hh);
  }
  auto flat = dgates.view({T * B, 4 * H});
  auto dw_ih = at::mm(flat.t(), x.view({T * B, I}));
  auto dw_hh = T > 1 ? at::mm(dgates.narrow(0, 1, T - 1).reshape({(T - 1) * B, 4 * H}).t(),
                              hs.narrow(0, 0, T - 1).reshape({(T - 1) * B, H}))
                     : at::zeros_like(w_hh);
  auto dbias = flat.sum(0);
  auto dx = need_dx ? at::mm(flat, w_ih).view({T, B, I}) : at::Tensor();
  return {dx, dw_ih, dw_hh, dbias};
}

}  // namespace

TORCH_LIBRARY(marketcast_lstm, m) {
  m.def("forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor bias) -> (Tensor, Tensor, Tensor)");
  m.def("backward(Tensor dhs, Tensor x, Tensor w_ih, Tensor w_hh, Tensor hs, Tensor cs, "
        "Tensor gates, bool need_dx) -> (Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(marketcast_lstm, CPU, m) {
  m.impl("forward", &lstm_forward);
  m.impl("backward", &lstm_backward);
}

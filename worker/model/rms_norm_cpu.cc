// Implementation of worker/model/rms_norm_cpu.h.
#include "worker/model/rms_norm_cpu.h"

#include <cmath>
#include <mutex>
#include <utility>
#include <vector>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

namespace srlm {
namespace {

// Normalises each row of x (rows, C) into out; stores each row's 1 / rms in inv_rms_out when given.
template <typename T>
void NormalizeRows(const T* x, const T* weight, T* out, int64_t rows, int64_t C, float eps, float* inv_rms_out) {
  at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 32768 / C), [&](int64_t begin, int64_t end) {
    constexpr int kLanes = 16;  // independent partial sums, so the compiler can vectorise the reduction
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * C;
      float partial[kLanes] = {0};
      int64_t i = 0;
      for (; i + kLanes <= C; i += kLanes) {
        for (int j = 0; j < kLanes; ++j) {
          const float v = static_cast<float>(row[i + j]);
          partial[j] += v * v;
        }
      }
      float sum = 0;
      for (int j = 0; j < kLanes; ++j) sum += partial[j];
      for (; i < C; ++i) sum += static_cast<float>(row[i]) * static_cast<float>(row[i]);
      const float inv_rms = 1.0f / std::sqrt(sum / static_cast<float>(C) + eps);
      if (inv_rms_out) inv_rms_out[r] = inv_rms;
      T* o = out + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const T normed = static_cast<T>(static_cast<float>(row[c]) * inv_rms);  // rounded to x's dtype
        o[c] = static_cast<T>(static_cast<float>(weight[c]) * static_cast<float>(normed));
      }
    }
  });
}

// Gradients of y = w * n, n = x * inv_rms (per row), in float32 whatever the element type:
//   dx = inv_rms * (g*w - n * mean_c(g*w*n)),   dw = sum over rows of g*n.
// Each chunk of rows sums its own dw; the chunks' sums are added under a lock.
template <typename T>
void NormalizeRowsBackward(const T* x, const T* weight, const T* grad, const float* inv_rms, T* dx, float* dw,
                           int64_t rows, int64_t C) {
  std::mutex dw_lock;
  at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 32768 / C), [&](int64_t begin, int64_t end) {
    std::vector<float> dw_part(C, 0.0f), gw(C);
    for (int64_t r = begin; r < end; ++r) {
      const T* row = x + r * C;
      const T* g = grad + r * C;
      const float ir = inv_rms[r];
      float dot = 0;
      for (int64_t c = 0; c < C; ++c) {
        const float n = static_cast<float>(row[c]) * ir;
        const float gc = static_cast<float>(g[c]);
        gw[c] = gc * static_cast<float>(weight[c]);
        dot += gw[c] * n;
        dw_part[c] += gc * n;
      }
      const float mean_dot = dot / static_cast<float>(C);
      T* out = dx + r * C;
      for (int64_t c = 0; c < C; ++c) out[c] = static_cast<T>(ir * (gw[c] - static_cast<float>(row[c]) * ir * mean_dot));
    }
    std::lock_guard<std::mutex> hold(dw_lock);
    for (int64_t c = 0; c < C; ++c) dw[c] += dw_part[c];
  });
}

// Rows of x viewed as (rows, C), C its last size.
int64_t RowCount(const torch::Tensor& x) {
  const int64_t C = x.size(-1);
  return C == 0 ? 0 : x.numel() / C;
}

// (out, inv_rms) for x viewed as (rows, C). RmsNormCpuSupports limits the types to float and
// bfloat16; the dispatch also instantiates double, which is never reached.
std::pair<torch::Tensor, torch::Tensor> Normalize(const torch::Tensor& x, const torch::Tensor& weight, double eps,
                                                  bool keep_inv_rms) {
  const int64_t rows = RowCount(x);
  torch::Tensor out = torch::empty_like(x);
  torch::Tensor inv_rms = keep_inv_rms ? torch::empty({rows}, x.options().dtype(torch::kFloat32)) : torch::Tensor();
  float* inv = keep_inv_rms ? inv_rms.data_ptr<float>() : nullptr;
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "RmsNormCpu", [&] {
    NormalizeRows(x.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), rows, x.size(-1),
                  static_cast<float>(eps), inv);
  });
  return {out, inv_rms};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    auto [out, inv_rms] = Normalize(x, weight, eps, /*keep_inv_rms=*/true);
    ctx->save_for_backward({x, weight, inv_rms});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& inv_rms = saved[2];
    const torch::Tensor grad = grads[0].contiguous().to(x.scalar_type());
    const int64_t C = x.size(-1);
    torch::Tensor dx = torch::empty_like(x);
    torch::Tensor dw = torch::zeros({C}, x.options().dtype(torch::kFloat32));
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "RmsNormCpuBackward", [&] {
      NormalizeRowsBackward(x.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(),
                            inv_rms.data_ptr<float>(), dx.data_ptr<scalar_t>(), dw.data_ptr<float>(), RowCount(x), C);
    });
    return {dx, dw.to(weight.scalar_type()), torch::Tensor()};
  }
};

}  // namespace

bool RmsNormCpuSupports(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto dtype = x.scalar_type();
  return x.device().is_cpu() && weight.device().is_cpu() && x.dim() >= 1 && x.is_contiguous() &&
         weight.is_contiguous() && weight.dim() == 1 && weight.size(0) == x.size(-1) && weight.scalar_type() == dtype &&
         (dtype == torch::kFloat32 || dtype == torch::kBFloat16);
}

torch::Tensor RmsNormInference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return Normalize(x, weight, eps, /*keep_inv_rms=*/false).first;
}

torch::Tensor RmsNormTraining(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace srlm

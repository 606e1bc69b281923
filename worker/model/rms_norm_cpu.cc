#include "worker/model/rms_norm_cpu.h"

#include <cmath>

#include <ATen/Parallel.h>

namespace srlm {
namespace {

template <typename T>
void NormalizeRows(const T* x, const T* weight, T* out, int64_t rows, int64_t C, float eps) {
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
      T* o = out + r * C;
      for (int64_t c = 0; c < C; ++c) {
        const T normed = static_cast<T>(static_cast<float>(row[c]) * inv_rms);  // rounded to x's dtype
        o[c] = static_cast<T>(static_cast<float>(weight[c]) * static_cast<float>(normed));
      }
    }
  });
}

}  // namespace

bool RmsNormInferenceSupports(const torch::Tensor& x, const torch::Tensor& weight) {
  const auto dtype = x.scalar_type();
  return x.device().is_cpu() && weight.device().is_cpu() && x.dim() >= 1 && x.is_contiguous() &&
         weight.is_contiguous() && weight.dim() == 1 && weight.size(0) == x.size(-1) && weight.scalar_type() == dtype &&
         (dtype == torch::kFloat32 || dtype == torch::kBFloat16);
}

torch::Tensor RmsNormInference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  const int64_t C = x.size(-1);
  const int64_t rows = C == 0 ? 0 : x.numel() / C;
  torch::Tensor out = torch::empty_like(x);
  if (x.scalar_type() == torch::kFloat32) {
    NormalizeRows(x.data_ptr<float>(), weight.data_ptr<float>(), out.data_ptr<float>(), rows, C,
                  static_cast<float>(eps));
  } else {
    NormalizeRows(x.data_ptr<at::BFloat16>(), weight.data_ptr<at::BFloat16>(), out.data_ptr<at::BFloat16>(), rows, C,
                  static_cast<float>(eps));
  }
  return out;
}

}  // namespace srlm

#include "worker/model/fused_projection.h"

#include <utility>

namespace srlm {
namespace {

// Whether `part` is rows [row, row + part.size(0)) of `buffer` (same storage, same layout).
bool IsRowsOf(const torch::Tensor& part, const torch::Tensor& buffer, int64_t row) {
  if (!part.defined() || part.scalar_type() != buffer.scalar_type() || part.device() != buffer.device() ||
      !part.is_contiguous()) {
    return false;
  }
  const auto* first = static_cast<const char*>(buffer.data_ptr()) + row * buffer.stride(0) * buffer.element_size();
  return part.data_ptr() == static_cast<const void*>(first);
}

// Concatenates `tensors` along dim 0 into a new buffer and points each tensor at its rows.
torch::Tensor ShareRows(const std::vector<torch::Tensor>& tensors) {
  torch::Tensor buffer = torch::cat(tensors, 0);
  int64_t row = 0;
  for (torch::Tensor t : tensors) {
    const int64_t rows = t.size(0);
    t.set_(buffer.narrow(0, row, rows));
    row += rows;
  }
  return buffer;
}

}  // namespace

FusedProjection::FusedProjection(std::vector<torch::nn::Linear> parts) : parts_(std::move(parts)) {
  int64_t biased = 0;
  for (const auto& p : parts_) biased += p->bias.defined() ? 1 : 0;
  with_bias_ = biased == static_cast<int64_t>(parts_.size());
  mixed_bias_ = biased > 0 && !with_bias_;
}

bool FusedProjection::Shared() const {
  if (!weight_.defined()) return false;
  int64_t row = 0;
  for (const auto& p : parts_) {
    if (!IsRowsOf(p->weight, weight_, row)) return false;
    if (with_bias_ && !IsRowsOf(p->bias, bias_, row)) return false;
    row += p->weight.size(0);
  }
  return true;
}

void FusedProjection::Fuse() {
  // The buffers must be ordinary tensors (parameters point into them), even when the caller is in
  // inference mode; set_ on a parameter needs grad mode off.
  c10::InferenceMode normal_mode(false);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> weights, biases;
  for (const auto& p : parts_) {
    weights.push_back(p->weight);
    if (with_bias_) biases.push_back(p->bias);
  }
  weight_ = ShareRows(weights);
  bias_ = with_bias_ ? ShareRows(biases) : torch::Tensor();
}

torch::Tensor FusedProjection::Forward(const torch::Tensor& x) {
  if (torch::GradMode::is_enabled() || mixed_bias_) {
    matmul_ = PackedLinear();  // training changes the weights: hold no packed copy meanwhile
    std::vector<torch::Tensor> outputs;
    for (auto& p : parts_) outputs.push_back(p->forward(x));
    return torch::cat(outputs, -1);
  }
  if (!Shared()) Fuse();
  // The optimizer updates the layers' parameters, whose version counters are their own (set_ does
  // not make them views of the buffer): their sum tells the packed copy when to renew.
  int64_t version = 0;
  for (const auto& p : parts_) version += p->weight._version();
  return matmul_.Forward(x, weight_, with_bias_ ? std::optional<torch::Tensor>(bias_) : std::nullopt, version);
}

}  // namespace srlm

// Implementation of worker/model/packed_linear.h.
#include "worker/model/packed_linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <atomic>

namespace srlm {
namespace {

// oneDNN's linear ops, as libtorch registers them for Inductor's CPU path; null when absent.
struct OneDnnOps {
  std::optional<c10::OperatorHandle> reorder;  // mkldnn::_reorder_linear_weight(Tensor, int? batch_size)
  std::optional<c10::OperatorHandle> linear;   // mkldnn::_linear_pointwise(X, W, B?, attr, scalars, algorithm?)
};

const OneDnnOps& Ops() {
  static const OneDnnOps ops = [] {
    OneDnnOps o;
    if (!at::hasMKLDNN()) return o;
    o.reorder = c10::Dispatcher::singleton().findSchema({"mkldnn::_reorder_linear_weight", ""});
    o.linear = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
    return o;
  }();
  return ops;
}

// Dtypes whose reorder oneDNN refused on this CPU (bf16 needs AVX-512 or AVX-NE-CONVERT): they
// take at::linear from then on, in every PackedLinear of the process.
std::atomic<bool> refused_float32{false}, refused_bfloat16{false};

std::atomic<bool>& Refused(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16 ? refused_bfloat16 : refused_float32;
}

// The batch size oneDNN is told to expect when it picks the packed layout. Measured on the decode
// benchmark: a hint of 16 served batch 1 and batch 16 as well as a hint of either (docs/PERFORMANCE.md).
constexpr int64_t kBatchHint = 16;

}  // namespace

torch::Tensor PackedLinear::Forward(const torch::Tensor& x, const torch::nn::Linear& layer) {
  return Forward(x, layer->weight, layer->bias.defined() ? std::optional<torch::Tensor>(layer->bias) : std::nullopt);
}

bool PackedLinear::Current(const torch::Tensor& weight, int64_t weight_version) const {
  return packed_.defined() && weight.storage().is_alias_of(source_storage_) &&
         weight.storage_offset() == source_offset_ && weight.sizes() == packed_.sizes() &&
         weight_version == source_version_;
}

torch::Tensor PackedLinear::Unpacked(const torch::Tensor& x, const torch::Tensor& weight,
                                     const std::optional<torch::Tensor>& bias) {
  packed_ = torch::Tensor();  // hold no stale copy
  source_storage_ = c10::Storage();
  return at::linear(x, weight, bias);
}

torch::Tensor PackedLinear::Forward(const torch::Tensor& x, const torch::Tensor& weight,
                                    const std::optional<torch::Tensor>& bias, std::optional<int64_t> weight_version) {
  const OneDnnOps& ops = Ops();
  const auto dtype = weight.scalar_type();
  const bool packable = !torch::GradMode::is_enabled() && ops.reorder && ops.linear && weight.device().is_cpu() &&
                        (dtype == torch::kFloat32 || dtype == torch::kBFloat16) && x.scalar_type() == dtype &&
                        weight.is_contiguous() && (!bias || bias->scalar_type() == dtype) && !Refused(dtype).load();
  if (!packable) return Unpacked(x, weight, bias);
  const int64_t version = weight_version.value_or(weight._version());
  if (!Current(weight, version)) {
    // The copy must be an ordinary tensor even when the caller is in inference mode, so that later
    // no-grad callers outside it can use it too; it records no autograd history.
    c10::InferenceMode normal_mode(false);
    torch::NoGradGuard no_grad;
    torch::jit::Stack stack{weight, c10::IValue(kBatchHint)};
    try {
      ops.reorder->callBoxed(&stack);
    } catch (const c10::Error&) {
      Refused(dtype).store(true);
      return Unpacked(x, weight, bias);
    }
    packed_ = stack[0].toTensor();
    source_storage_ = weight.storage();
    source_offset_ = weight.storage_offset();
    source_version_ = version;
  }
  // oneDNN reads the bias as contiguous.
  torch::jit::Stack stack{x.contiguous(), packed_, bias ? c10::IValue(bias->contiguous()) : c10::IValue(), std::string("none"),
                          c10::List<std::optional<at::Scalar>>(), c10::IValue()};
  ops.linear->callBoxed(&stack);
  return stack[0].toTensor();
}

}  // namespace srlm

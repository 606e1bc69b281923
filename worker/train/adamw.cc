// Implementation of worker/train/adamw.h.
#include "worker/train/adamw.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace srlm {

AdamW::AdamW(NamedParameters params, AdamWOptions options) : options_(options) {
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : params) {
    State s;
    s.name = name;
    s.param = p;
    auto f32 = p.options().dtype(torch::kFloat32);
    s.exp_avg = torch::zeros(p.sizes(), f32);
    s.exp_avg_sq = torch::zeros(p.sizes(), f32);
    if (p.scalar_type() != torch::kFloat32) s.master = p.detach().to(torch::kFloat32).clone();
    s.decay = p.dim() >= 2;
    states_.push_back(std::move(s));
  }
}

void AdamW::Step(double lr) {
  torch::NoGradGuard no_grad;
  ++step_count_;
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_count_));
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_count_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (State& s : states_) {
    const torch::Tensor& grad_in = s.param.grad();
    if (!grad_in.defined()) continue;
    torch::Tensor grad = grad_in.scalar_type() == torch::kFloat32 ? grad_in : grad_in.to(torch::kFloat32);
    torch::Tensor weights = s.master.defined() ? s.master : s.param;
    // Same order of operations as torch.optim.AdamW (single-tensor path).
    if (s.decay && options_.weight_decay != 0) weights.mul_(1.0 - lr * options_.weight_decay);
    s.exp_avg.lerp_(grad, 1.0 - options_.beta1);
    s.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    torch::Tensor denom = (s.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(options_.eps);
    weights.addcdiv_(s.exp_avg, denom, -step_size);
    if (s.master.defined()) s.param.copy_(s.master);
  }
}

absl::Status AdamW::Save(const std::string& path) const {
  try {
    torch::serialize::OutputArchive archive;
    archive.write("step_count", torch::tensor(step_count_, torch::kInt64));
    for (const State& s : states_) {
      archive.write("exp_avg." + s.name, s.exp_avg.cpu());
      archive.write("exp_avg_sq." + s.name, s.exp_avg_sq.cpu());
      if (s.master.defined()) archive.write("master." + s.name, s.master.cpu());
    }
    archive.save_to(path);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("saving optimizer state to ", path, ": ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

absl::Status AdamW::Load(const std::string& path) {
  torch::NoGradGuard no_grad;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::Tensor step;
    archive.read("step_count", step);
    step_count_ = step.item<int64_t>();
    for (State& s : states_) {
      for (auto [key, target] : {std::pair{"exp_avg.", &s.exp_avg}, std::pair{"exp_avg_sq.", &s.exp_avg_sq}}) {
        torch::Tensor t;
        archive.read(key + s.name, t);
        if (!t.sizes().equals(target->sizes())) {
          return absl::InvalidArgumentError(absl::StrCat(path, ": ", key, s.name, " has shape ",
                                                         c10::str(t.sizes()), ", the model ",
                                                         c10::str(target->sizes())));
        }
        target->copy_(t);
      }
      if (s.master.defined()) {
        torch::Tensor t;
        archive.read("master." + s.name, t);
        s.master.copy_(t);
        s.param.copy_(s.master);
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading optimizer state from ", path, ": ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

double ClipGradNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().to(torch::kFloat32).norm(2));
  }
  if (norms.empty()) return 0.0;
  torch::Tensor total = torch::stack(norms).norm(2);
  const double total_norm = total.item<double>();
  if (max_norm > 0) {
    torch::Tensor coef = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
    for (const torch::Tensor& p : params) {
      if (p.grad().defined()) p.grad().mul_(coef.to(p.grad().scalar_type()));
    }
  }
  return total_norm;
}

}  // namespace srlm

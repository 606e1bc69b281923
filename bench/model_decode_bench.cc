// Decode and prefill throughput of srlm's KV-cache generator for the benchmark model (d_model 256,
// 4 layers, 4 heads, vocab 4096). Prints one JSON object; bench/model_decode_bench.py runs it side
// by side with a plain PyTorch loop and prints the ratios; bench/gpu/hf_generate_bench.py runs it on
// CUDA against transformers' generate. Usage: model_decode_bench [--threads T] [--hidden H --layers L
// --heads N --vocab V --intermediate I | --model HF_DIR] [--dtype fp32|bf16] [--device cpu|cuda]
// [--batches 1,16] [--new N] [--prompt-len P] [--prefill T] [--tokens]. Prompt b, token t is
// 3 + (31 b + 7 t) mod min(4000, vocab - 3); --tokens adds each batch's greedy tokens to the output.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "worker/model/checkpoint_io.h"
#include "worker/model/generator.h"
#include "worker/model/host_memory.h"
#include "worker/model/model_options.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  srlm::LlamaConfig c;
  c.vocab_size = 4096;
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  std::string dtype_name = "fp32", device_name = "cpu", model_dir;
  bool print_tokens = false;
  std::vector<int64_t> batches = {1, 16};
  int64_t new_tokens = 128, prompt_len = 16, prefill_len = 512;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() { return std::string(argv[++i]); };
    if (a == "--threads") threads = std::stoi(next());
    else if (a == "--hidden") c.hidden_size = std::stoll(next());
    else if (a == "--layers") c.num_hidden_layers = std::stoll(next());
    else if (a == "--heads") c.num_attention_heads = c.num_key_value_heads = std::stoll(next());
    else if (a == "--vocab") c.vocab_size = std::stoll(next());
    else if (a == "--intermediate") c.intermediate_size = std::stoll(next());
    else if (a == "--dtype") dtype_name = next();
    else if (a == "--new") new_tokens = std::stoll(next());
    else if (a == "--prefill") prefill_len = std::stoll(next());
    else if (a == "--prompt-len") prompt_len = std::stoll(next());
    else if (a == "--device") device_name = next();
    else if (a == "--model") model_dir = next();
    else if (a == "--tokens") print_tokens = true;
    else if (a == "--batches") {
      batches.clear();
      std::string s = next();
      for (size_t p = 0; p < s.size();) {
        size_t q = s.find(',', p);
        batches.push_back(std::stoll(s.substr(p, q - p)));
        p = q == std::string::npos ? s.size() : q + 1;
      }
    }
    else {
      std::cerr << "unknown flag " << a << "\n";
      return 2;
    }
  }
  at::set_num_threads(threads);
  // As in srlm-worker, whose generator this measures.
  if (absl::Status s = srlm::KeepFreedHostMemoryForReuse(); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  auto parsed_device = srlm::ParseDevice(device_name);
  auto parsed_dtype = parsed_device.ok() ? srlm::ParseDtype(dtype_name, *parsed_device) : parsed_device.status();
  if (!parsed_dtype.ok()) {
    std::cerr << parsed_dtype.status() << "\n";
    return 2;
  }
  const torch::Device device = *parsed_device;
  const torch::ScalarType dtype = *parsed_dtype;
  // Host timers around device work: wait for the queued kernels first.
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  srlm::LlamaModel model(nullptr);
  if (!model_dir.empty()) {
    auto loaded = srlm::LoadModel(model_dir, device, dtype);
    if (!loaded.ok()) {
      std::cerr << loaded.status() << "\n";
      return 1;
    }
    model = *loaded;
    c = model->config;
  } else {
    model = srlm::LlamaModel(c);
    srlm::InitializeWeights(model, 1);
    model->to(device, dtype);
  }
  model->eval();
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  nlohmann::json out;
  out["threads"] = threads;
  out["params"] = params;
  out["dtype"] = dtype_name;
  out["device"] = device_name;
  out["new_tokens"] = new_tokens;
  out["prompt_len"] = prompt_len;
  srlm::SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = new_tokens;
  const int64_t prompt_vocab = std::min<int64_t>(4000, c.vocab_size - 3);
  for (int64_t B : batches) {
    std::vector<std::vector<int32_t>> prompts(B);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < prompt_len; ++t) prompts[b].push_back(static_cast<int32_t>(3 + (b * 31 + t * 7) % prompt_vocab));
    }
    std::vector<uint64_t> seeds(B, 1);
    (void)srlm::GenerateTokens(model, prompts, greedy, seeds, {});  // warm-up
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      sync();
      auto t0 = std::chrono::steady_clock::now();
      auto r = srlm::GenerateTokens(model, prompts, greedy, seeds, {});
      best = std::min(best, Seconds(t0));  // the tokens are on the host: the device work is done
      if (!r.ok()) {
        std::cerr << r.status() << "\n";
        return 1;
      }
      if (print_tokens && rep == 0) {
        for (const auto& seq : *r) out["tokens"][std::to_string(B)].push_back(seq.tokens);
      }
    }
    out["decode_tok_s"][std::to_string(B)] = static_cast<double>(B * new_tokens) / best;
  }
  {
    c10::InferenceMode inference;
    const auto on = torch::TensorOptions().dtype(torch::kInt64).device(device);
    auto ids = torch::randint(3, c.vocab_size, {1, prefill_len}, on);
    auto pos = torch::arange(prefill_len, on).unsqueeze(0);
    double best = 1e30;
    for (int rep = 0; rep < 4; ++rep) {
      srlm::KVCache cache = model->make_cache(1, prefill_len);
      sync();
      auto t0 = std::chrono::steady_clock::now();
      model->forward_cached(ids, pos, {}, &cache, true);
      sync();
      if (rep > 0) best = std::min(best, Seconds(t0));
    }
    out["prefill_tok_s"] = static_cast<double>(prefill_len) / best;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

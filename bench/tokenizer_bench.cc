// Tokenizer throughput: srlm's Encode/Decode against Hugging Face `tokenizers` and Python `sentencepiece`
// on the same text in the same run (the Python side is timed in a child process; both single-threaded,
// RAYON_NUM_THREADS=1). The per-line Python rows include the binding's per-call cost; "encode-batch"
// compares srlm's warm per-line loop with HF's encode_batch over all lines (one call into Rust).
// Usage: tokenizer_bench [--repeat N]. Builds its tokenizers with testdata/make_tokenizer_testdata.py.
#include <stdlib.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string RunCommand(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  std::array<char, 65536> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), n);
  pclose(pipe);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 4;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--repeat") repeat = std::atoi(argv[i + 1]);
  }
  const std::string python = SRLM_VENV_PYTHON_PATH;
  const std::string source = SRLM_SOURCE_DIR_PATH;
  std::string dir = (std::filesystem::temp_directory_path() / "srlm_tokenizer_bench_XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) return 1;
  if (std::system((python + " " + source + "/common/tokenizer/testdata/make_tokenizer_testdata.py " + dir).c_str()) != 0) {
    std::cerr << "test data generation failed\n";
    return 1;
  }
  std::vector<std::string> lines;
  {
    std::ifstream in(dir + "/corpus.jsonl");
    std::string line;
    std::vector<std::string> corpus;
    while (std::getline(in, line)) corpus.push_back(nlohmann::json::parse(line).get<std::string>());
    for (int r = 0; r < repeat; ++r) lines.insert(lines.end(), corpus.begin(), corpus.end());
  }
  // One long word: CJK letters with no space, which the Llama 3 / Qwen2 regexes keep as one pre-token.
  std::string long_word;
  for (int i = 0; i < 20000; ++i) long_word += (i % 3 == 0) ? "中" : (i % 3 == 1) ? "文" : "字";
  std::ofstream(dir + "/lines.json") << nlohmann::json(lines).dump();
  std::ofstream(dir + "/long.json") << nlohmann::json(long_word).dump();
  size_t bytes = 0;
  for (const std::string& l : lines) bytes += l.size();

  const std::string py = R"PY(
import json, sys, time
d = sys.argv[1]
lines = json.load(open(d + '/lines.json')); long_word = json.load(open(d + '/long.json'))
out = {}
for name in ['gpt2', 'llama3', 'qwen2', 'sp_bpe']:
    if name.startswith('sp'):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=f'{d}/{name}/tokenizer.model')
        enc = lambda s: sp.encode(s); dec = lambda ids: sp.decode(ids)
    else:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(f'{d}/{name}/tokenizer.json')
        enc = lambda s: tok.encode(s, add_special_tokens=False).ids
        dec = lambda ids: tok.decode(ids, skip_special_tokens=True)
        t = time.perf_counter(); tok.encode_batch(lines, add_special_tokens=False); batch = time.perf_counter() - t
    t = time.perf_counter(); ids = [enc(s) for s in lines]; cold = time.perf_counter() - t
    t = time.perf_counter(); ids = [enc(s) for s in lines]; warm = time.perf_counter() - t
    t = time.perf_counter(); [dec(x) for x in ids]; decode = time.perf_counter() - t
    t = time.perf_counter(); enc(long_word); longw = time.perf_counter() - t
    out[name] = dict(cold=cold, warm=warm, decode=decode, long=longw, tokens=sum(map(len, ids)))
    if not name.startswith('sp'):
        out[name]['batch'] = batch
print(json.dumps(out))
)PY";
  std::ofstream(dir + "/bench.py") << py;
  const std::string py_out = RunCommand("RAYON_NUM_THREADS=1 " + python + " " + dir + "/bench.py " + dir);
  const nlohmann::json ref = nlohmann::json::parse(py_out, nullptr, false);
  if (ref.is_discarded()) {
    std::cerr << "python baseline failed: " << py_out << "\n";
    return 1;
  }

  std::cout << absl::StrFormat("tokenizer throughput, %d lines, %.2f MB of text; MB/s (higher is better), "
                               "ratio = srlm / reference\n", lines.size(), bytes / 1e6);
  std::cout << absl::StrFormat("%-8s %-12s %10s %10s %7s\n", "model", "phase", "srlm", "reference", "ratio");
  for (const char* name : {"gpt2", "llama3", "qwen2", "sp_bpe"}) {
    auto tok = srlm::LoadTokenizer(dir + "/" + name);
    if (!tok.ok()) {
      std::cerr << tok.status() << "\n";
      return 1;
    }
    std::vector<std::vector<int32_t>> ids(lines.size());
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < lines.size(); ++i) ids[i] = *(*tok)->Encode(lines[i]);
    const double cold = Seconds(t0);
    t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < lines.size(); ++i) ids[i] = *(*tok)->Encode(lines[i]);
    const double warm = Seconds(t0);
    t0 = std::chrono::steady_clock::now();
    for (const auto& x : ids) (void)*(*tok)->Decode(x);
    const double decode = Seconds(t0);
    t0 = std::chrono::steady_clock::now();
    (void)*(*tok)->Encode(long_word);
    const double longw = Seconds(t0);
    const nlohmann::json& r = ref[name];
    auto row = [&](const char* phase, double ours, double theirs, double megabytes) {
      std::cout << absl::StrFormat("%-8s %-12s %10.2f %10.2f %7.2f\n", name, phase, megabytes / ours,
                                   megabytes / theirs, theirs / ours);
    };
    row("encode-cold", cold, r["cold"].get<double>(), bytes / 1e6);
    row("encode-warm", warm, r["warm"].get<double>(), bytes / 1e6);
    if (r.contains("batch")) row("encode-batch", warm, r["batch"].get<double>(), bytes / 1e6);
    row("decode", decode, r["decode"].get<double>(), bytes / 1e6);
    row("long-word", longw, r["long"].get<double>(), long_word.size() / 1e6);
  }
  std::filesystem::remove_all(dir);
  return 0;
}

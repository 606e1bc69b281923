// Implementation of coordinator/run_inputs.h.
#include "coordinator/run_inputs.h"

#include <sys/stat.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/judge.h"
#include "common/run_data.h"
#include "common/status_macros.h"

namespace srlm::coordinator {
namespace {

bool IsFile(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

}  // namespace

absl::Status CheckWorkerInputs(const RunConfig& config, bool sft_pending) {
  SRLM_RETURN_IF_ERROR_CTX(JudgeTemplate::FromFile(config.judge.template_file).status(), "judge.template_file");
  if (!sft_pending) return absl::OkStatus();
  if (!config.data.ift.empty()) SRLM_RETURN_IF_ERROR(ReadSftTexts(config.data.ift, "data.ift").status());
  if (config.data.eft.empty()) return absl::OkStatus();
  SRLM_ASSIGN_OR_RETURN(std::vector<std::vector<std::string>> judgements, ReadSftTexts(config.data.eft, "data.eft"));
  SRLM_ASSIGN_OR_RETURN(JudgeScoreParser parser, JudgeScoreParser::Create(config.judge.score_pattern,
                                                                          config.judge.min_score,
                                                                          config.judge.max_score));
  for (const std::vector<std::string>& row : judgements) {
    if (parser.Parse(row[1]).ok()) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "judge.score_pattern '", config.judge.score_pattern, "' reads no score in [", config.judge.min_score, ", ",
      config.judge.max_score, "] from any of the ", judgements.size(), " judgements (responses) of data.eft (",
      config.data.eft, "): SFT would teach the judge a format the parser cannot read, and every pair of the run "
      "would be dropped. Make the pattern, the score range and the judgements agree"));
}

std::optional<std::string> StartModelProblem(const std::string& model_path) {
  struct stat info;
  if (::stat(model_path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) return "it is not a folder here";
  if (!IsFile(model_path + "/config.json")) return "it holds no config.json";
  if (!IsFile(model_path + "/model.safetensors") && !IsFile(model_path + "/model.safetensors.index.json")) {
    return "it holds neither model.safetensors nor model.safetensors.index.json";
  }
  if (!IsFile(model_path + "/tokenizer.json") && !IsFile(model_path + "/tokenizer.model")) {
    return "it holds neither tokenizer.json nor tokenizer.model";
  }
  return std::nullopt;
}

}  // namespace srlm::coordinator

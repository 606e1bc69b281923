// Implementation of coordinator/ctl/status_format.h.
#include "coordinator/ctl/status_format.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace srlm::ctl {

std::string PhaseName(v1::Phase phase) {
  std::string name = v1::Phase_Name(phase);
  return name.rfind("PHASE_", 0) == 0 ? name.substr(6) : name;
}

std::string ProgressBar(double fraction, int width) {
  fraction = std::clamp(std::isfinite(fraction) ? fraction : 0.0, 0.0, 1.0);
  const int filled = static_cast<int>(std::lround(fraction * width));
  return absl::StrFormat("[%s%s] %5.1f%%", std::string(filled, '#'), std::string(width - filled, '.'),
                         100.0 * fraction);
}

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm%02ds", s / 3600, (s / 60) % 60, s % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string FormatStatus(const v1::GetStatusResponse& status, int64_t now_ms) {
  std::string out;
  const std::string since = FormatDuration((now_ms - status.phase_started_unix_ms()) / 1000.0);
  if (status.phase() == v1::PHASE_DONE) {  // the counter is one past the last iteration then
    absl::StrAppendFormat(&out, "run %s  phase DONE after %d of %d iterations  (for %s)\n", status.run_id(),
                          status.iteration() - 1, status.total_iterations(), since);
  } else {
    absl::StrAppendFormat(&out, "run %s  iteration %d of %d  phase %s  (for %s)\n", status.run_id(),
                          status.iteration(), status.total_iterations(), PhaseName(status.phase()), since);
  }
  absl::StrAppendFormat(&out, "model     %s\n", status.model_dir().empty() ? "(none)" : status.model_dir());
  absl::StrAppendFormat(&out, "phase     %s  eta %s\n", ProgressBar(status.phase_progress(), 40),
                        FormatDuration(status.phase_eta_seconds()));
  const v1::ShardCounts& shards = status.shards();
  absl::StrAppendFormat(&out, "shards    %s  done %d  leased %d  waiting %d  of %d%s\n",
                        ProgressBar(shards.total() ? double(shards.done()) / shards.total() : 0, 20),
                        shards.done(), shards.leased(), shards.waiting(), shards.total(),
                        shards.held() > 0 ? absl::StrCat("  (", shards.held(), " done, held for shard order)") : "");
  absl::StrAppendFormat(&out,
                        "prompts   %d of %d accepted; dropped: %d duplicate, %d near-duplicate, %d copy of the data, "
                        "%d length\n",
                        status.prompts_accepted(), status.prompts_wanted(), status.prompts_dropped_duplicate(),
                        status.prompts_dropped_near_duplicate(), status.prompts_dropped_seen(),
                        status.prompts_dropped_length());
  absl::StrAppendFormat(&out,
                        "results   %d  candidates %d  judgements %d  pairs %d  dropped: %d ties, %d unparsable, "
                        "%d too long, %d too few answers\n",
                        status.results_accepted(), status.candidates(), status.judgements(), status.pairs(),
                        status.dropped_ties(), status.dropped_unparsable(), status.dropped_too_long(),
                        status.dropped_too_few_answers());
  absl::StrAppendFormat(&out, "rates     %.1f tokens/s  %.1f results/s\n", status.tokens_per_second(),
                        status.results_per_second());
  if (status.train_total_steps() > 0 || status.train_step() > 0) {
    absl::StrAppendFormat(&out, "training  step %d of %d  loss %.4f\n", status.train_step(),
                          status.train_total_steps(), status.train_loss());
  }
  if (status.world_size() > 0) {
    absl::StrAppendFormat(&out, "commit    %d of %d ranks reported the checkpoint\n", status.ranks_reported(),
                          status.world_size());
  }
  if (status.committed_iterations_size() > 0) {
    out += "committed iterations (0 is SFT)\n";
    absl::StrAppendFormat(&out, "  %-5s %-8s %-8s %-6s %-5s %-10s %-8s %-10s %-9s %-11s %s\n", "iter",
                          "prompts", "results", "pairs", "ties", "unparsable", "too long", "few answ.", "loss",
                          "eval", "model");
    for (const v1::IterationSummary& it : status.committed_iterations()) {
      // The held-out evaluation (data.eval) of the model the iteration produced.
      const std::string eval = it.eval_total() > 0 ? absl::StrCat(it.eval_correct(), "/", it.eval_total()) : "-";
      absl::StrAppendFormat(&out, "  %-5d %-8d %-8d %-6d %-5d %-10d %-8d %-10d %-9.4f %-11s %s\n", it.iteration(),
                            it.prompts(), it.results(), it.pairs(), it.dropped_ties(), it.dropped_unparsable(),
                            it.dropped_too_long(), it.dropped_too_few_answers(), it.train_loss(), eval,
                            it.model_dir());
    }
  }
  int64_t most = 0;
  for (int64_t count : status.score_histogram()) most = std::max(most, count);
  if (most > 0) {
    const int buckets = status.score_histogram_size();
    const double width = (status.score_max() - status.score_min()) / buckets;
    out += "scores    (mean judge score per candidate)\n";
    for (int i = 0; i < buckets; ++i) {
      const int64_t count = status.score_histogram(i);
      absl::StrAppendFormat(&out, "  %4.1f-%-4.1f %-30s %d\n", status.score_min() + i * width,
                            status.score_min() + (i + 1) * width,
                            std::string(static_cast<size_t>(30.0 * count / most), '#'), count);
    }
  }
  absl::StrAppendFormat(&out, "workers   %d\n", status.workers_size());
  for (const v1::WorkerStatus& w : status.workers()) {
    const std::string heard = w.last_heartbeat_unix_ms() > 0
                                  ? absl::StrCat("heartbeat ", FormatDuration((now_ms - w.last_heartbeat_unix_ms()) / 1000.0), " ago")
                                  : "no heartbeat since the coordinator started";
    absl::StrAppendFormat(&out, "  rank %-3d %-14s %-18s %-8s %s  %.1f tok/s  %d shards  %d leases\n", w.rank(),
                          w.worker_id(), w.hostname(), w.device(), heard, w.tokens_per_second(), w.shards_submitted(),
                          w.leases_held());
    if (!w.activity().empty() && w.last_heartbeat_unix_ms() > 0) {
      absl::StrAppendFormat(&out, "           %s (last progress %s ago)\n", w.activity(),
                            FormatDuration(w.activity_seconds()));
    }
    if (w.silent()) {
      out += "           SILENT: no heartbeat for 3 periods; the rank may be dead or cut off (TRAIN and COMMIT "
             "wait for every rank: relaunch the workers)\n";
    }
  }
  return out;
}

nlohmann::json StatusToJson(const v1::GetStatusResponse& status) {
  nlohmann::json j;
  j["run_id"] = status.run_id();
  j["iteration"] = status.iteration();
  j["total_iterations"] = status.total_iterations();
  j["phase"] = PhaseName(status.phase());
  j["model_dir"] = status.model_dir();
  j["phase_progress"] = status.phase_progress();
  j["phase_eta_seconds"] = status.phase_eta_seconds();
  j["phase_started_unix_ms"] = status.phase_started_unix_ms();
  j["shards"] = {{"total", status.shards().total()}, {"done", status.shards().done()},
                 {"leased", status.shards().leased()}, {"waiting", status.shards().waiting()},
                 {"held", status.shards().held()}};
  j["prompts"] = {{"wanted", status.prompts_wanted()}, {"accepted", status.prompts_accepted()},
                  {"dropped_duplicate", status.prompts_dropped_duplicate()},
                  {"dropped_near_duplicate", status.prompts_dropped_near_duplicate()},
                  {"dropped_seen", status.prompts_dropped_seen()},
                  {"dropped_length", status.prompts_dropped_length()}};
  j["results"] = status.results_accepted();
  j["candidates"] = status.candidates();
  j["judgements"] = status.judgements();
  j["pairs"] = status.pairs();
  j["dropped_ties"] = status.dropped_ties();
  j["dropped_unparsable"] = status.dropped_unparsable();
  j["dropped_too_long"] = status.dropped_too_long();
  j["dropped_too_few_answers"] = status.dropped_too_few_answers();
  j["score_histogram"] = {{"min", status.score_min()}, {"max", status.score_max()},
                          {"counts", std::vector<int64_t>(status.score_histogram().begin(),
                                                          status.score_histogram().end())}};
  j["tokens_per_second"] = status.tokens_per_second();
  j["results_per_second"] = status.results_per_second();
  j["train"] = {{"step", status.train_step()}, {"total_steps", status.train_total_steps()},
                {"loss", status.train_loss()}};
  j["commit"] = {{"ranks_reported", status.ranks_reported()}, {"world_size", status.world_size()}};
  j["workers"] = nlohmann::json::array();
  for (const v1::WorkerStatus& w : status.workers()) {
    j["workers"].push_back({{"worker_id", w.worker_id()}, {"hostname", w.hostname()}, {"rank", w.rank()},
                            {"device", w.device()}, {"last_heartbeat_unix_ms", w.last_heartbeat_unix_ms()},
                            {"tokens_per_second", w.tokens_per_second()},
                            {"tokens_generated", w.tokens_generated()},
                            {"shards_submitted", w.shards_submitted()}, {"leases_held", w.leases_held()},
                            {"activity", w.activity()}, {"activity_seconds", w.activity_seconds()},
                            {"silent", w.silent()}});
  }
  j["committed_iterations"] = nlohmann::json::array();
  for (const v1::IterationSummary& it : status.committed_iterations()) {
    j["committed_iterations"].push_back({{"iteration", it.iteration()}, {"prompts", it.prompts()},
                                         {"results", it.results()}, {"pairs", it.pairs()},
                                         {"dropped_ties", it.dropped_ties()},
                                         {"dropped_unparsable", it.dropped_unparsable()},
                                         {"dropped_too_long", it.dropped_too_long()},
                                         {"dropped_too_few_answers", it.dropped_too_few_answers()},
                                         {"eval_correct", it.eval_correct()}, {"eval_total", it.eval_total()},
                                         {"train_loss", it.train_loss()}, {"model_dir", it.model_dir()},
                                         {"committed_unix_ms", it.committed_unix_ms()}});
  }
  j["server_time_unix_ms"] = status.server_time_unix_ms();
  return j;
}

std::string JsonText(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json ExportedPairToJson(const v1::ExportedPair& pair) {
  nlohmann::json j;
  j["prompt"] = pair.prompt();
  j["chosen"] = pair.chosen();
  j["rejected"] = pair.rejected();
  j["chosen_score"] = pair.chosen_score();
  j["rejected_score"] = pair.rejected_score();
  j["ref_chosen_logprob"] = pair.ref_chosen_logprob();
  j["ref_rejected_logprob"] = pair.ref_rejected_logprob();
  j["chosen_num_tokens"] = pair.chosen_num_tokens();
  j["rejected_num_tokens"] = pair.rejected_num_tokens();
  j["candidate_scores"] = std::vector<double>(pair.candidate_scores().begin(), pair.candidate_scores().end());
  j["iteration"] = pair.iteration();
  j["prompt_id"] = pair.prompt_id();
  j["provenance"] = {{"model_dir", pair.model_dir()}, {"worker_id", pair.worker_id()},
                     {"shard_id", pair.shard_id()},   {"lease_id", pair.lease_id()},
                     {"attempt", pair.attempt()},     {"accepted_unix_ms", pair.accepted_unix_ms()}};
  return j;
}

}  // namespace srlm::ctl

// How srlmctl shows a run: GetStatus as text with progress bars (status, watch), as JSON
// (status --json), and exported pairs as the JSONL lines of DESIGN.md (prompt, chosen, rejected,
// plus scores and provenance). Pure functions of the messages.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "srlm/v1/coordinator.pb.h"

namespace srlm::ctl {

// "[#######.......]  45.0%" of `width` characters between the brackets.
std::string ProgressBar(double fraction, int width);
// Seconds as "1h02m03s", "4m05s", "6s"; "?" when negative (unknown).
std::string FormatDuration(double seconds);
// The multi-line human view; `now_ms` dates the heartbeats ("3s ago").
std::string FormatStatus(const v1::GetStatusResponse& status, int64_t now_ms);
nlohmann::json StatusToJson(const v1::GetStatusResponse& status);
nlohmann::json ExportedPairToJson(const v1::ExportedPair& pair);
// The JSON text of `j` (`indent` as nlohmann's dump: -1 one line). Bytes that are not UTF-8 (a path
// or text the RPC carried as is) become U+FFFD: dump() alone throws on them, which ended srlmctl.
std::string JsonText(const nlohmann::json& j, int indent = -1);
// "PROMPTS" for PHASE_PROMPTS.
std::string PhaseName(v1::Phase phase);

}  // namespace srlm::ctl

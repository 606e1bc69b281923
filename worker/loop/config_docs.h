// Documentation generated from the one field list of common/run_config.h (VisitRunConfig): the
// Markdown table of docs/CONFIG.md (every key, its type, its default, what it does).
#pragma once

#include <string>

#include "common/run_config.h"

namespace srlm {

// One table per section: | key | type | default | meaning |.
std::string RunConfigMarkdownReference(const RunConfig& defaults);

}  // namespace srlm

// This machine's host name, as gethostname(2) gives it: for messages and records that say where a
// process runs (the coordinator's run-folder lock, a worker's registration, the shared-folder probe).
#pragma once

#include <string>

namespace srlm {

// The host name; empty when the system gives none. Never fails: it only labels.
std::string HostName();

}  // namespace srlm

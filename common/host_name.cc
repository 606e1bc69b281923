// Implementation of common/host_name.h.
#include "common/host_name.h"

#include <unistd.h>

namespace srlm {

std::string HostName() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "";
  return host;
}

}  // namespace srlm

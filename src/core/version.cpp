// finegpt's version, commit and build options, from the header the build writes.
#include "core/version.h"

#include "build_info.h"
#include "core/error.h"

namespace finegpt {

const char *version() { return FINEGPT_BUILD_VERSION; }

std::string version_text() {
  return cat("finegpt ", FINEGPT_BUILD_VERSION, "\ncommit:  ", FINEGPT_BUILD_COMMIT,
             "\nbuild:   ", FINEGPT_BUILD_OPTIONS);
}

} // namespace finegpt

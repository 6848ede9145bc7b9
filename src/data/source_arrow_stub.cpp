// Parquet and Arrow IPC inputs in a build without Arrow C++ (FINEGPT_ARROW=OFF, or no pyarrow
// in .venv): every such input is refused with the fix. The real readers are source_arrow.cpp.
#include "core/error.h"
#include "data/source_impl.h"

namespace finegpt {

void check_arrow_input(const InputFile &f, const SourceOptions &) {
  fail(f.path, ": ", input_kind_name(f.kind),
       " input, but this build has no Arrow support (run scripts/setup.sh)");
}

std::unique_ptr<FileSource> open_arrow_source(const InputFile &f, const SourceOptions &opt) {
  check_arrow_input(f, opt);
  return nullptr;
}

std::string arrow_description() {
  return "none: this build has no Arrow support (run scripts/setup.sh)";
}

} // namespace finegpt

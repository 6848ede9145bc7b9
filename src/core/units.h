// Numbers for people in progress lines: "12.3 MB", "1.2M", "3m05s". Not for files.
#pragma once
#include <string>

namespace finegpt {

// "12.3 MB" (unit "B"), "12.3M" (unit "": a count); powers of 1000.
std::string human(double v, const char *unit);
// "42s", "3m05s", "2h07m".
std::string duration_text(double seconds);

} // namespace finegpt

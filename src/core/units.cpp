// Numbers for people (see units.h).
#include "core/units.h"

#include <cmath>
#include <cstdio>

namespace finegpt {

std::string human(double v, const char *unit) {
  const char *prefix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::fabs(v) >= 1000 && i < 4)
    v /= 1000, i++;
  char buf[48];
  const char *space = *unit ? " " : "";
  std::snprintf(buf, sizeof buf, i ? "%.1f%s%s%s" : "%.0f%s%s%s", v, space, prefix[i], unit);
  return buf;
}

std::string duration_text(double s) {
  char buf[32];
  long t = long(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

} // namespace finegpt

// The CUDA seam's memory bookkeeping (see memory_ledger.h).
#include "backend/memory_ledger.h"

#include "core/error.h"

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace finegpt::cuda::ledger {

namespace {
struct State {
  std::mutex mu;
  std::unordered_map<void *, size_t> device, pinned;
  size_t held = 0, peak = 0, pinned_held = 0;
};
State &state() {
  static State s;
  return s;
}
} // namespace

size_t parse_size(const std::string &text, const char *what) {
  const char *s = text.c_str();
  char *end = nullptr;
  const double v = std::strtod(s, &end);
  std::string unit = end ? end : "";
  while (!unit.empty() && unit.front() == ' ')
    unit.erase(0, 1);
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KiB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MiB")
    mult = 1024.0 * 1024.0;
  else if (unit == "G" || unit == "GB" || unit == "GiB")
    mult = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "T" || unit == "TB" || unit == "TiB")
    mult = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  if (end == s || mult == 0 || !(v > 0) || !std::isfinite(v * mult) || v * mult > 1e18)
    fail(what, ": expected a size like 24GiB, 512MiB or 1.5G, got '", text, "'");
  return size_t(v * mult);
}

size_t device_cap() {
  static const size_t cap = [] {
    const char *env = std::getenv("FINEGPT_DEVICE_MEMORY_CAP");
    return env && *env ? parse_size(env, "FINEGPT_DEVICE_MEMORY_CAP") : size_t(0);
  }();
  return cap;
}

void check_cap(size_t bytes) {
  const size_t cap = device_cap();
  if (!cap) return;
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.held + bytes > cap)
    fail("device memory cap FINEGPT_DEVICE_MEMORY_CAP = ", cap, " bytes (",
         double(cap) / (1u << 30), " GiB) reached: asked for ", bytes, " bytes with ", s.held,
         " held; lower batch_size, raise recompute, or set offload = 'optimizer'");
}

void on_device_alloc(void *p, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.device[p] = bytes;
  s.held += bytes;
  if (s.held > s.peak) s.peak = s.held;
}

void on_device_free(void *p) noexcept {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.device.find(p);
  if (it == s.device.end()) return;
  s.held -= it->second;
  s.device.erase(it);
}

DeviceMemory device() noexcept {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  size_t cap = 0;
  try {
    cap = device_cap();
  } catch (...) {
  }
  return {s.held, s.peak, cap};
}

void on_pinned_alloc(void *p, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.pinned[p] = bytes;
  s.pinned_held += bytes;
}

void on_pinned_free(void *p) noexcept {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.pinned.find(p);
  if (it == s.pinned.end()) return;
  s.pinned_held -= it->second;
  s.pinned.erase(it);
}

size_t pinned() noexcept {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.pinned_held;
}

} // namespace finegpt::cuda::ledger

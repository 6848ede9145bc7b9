// SIGINT / SIGTERM recorded for a clean stop (see interrupt.h).
#include "core/interrupt.h"

#include <csignal>
#include <cstring>
#include <unistd.h>

namespace finegpt {
namespace {

volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int, g_old_term;

void on_signal(int sig) {
  if (g_signal != 0 && sig == SIGINT) {
    const char msg[] = "\nfinegpt: second interrupt: stopping now, without a checkpoint\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(128 + SIGINT);
  }
  if (g_signal == 0) {
    g_signal = sig;
    const char msg[] = "\nfinegpt: interrupted: finishing this step and saving a checkpoint "
                       "(interrupt again to stop now)\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
  }
}

} // namespace

InterruptGuard::InterruptGuard() {
  g_signal = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int interrupt_signal() { return g_signal; }

} // namespace finegpt

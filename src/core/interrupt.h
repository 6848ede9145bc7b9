// SIGINT and SIGTERM as requests to stop cleanly (training: finish the step, save, exit): while an
// InterruptGuard lives, the first of them is recorded for interrupt_signal(); a second SIGINT
// ends the process at once (exit status 130), as users expect of a second Ctrl-C.
#pragma once

namespace finegpt {

class InterruptGuard {
public:
  InterruptGuard();  // installs the handlers (and clears a recorded signal)
  ~InterruptGuard(); // restores the previous handlers
  InterruptGuard(const InterruptGuard &) = delete;
  InterruptGuard &operator=(const InterruptGuard &) = delete;
};

// The signal recorded since the guard was installed (SIGINT or SIGTERM), or 0.
int interrupt_signal();

} // namespace finegpt

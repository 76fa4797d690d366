#include "src/pg/cancel_token.hpp"

#include <cstdint>

#include <sys/eventfd.h>
#include <unistd.h>

namespace batchq::pg {

cancel_token::cancel_token() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // fd_ == -1 (e.g. EMFILE) is tolerated: waiters fall back to polling.
}

cancel_token::~cancel_token() {
  if (fd_ >= 0)
    ::close(fd_);
}

void cancel_token::cancel() noexcept {
  if (cancelled_.exchange(true, std::memory_order_acq_rel))
    return;
  if (fd_ >= 0) {
    uint64_t one = 1;
    // A full counter (EAGAIN) still leaves the fd readable: nothing to do.
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof(one));
  }
}

} // namespace batchq::pg

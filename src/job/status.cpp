#include "src/job/status.hpp"

namespace batchq::job {

const char* to_string(status x) {
  switch (x) {
  case status::pending:
    return "pending";
  case status::running:
    return "running";
  case status::done:
    return "done";
  case status::failed:
    return "failed";
  case status::cancelled:
    return "cancelled";
  case status::skipped:
    return "skipped";
  case status::unknown:
    return "unknown";
  }
  return "unknown";
}

std::optional<status> parse_status(std::string_view text) {
  for (auto x : {status::pending, status::running, status::done, status::failed, status::cancelled,
                 status::skipped, status::unknown})
    if (text == to_string(x))
      return x;
  return std::nullopt;
}

bool is_final(status x) {
  return x == status::done || x == status::failed || x == status::cancelled || x == status::unknown;
}

bool can_transition(status from, status to) {
  switch (from) {
  case status::pending:
    return to == status::running || to == status::cancelled || to == status::skipped;
  case status::running:
    return to == status::done || to == status::failed || to == status::cancelled ||
           to == status::pending;
  default:
    return false;
  }
}

std::string transition_refusal(status from, status to) {
  return std::string{"Cannot set status from "} + to_string(from) + " to " + to_string(to);
}

} // namespace batchq::job

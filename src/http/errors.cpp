#include "src/http/errors.hpp"

#include <caf/sec.hpp>

#include "messages/error.hpp"

namespace batchq::http {

failure failure_of(const caf::error& err) {
  auto text = message_of(err);
  if (err.category() == ec_category) {
    switch (static_cast<ec>(err.code())) {
      case ec::redis_unavailable:
        return {503, "Redis is unavailable: " + (text.empty() ? std::string{"no connection"} : text)};
      case ec::queue_full:
      case ec::invalid_job:
      case ec::invalid_transition:
        return {400, text};
      case ec::job_not_found:
        return {404, text.empty() ? std::string{"Job not found"} : text};
      case ec::node_unreachable:
        return {503, text};
      default:
        return {500, text.empty() ? std::string{to_string(static_cast<ec>(err.code()))} : text};
    }
  }
  if (err == caf::sec::request_timeout)
    return {504, "the request timed out inside batchq; try again"};
  return {500, caf::to_string(err)};
}

void write_json(httplib::Response& res, int status, const nlohmann::ordered_json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), json_type);
}

void write_error(httplib::Response& res, int status, const std::string& message) {
  nlohmann::ordered_json body = {{"error", nlohmann::ordered_json::array({message})}};
  write_json(res, status, body);
}

void write_error(httplib::Response& res, const caf::error& err) {
  auto f = failure_of(err);
  write_error(res, f.status, f.message);
}

} // namespace batchq::http

// The job model's error type: `problem` (a kind + the exact user-facing text) and
// `result<T>` (a value or a problem). The model links no CAF; adapters translate a
// problem into `batchq::make_error(ec::..., message)`: invalid_request and
// invalid_record -> ec::invalid_job, invalid_transition -> ec::invalid_transition.
// Plain values: no shared state.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace batchq::job {

enum class problem_kind {
  /// A request body the API refuses (HTTP 400; SPEC §3.2 messages).
  invalid_request,
  /// The state machine refused a change ("Cannot set status from A to B").
  invalid_transition,
  /// A Redis record that cannot be read as a job.
  invalid_record,
};

struct problem {
  problem_kind kind;
  std::string message;
};

inline bool operator==(const problem& x, const problem& y) {
  return x.kind == y.kind && x.message == y.message;
}

/// Either a T or a problem. Checked access: `value()` on a problem (or `error()`
/// on a value) is a programming error (std::bad_variant_access).
template <class T> class result {
public:
  result(T x) : x_(std::move(x)) {}
  result(problem x) : x_(std::move(x)) {}
  explicit operator bool() const { return x_.index() == 0; }
  T& value() { return std::get<0>(x_); }
  const T& value() const { return std::get<0>(x_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const problem& error() const { return std::get<1>(x_); }

private:
  std::variant<T, problem> x_;
};

/// Success without a value, or a problem.
template <> class result<void> {
public:
  result() = default;
  result(problem x) : x_(std::move(x)) {}
  explicit operator bool() const { return !x_.has_value(); }
  const problem& error() const { return *x_; }

private:
  std::optional<problem> x_;
};

} // namespace batchq::job

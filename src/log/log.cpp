#include "src/log/log.hpp"

#include <chrono>
#include <ctime>
#include <iostream>
#include <mutex>

#include <nlohmann/json.hpp>

namespace batchq::log {

namespace {

struct state {
  std::mutex mtx;
  bool json = false;
  level min_level = level::info;
  std::string node;
  std::ostream* out = &std::cerr;
};

state& global() {
  static state s;
  return s;
}

const char* name(level l) {
  switch (l) {
    case level::debug: return "debug";
    case level::info: return "info";
    case level::warning: return "warning";
    case level::error: return "error";
  }
  return "info";
}

std::string now_iso8601() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::time_t t = system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

// Text values with spaces or quotes are quoted so a line stays parseable.
std::string text_value(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\"=") == std::string::npos)
    return v;
  return nlohmann::json(v).dump();
}

} // namespace

void configure(bool json, level min_level, std::string node_id) {
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mtx};
  s.json = json;
  s.min_level = min_level;
  s.node = std::move(node_id);
}

level parse_level(const std::string& n) {
  if (n == "debug") return level::debug;
  if (n == "warning") return level::warning;
  if (n == "error") return level::error;
  return level::info;
}

std::string format(level lvl, const std::string& event, const fields& fs, bool json,
                   const std::string& node, const std::string& timestamp) {
  if (json) {
    auto j = nlohmann::ordered_json::object();
    j["level"] = name(lvl);
    j["timestamp"] = timestamp;
    j["event"] = event;
    j["node"] = node;
    for (const auto& [k, v] : fs)
      j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string line = timestamp + " " + name(lvl) + " " + event;
  if (!node.empty())
    line += " node=" + text_value(node);
  for (const auto& [k, v] : fs)
    line += " " + k + "=" + text_value(v);
  return line;
}

void write(level lvl, const std::string& event, const fields& fs) {
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mtx};
  if (lvl < s.min_level)
    return;
  *s.out << format(lvl, event, fs, s.json, s.node, now_iso8601()) + "\n" << std::flush;
}

std::string sql_excerpt(const std::string& sql) {
  constexpr size_t max = 200;
  if (sql.size() <= max)
    return sql;
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(sql[cut]) & 0xC0) == 0x80)
    --cut; // never split a UTF-8 sequence
  return sql.substr(0, cut) + "...";
}

void set_sink(std::ostream* out) {
  auto& s = global();
  std::lock_guard<std::mutex> guard{s.mtx};
  s.out = out ? out : &std::cerr;
}

} // namespace batchq::log

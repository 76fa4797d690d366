#include "src/job/form.hpp"

#include <map>
#include <vector>

namespace batchq::job {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// qs (Express's form parser) reads at most this many bracket segments; the
// rest of the key stays one literal segment ("a[1]...[5][6][7]" -> ..., "[6][7]").
constexpr size_t max_key_depth = 5;

// Splits "a[b][]" into {"a", "b", ""}; unbalanced brackets -> the whole key.
std::vector<std::string> split_key(const std::string& key) {
  auto open = key.find('[');
  if (open == std::string::npos || open == 0)
    return {key};
  std::vector<std::string> result{key.substr(0, open)};
  size_t pos = open;
  while (pos < key.size()) {
    if (result.size() > max_key_depth) {
      result.push_back(key.substr(pos));
      break;
    }
    if (key[pos] != '[')
      return {key};
    auto close = key.find(']', pos);
    if (close == std::string::npos)
      return {key};
    result.push_back(key.substr(pos + 1, close - pos - 1));
    pos = close + 1;
  }
  return result;
}

bool is_index(const std::string& seg) {
  if (seg.empty() || seg.size() > 9)
    return false;
  for (char c : seg)
    if (c < '0' || c > '9')
      return false;
  return true;
}

// While parsing, every container is a JSON object; `[]` appends under a fresh
// index key. Numeric-keyed objects become arrays in `finish`.
constexpr const char* append_marker = "\x01" "append";
// The index an append tried last, so that n appends cost O(n), not O(n^2).
constexpr const char* next_marker = "\x01" "next";

// The first free index of `node` from its hint on; moves the hint past it.
std::string next_free(nlohmann::json& node) {
  auto hint = node.find(next_marker);
  size_t n = hint != node.end() && hint->is_number_unsigned() ? hint->get<size_t>() : 0;
  while (node.contains(std::to_string(n)))
    ++n;
  node[next_marker] = n + 1;
  return std::to_string(n);
}

void assign(nlohmann::json& node, const std::vector<std::string>& path, size_t i,
            std::string value) {
  auto seg = path[i];
  if (seg.empty() && i > 0)
    seg = next_free(node); // `[]`
  if (i + 1 == path.size()) {
    auto it = node.find(seg);
    if (it == node.end()) {
      node[seg] = std::move(value);
    } else if (it->is_string()) {
      // Repeated plain key: becomes a list, as qs does.
      nlohmann::json list = nlohmann::json::object();
      list[append_marker] = true;
      list["0"] = *it;
      list["1"] = std::move(value);
      list[next_marker] = 2;
      *it = std::move(list);
    } else if (it->is_object() && it->contains(append_marker)) {
      auto n = next_free(*it);
      (*it)[n] = std::move(value);
    }
    // else: a string where an object already is: first one wins.
    return;
  }
  auto it = node.find(seg);
  if (it == node.end())
    it = node.emplace(seg, nlohmann::json::object()).first;
  else if (!it->is_object() || it->contains(append_marker))
    return; // conflict: first one wins
  assign(*it, path, i + 1, std::move(value));
}

nlohmann::json finish(nlohmann::json node) {
  if (!node.is_object())
    return node;
  node.erase(append_marker);
  node.erase(next_marker);
  bool all_index = !node.empty();
  for (auto& [k, v] : node.items()) {
    (void)v;
    if (!is_index(k))
      all_index = false;
  }
  if (all_index) {
    std::map<long, nlohmann::json> ordered;
    for (auto& [k, v] : node.items())
      ordered.emplace(std::stol(k), finish(v));
    auto arr = nlohmann::json::array();
    for (auto& [k, v] : ordered) {
      (void)k;
      arr.push_back(std::move(v));
    }
    return arr;
  }
  for (auto& [k, v] : node.items()) {
    (void)k;
    v = finish(std::move(v));
  }
  return node;
}

} // namespace

std::string url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

nlohmann::json parse_form(std::string_view body) {
  nlohmann::json root = nlohmann::json::object();
  size_t pos = 0;
  while (pos <= body.size()) {
    auto amp = body.find('&', pos);
    if (amp == std::string_view::npos)
      amp = body.size();
    auto pair = body.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty())
      continue;
    auto eq = pair.find('=');
    auto key = url_decode(pair.substr(0, eq));
    auto value = eq == std::string_view::npos ? std::string{} : url_decode(pair.substr(eq + 1));
    if (key.empty())
      continue;
    assign(root, split_key(key), 0, std::move(value));
  }
  // The root stays an object even if all its keys are numbers.
  for (auto& [k, v] : root.items()) {
    (void)k;
    v = finish(std::move(v));
  }
  return root;
}

} // namespace batchq::job

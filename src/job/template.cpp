#include "src/job/template.hpp"

#include <cctype>

namespace batchq::job {

namespace {

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

// If a tag `<%=\s*name\s*%>` starts at `pos`, returns its length, else 0.
size_t match_tag(std::string_view text, size_t pos, std::string_view name) {
  if (text.compare(pos, 3, "<%=") != 0)
    return 0;
  size_t i = pos + 3;
  while (i < text.size() && is_space(text[i]))
    ++i;
  if (text.compare(i, name.size(), name) != 0)
    return 0;
  i += name.size();
  while (i < text.size() && is_space(text[i]))
    ++i;
  if (text.compare(i, 2, "%>") != 0)
    return 0;
  return i + 2 - pos;
}

} // namespace

std::string sql_quote_doubled(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    out.push_back(c);
    if (c == '\'')
      out.push_back('\'');
  }
  return out;
}

std::string render_template(std::string_view text, std::string_view job_id,
                            std::string_view error_message) {
  std::string quoted = sql_quote_doubled(error_message);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == '<') {
      if (auto n = match_tag(text, pos, "job_id")) {
        out.append(job_id);
        pos += n;
        continue;
      }
      if (auto n = match_tag(text, pos, "error_message")) {
        out.append(quoted);
        pos += n;
        continue;
      }
    }
    out.push_back(text[pos++]);
  }
  return out;
}

} // namespace batchq::job

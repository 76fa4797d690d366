#include "src/http/results.hpp"

#include <charconv>
#include <memory>

#include <nlohmann/json.hpp>

#include "src/http/errors.hpp"
#include "src/http/jobs.hpp"
#include "src/job/record.hpp"
#include "src/job/rows.hpp"
#include "src/redis/ops.hpp"
#include "src/redis/results.hpp"

namespace batchq::http {

namespace {

/// Rows read per LRANGE while streaming CSV.
constexpr int64_t csv_batch = 1000;

std::optional<int64_t> whole_number(const std::string& text) {
  int64_t v = 0;
  if (text.empty() || text.size() > 18 || text.front() < '0' || text.front() > '9')
    return std::nullopt;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (err != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return v;
}

bool wants_csv(const httplib::Request& req) {
  if (req.has_param("format"))
    return req.get_param_value("format") == "csv";
  return req.get_header_value("Accept").find("text/csv") != std::string::npos;
}

struct served_column {
  std::string name;
  std::string type;
  uint32_t oid = 0;
};

std::vector<served_column> columns_of(const std::string& stored) {
  std::vector<served_column> out;
  auto doc = nlohmann::json::parse(stored, nullptr, false);
  if (!doc.is_array())
    return out;
  for (const auto& c : doc) {
    if (!c.is_object())
      continue;
    served_column x;
    x.name = c.value("name", "");
    x.type = c.value("type", "");
    x.oid = c.value("oid", 0u);
    out.push_back(std::move(x));
  }
  return out;
}

std::string json_string(const std::string& x) {
  return nlohmann::json(x).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// The JSON page (SPEC §11), written by hand so that json/jsonb values go
/// out as PostgreSQL stored them.
std::string page_json(const std::string& job_id, size_t step,
                      const std::vector<served_column>& cols,
                      const std::vector<std::string>& stored, const job::kept_rows& kept,
                      std::optional<int64_t> next) {
  std::string out = "{\"job_id\":" + json_string(job_id) + ",\"step\":" + std::to_string(step)
                    + ",\"columns\":[";
  for (size_t i = 0; i < cols.size(); ++i) {
    if (i > 0)
      out += ',';
    out += "{\"name\":" + json_string(cols[i].name) + ",\"type\":" + json_string(cols[i].type)
           + "}";
  }
  out += "],\"rows\":[";
  bool first = true;
  for (const auto& s : stored) {
    auto row = job::decode_row(s);
    if (!row)
      continue;
    if (!first)
      out += ',';
    first = false;
    out += '[';
    for (size_t c = 0; c < row->size(); ++c) {
      if (c > 0)
        out += ',';
      job::append_json_value(out, c < cols.size() ? cols[c].oid : 0, (*row)[c]);
    }
    out += ']';
  }
  out += "],\"row_count\":" + std::to_string(kept.rows)
         + ",\"truncated\":" + (kept.truncated ? "true" : "false") + ",\"next\":"
         + (next ? json_string(job::page_cursor(static_cast<size_t>(*next))) : "null") + "}";
  return out;
}

} // namespace

void get_results(context& ctx, const httplib::Request& req, httplib::Response& res,
                 const caller& who, const std::string& job_id, const std::string& step_text) {
  auto fields = read_own_job(ctx, res, job_id, who.user);
  if (!fields)
    return;
  auto j = job::decode(job_id, job::record(fields->begin(), fields->end()));
  if (!j) {
    write_error(res, 500, "Job with id " + job_id + " cannot be read: " + j.error().message);
    return;
  }
  auto n = whole_number(step_text);
  if (!n || static_cast<size_t>(*n) >= j->steps.size()) {
    write_error(res, 404, "Job " + job_id + " has no step " + step_text);
    return;
  }
  auto step = static_cast<size_t>(*n);
  const auto& s = j->steps[step];
  auto keeps_none = [&] {
    write_error(res, 404, "Step " + step_text + " of job " + job_id + " keeps no results");
  };
  if (!job::keeps_results(*j, step)) {
    keeps_none();
    return;
  }
  if (!s.kept || !s.kept->finished) {
    // Never begun and never to be (skipped, cancelled before it ran), or never
    // completed in a job that is over (its last append was refused or lost):
    // nothing is kept.
    if ((job::is_final(s.status) && !s.kept) || job::is_final(j->status))
      keeps_none();
    else
      write_error(res, 409, "Step " + step_text + " of job " + job_id + " has not finished");
    return;
  }
  const auto kept = *s.kept;
  auto cols = columns_of(kept.columns);

  if (wants_csv(req)) {
    std::vector<job::result_column> header;
    for (const auto& c : cols)
      header.push_back({c.name, c.oid, c.type});
    auto offset = std::make_shared<int64_t>(0);
    auto sent_header = std::make_shared<bool>(false);
    auto* pool = &ctx.batch;
    res.set_chunked_content_provider(
      "text/csv; charset=utf-8",
      [=, header = std::move(header)](size_t, httplib::DataSink& sink) {
        std::string chunk;
        if (!*sent_header) {
          chunk = job::csv_header(header);
          *sent_header = true;
        }
        auto count = std::min(csv_batch, kept.rows - *offset);
        if (count > 0) {
          auto c = pool->checkout();
          auto rows = redis::read_result_rows(*c, job_id, kept.start + *offset, count);
          if (!rows)
            return false; // the connection is closed: a short CSV, never a wrong one
          for (const auto& stored : *rows)
            if (auto row = job::decode_row(stored))
              job::append_csv_row(chunk, *row);
          *offset += count;
        }
        if (!chunk.empty() && !sink.write(chunk.data(), chunk.size()))
          return false;
        if (*offset >= kept.rows)
          sink.done();
        return true;
      });
    return;
  }

  int64_t limit = ctx.cfg.results_page_rows;
  if (req.has_param("limit")) {
    auto l = whole_number(req.get_param_value("limit"));
    if (!l || *l < 1 || *l > max_result_rows) {
      write_error(res, 400, "limit must be an integer from 1 to "
                              + std::to_string(max_result_rows) + ", got '"
                              + req.get_param_value("limit") + "'");
      return;
    }
    limit = *l;
  }
  int64_t from = 0;
  if (req.has_param("cursor")) {
    auto cur = job::parse_page_cursor(req.get_param_value("cursor"));
    if (!cur || static_cast<int64_t>(*cur) > kept.rows) {
      write_error(res, 400, "cursor must be a `next` value of this step's pages, got '"
                              + req.get_param_value("cursor") + "'");
      return;
    }
    from = static_cast<int64_t>(*cur);
  }
  auto count = std::min(limit, kept.rows - from);
  std::vector<std::string> stored;
  if (count > 0) {
    auto c = ctx.batch.checkout();
    auto rows = redis::read_result_rows(*c, job_id, kept.start + from, count);
    if (!rows) {
      write_error(res, rows.error());
      return;
    }
    stored = std::move(*rows);
  }
  std::optional<int64_t> next;
  if (from + count < kept.rows)
    next = from + count;
  res.status = 200;
  res.set_content(page_json(job_id, step, cols, stored, kept, next), json_type);
}

} // namespace batchq::http

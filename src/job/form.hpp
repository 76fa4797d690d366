// `application/x-www-form-urlencoded` bodies and URL query strings, read the way
// CARTO's Express (`qs`) reads them, into a JSON object: `a=1` -> {"a":"1"},
// `q[0]=x&q[1]=y` -> {"q":["x","y"]}, `q[]=x&q[]=y` likewise,
// `q[query][0][query]=x` -> {"q":{"query":[{"query":"x"}]}}, a repeated plain key
// `q=x&q=y` -> {"q":["x","y"]}. All leaf values are strings. Pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace batchq::job {

/// Decodes one form component: `+` -> space, `%XX` -> that byte. A `%` not
/// followed by two hex digits is kept as is.
std::string url_decode(std::string_view text);

/// Parses `a=1&b[c]=2...` into a JSON object (see above). Never fails:
/// - pairs with an empty key are dropped; a pair without `=` has value "";
/// - a key whose brackets are unbalanced is taken literally (`a[b` -> "a[b");
/// - numeric segments (up to 9 digits) make arrays, compacted in index order
///   (`q[5]=x` -> ["x"]); an object mixing numeric and other keys stays an object;
/// - a pair that conflicts with an earlier one (a string where an object is, or the
///   reverse) is ignored: the first one wins.
nlohmann::json parse_form(std::string_view body);

} // namespace batchq::job

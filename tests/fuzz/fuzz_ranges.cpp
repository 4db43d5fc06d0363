// libFuzzer target for the range file behind `smtpgatectl ranges import`:
// parse_range_file and the special-purpose check import_ranges runs on each
// line. A file either parses into valid ranges with increasing line numbers
// and trimmed comments, or is refused with one line that names the file and
// the line. Seeds: tests/fuzz/corpus/ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cidr.hpp"
#include "error.hpp"

using namespace smtpgate;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }  // what the parser trims
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<RangeLine> lines;
  try {
    lines = parse_range_file(text, "ranges.txt");
  } catch (const InputError& e) {
    std::string_view msg = e.what();
    check(msg.rfind("ranges.txt:", 0) == 0);
    check(msg.find('\n') == std::string_view::npos);
    check(msg.size() < 512);                                // the input is quoted cut short
    check(bad_text_offset(msg) == std::string_view::npos);  // and printable
    return 0;
  }
  unsigned last = 0;
  for (const auto& l : lines) {
    check(l.line > last);
    last = l.line;
    check(Cidr::parse(l.cidr.str()) == l.cidr);
    check(l.comment.empty() || (!is_space(l.comment.front()) && !is_space(l.comment.back())));
    check(bad_text_offset(l.comment) == std::string_view::npos && l.comment.size() <= kMaxCommentBytes);
    try {
      check_not_special(l.cidr, false);
      check(!find_special_purpose(l.cidr).has_value());
    } catch (const InputError& e) {
      check(std::string_view(e.what()).find('\n') == std::string_view::npos);
    }
    check_not_special(l.cidr, true);  // --allow-reserved accepts anything that parsed
  }
  return 0;
}

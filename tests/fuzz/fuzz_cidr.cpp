// libFuzzer target for the CIDR type: whatever text an operator or a feed
// hands over, Cidr::parse either returns a prefix in network form that prints
// back to itself, or throws InputError with a one-line message. Lines that
// parse are also aggregated and diffed, and the results checked: every input
// covered, nothing overlapping, sorted. Seeds: tests/fuzz/corpus/cidr.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cidr.hpp"
#include "error.hpp"

using namespace smtpgate;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

// One short printable line, whatever the input (it is quoted cut short).
bool one_line(const char* msg) {
  std::string_view m(msg);
  return m.find('\n') == std::string_view::npos && m.size() < 512 && bad_text_offset(m) == std::string_view::npos;
}

void properties(const Cidr& c) {
  check(c.prefix_len() <= c.max_len());
  check(Cidr::parse(c.str()) == c);
  check(Cidr::from_bytes(c.family(), c.bytes().data(), c.prefix_len()) == c);  // host bits already zero
  check(c.contains(c) && c.overlaps(c));
  check(c.contains(c.last()));
  check(Cidr::parse_address(c.address_str()).family() == c.family());
  if (c.prefix_len() > 0) check(c.parent().contains(c));
  (void)find_special_purpose(c);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<Cidr> parsed;
  size_t pos = 0;
  while (pos <= text.size() && parsed.size() < 64) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    try {
      Cidr c = Cidr::parse(line);
      properties(c);
      parsed.push_back(c);
    } catch (const InputError& e) {
      check(one_line(e.what()));
    }
    try {
      properties(Cidr::parse_address(line));
    } catch (const InputError& e) {
      check(one_line(e.what()));
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }

  std::vector<Cidr> agg = aggregate(parsed);
  check(std::is_sorted(agg.begin(), agg.end()));
  for (size_t i = 0; i + 1 < agg.size(); i++) check(!agg[i].overlaps(agg[i + 1]));
  for (const Cidr& c : parsed) check(std::any_of(agg.begin(), agg.end(), [&](const Cidr& a) { return a.contains(c); }));
  for (const Cidr& a : agg)
    check(std::any_of(parsed.begin(), parsed.end(), [&](const Cidr& c) { return a.overlaps(c); }));

  // Half against half: what diff says was added is in `after` and not in `before`.
  std::vector<Cidr> before(parsed.begin(), parsed.begin() + static_cast<long>(parsed.size() / 2));
  std::vector<Cidr> after(parsed.begin() + static_cast<long>(parsed.size() / 2), parsed.end());
  CidrDiff d = diff(before, after);
  for (const Cidr& c : d.added) {
    check(std::find(after.begin(), after.end(), c) != after.end());
    check(std::find(before.begin(), before.end(), c) == before.end());
  }
  for (const Cidr& c : d.removed) {
    check(std::find(before.begin(), before.end(), c) != before.end());
    check(std::find(after.begin(), after.end(), c) == after.end());
  }
  return 0;
}

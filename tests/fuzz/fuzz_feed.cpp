// libFuzzer target for the feed's parsers: whatever a server (or a proxy, or
// an attacker in between) answers, parsing, selection and validation either
// succeed with well-formed results or throw InputError; nothing else escapes,
// nothing crashes. Seeds: tests/fixtures (real endpoints responses and the
// synthetic change lists).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "error.hpp"
#include "feed.hpp"

using namespace smtpgate;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

void endpoints(std::string_view text) {
  std::vector<EndpointSet> sets;
  try {
    sets = parse_endpoints(text, "fuzz");
  } catch (const InputError&) {
    return;
  }
  for (const auto& s : sets)
    for (const auto& p : s.tcp_ports) check(p.first <= p.last);
  for (Instance inst : {Instance::Worldwide, Instance::China}) {
    Port25Selection sel;
    try {
      sel = select_port25(sets, inst, "fuzz");
    } catch (const InputError&) {
      continue;
    }
    check(!sel.ranges.empty() && !sel.set_ids.empty());
    check(std::is_sorted(sel.ranges.begin(), sel.ranges.end()));
    check(std::adjacent_find(sel.ranges.begin(), sel.ranges.end()) == sel.ranges.end());
    try {
      validate_feed_update(sel.ranges, sel.ranges, FeedPolicy{}, "fuzz");
      // Accepted: nothing special-purpose, no default route, nothing too short.
      for (const auto& c : sel.ranges) {
        check(c.prefix_len() >= (c.family() == Family::V4 ? FeedPolicy{}.min_prefix_v4 : FeedPolicy{}.min_prefix_v6));
        check(!find_special_purpose(c).has_value());
      }
    } catch (const InputError&) {
    }
  }
}

void changes(std::string_view text) {
  try {
    for (const auto& r : parse_changes(text, "fuzz")) {
      check(is_feed_version(r.version));
      check(r.effective_date.empty() || is_feed_date(r.effective_date));
    }
  } catch (const InputError&) {
  }
}

void version(std::string_view text) {
  try {
    check(is_feed_version(parse_version(text, Instance::Worldwide, "fuzz").latest));
  } catch (const InputError&) {
  }
}

void ports(std::string_view text) {
  try {
    for (const auto& p : parse_port_list(text)) check(p.first <= p.last);
  } catch (const InputError&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  endpoints(text);
  changes(text);
  version(text);
  if (size < 256) ports(text);
  return 0;
}

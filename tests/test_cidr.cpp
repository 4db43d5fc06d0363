// One CIDR type for IPv4 and IPv6: parsing (and its errors), printing,
// containment, aggregation (checked against brute force), diff, the
// special-purpose registries, and range files.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "cidr.hpp"
#include "error.hpp"

using namespace smtpgate;

namespace {
std::string err(const char* text) {
  try {
    Cidr::parse(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Cidr, ParsesAndPrintsCanonically) {
  struct {
    const char* in;
    const char* out;
  } cases[] = {
      {"40.92.0.0/15", "40.92.0.0/15"},
      {"104.47.0.0/17", "104.47.0.0/17"},
      {"2a01:111:f400::/48", "2a01:111:f400::/48"},
      {"2A01:0111:F400:0000::/48", "2a01:111:f400::/48"},
      {"2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"},
      {"1.2.3.4", "1.2.3.4/32"},
      {"::1", "::1/128"},
      {"0.0.0.0/0", "0.0.0.0/0"},
      {"::/0", "::/0"},
  };
  for (const auto& c : cases) EXPECT_EQ(Cidr::parse(c.in).str(), c.out) << c.in;
}

TEST(Cidr, ErrorsNameTheInputAndTheFix) {
  struct {
    const char* in;
    const char* says;
  } cases[] = {
      {"52.100.0.0/13", "52.100.0.0/13 has host bits set; did you mean 52.96.0.0/13?"},
      {"2a01:111:f400::1/48", "did you mean 2a01:111:f400::/48?"},
      {"40.92.0.0/33", "longer than the 32 bits"},
      {"2a01::/129", "longer than the 128 bits"},
      {"40.92.0.0/", "no valid prefix length"},
      {"40.92.0.0/015", "no valid prefix length"},
      {"40.92.0.0/x", "no valid prefix length"},
      {"40.92.0/15", "is not an IPv4 or IPv6 range"},
      {"010.0.0.0/8", "is not an IPv4 or IPv6 range"},
      {"40.92.0.0 /15", "white space"},
      {"", "empty range"},
      {"mail.protection.outlook.com", "is not an IPv4 or IPv6 address"},
  };
  for (const auto& c : cases) EXPECT_NE(err(c.in).find(c.says), std::string::npos) << c.in << " -> " << err(c.in);
  EXPECT_THROW(Cidr::parse_address("40.92.0.0/15"), InputError);
}

TEST(Cidr, ContainsAndOverlaps) {
  Cidr eop = Cidr::parse("40.92.0.0/15");
  EXPECT_TRUE(eop.contains(Cidr::parse("40.93.255.255")));
  EXPECT_TRUE(eop.contains(Cidr::parse("40.92.128.0/17")));
  EXPECT_FALSE(eop.contains(Cidr::parse("40.94.0.0")));
  EXPECT_FALSE(eop.contains(Cidr::parse("40.0.0.0/8")));
  EXPECT_TRUE(eop.overlaps(Cidr::parse("40.0.0.0/8")));
  EXPECT_FALSE(eop.contains(Cidr::parse("::ffff:40.92.0.1")));  // families never mix
  EXPECT_EQ(eop.parent().str(), "40.92.0.0/14");
  EXPECT_EQ(eop.last().address_str(), "40.93.255.255");
}

TEST(Cidr, AggregateMergesOverlappingNestedAndAdjacent) {
  auto agg = [](std::vector<const char*> in) {
    std::vector<Cidr> v;
    for (auto s : in) v.push_back(Cidr::parse(s));
    std::vector<std::string> out;
    for (const auto& c : aggregate(v)) out.push_back(c.str());
    return out;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(agg({"40.92.0.0/16", "40.93.0.0/16"}), (V{"40.92.0.0/15"}));
  EXPECT_EQ(agg({"40.92.0.0/15", "40.92.7.0/24", "40.92.0.0/15"}), (V{"40.92.0.0/15"}));
  EXPECT_EQ(agg({"10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/25"}), (V{"10.0.0.0/24"}));
  EXPECT_EQ(agg({"10.0.1.0/24", "10.0.2.0/24"}), (V{"10.0.1.0/24", "10.0.2.0/24"}));  // adjacent, not siblings
  EXPECT_EQ(agg({"2a01:111:f400::/48", "2a01:111:f401::/48", "40.107.0.0/16"}),
            (V{"40.107.0.0/16", "2a01:111:f400::/47"}));
}

TEST(Cidr, AggregateMatchesBruteForceOnRandomSets) {
  // Universe: 10.0.0.0/24, 256 addresses; compare covered sets exactly.
  std::mt19937 rng(20251201);
  for (int round = 0; round < 3000; round++) {
    std::vector<Cidr> in;
    std::set<int> covered;
    int n = 1 + rng() % 12;
    for (int i = 0; i < n; i++) {
      int len = 24 + rng() % 9;
      int host = rng() % 256;
      host &= ~((1 << (32 - len)) - 1);
      Cidr c = Cidr::parse("10.0.0." + std::to_string(host) + "/" + std::to_string(len));
      in.push_back(c);
      for (int a = host; a < host + (1 << (32 - len)); a++) covered.insert(a);
    }
    std::vector<Cidr> out = aggregate(in);
    std::set<int> got;
    for (const auto& c : out) {
      int base = c.bytes()[3], size = 1 << (32 - c.prefix_len());
      for (int a = base; a < base + size; a++)
        EXPECT_TRUE(got.insert(a).second) << "overlap in output, round " << round;
    }
    ASSERT_EQ(got, covered) << "round " << round;
    // Minimal: no two outputs are mergeable siblings.
    for (size_t i = 0; i + 1 < out.size(); i++)
      EXPECT_FALSE(out[i].prefix_len() == out[i + 1].prefix_len() && out[i].parent() == out[i + 1].parent());
  }
}

TEST(Cidr, AggregateOfALargeSetIsExactAndMinimal) {
  // Thousands of prefixes (the radix-sorted path) in 10.0.0.0/16, with
  // duplicates and IPv6 mixed in; the covered addresses compared exactly.
  std::mt19937 rng(20251207);
  std::vector<Cidr> in;
  std::vector<bool> covered(65536);
  for (int i = 0; i < 6000; i++) {
    unsigned len = 17 + rng() % 16;
    uint32_t host = (rng() % 65536) & ~((1u << (32 - len)) - 1);
    uint8_t b[4] = {10, 0, uint8_t(host >> 8), uint8_t(host)};
    in.push_back(Cidr::from_bytes(Family::V4, b, len));
    if (i % 7 == 0) in.push_back(in.back());
    for (uint32_t a = host; a < host + (1u << (32 - len)); a++) covered[a] = true;
  }
  in.push_back(Cidr::parse("2a01:111:f401::/48"));
  in.push_back(Cidr::parse("2a01:111:f400::/48"));
  std::vector<Cidr> out = aggregate(in);
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back().str(), "2a01:111:f400::/47");
  out.pop_back();
  EXPECT_TRUE(std::is_sorted(out.begin(), out.end()));
  std::vector<bool> got(65536);
  for (const auto& c : out) {
    ASSERT_EQ(c.family(), Family::V4);
    uint32_t base = uint32_t(c.bytes()[2]) << 8 | c.bytes()[3];
    for (uint32_t a = base; a < base + (1u << (32 - c.prefix_len())); a++) {
      EXPECT_FALSE(got[a]) << "overlap at " << a;
      got[a] = true;
    }
  }
  EXPECT_EQ(got, covered);
  for (size_t i = 0; i + 1 < out.size(); i++)
    EXPECT_FALSE(out[i].prefix_len() == out[i + 1].prefix_len() && out[i].parent() == out[i + 1].parent());
}

TEST(Cidr, PrefixOrderIsTheStableSortOfCidrOrder) {
  std::mt19937 rng(7);
  for (size_t n : {5u, 300u, 20000u}) {
    std::vector<Cidr> v;
    for (size_t i = 0; i < n; i++) {
      uint8_t b[16];
      for (auto& x : b) x = uint8_t(rng() % 3 == 0 ? 0 : rng());
      bool v6 = rng() % 5 == 0;
      v.push_back(Cidr::from_bytes(v6 ? Family::V6 : Family::V4, b, rng() % (v6 ? 129 : 33)));
      if (i % 4 == 0) v.push_back(v.back());
    }
    std::vector<uint32_t> expect(v.size());
    for (uint32_t i = 0; i < expect.size(); i++) expect[i] = i;
    std::stable_sort(expect.begin(), expect.end(), [&](uint32_t a, uint32_t b) { return v[a] < v[b]; });
    EXPECT_EQ(prefix_order(v), expect) << n;
  }
}

TEST(Cidr, DiffIsExactSetDifference) {
  std::vector<Cidr> before{Cidr::parse("40.92.0.0/15"), Cidr::parse("40.107.0.0/16")};
  std::vector<Cidr> after{Cidr::parse("40.107.0.0/16"), Cidr::parse("52.100.0.0/14"), Cidr::parse("52.100.0.0/14")};
  CidrDiff d = diff(before, after);
  ASSERT_EQ(d.added.size(), 1u);
  EXPECT_EQ(d.added[0].str(), "52.100.0.0/14");
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(d.removed[0].str(), "40.92.0.0/15");
}

TEST(SpecialPurpose, RefusesReservedSpaceNamingTheRegistryEntry) {
  struct {
    const char* range;
    const char* entry;
  } cases[] = {
      {"10.1.0.0/16", "10.0.0.0/8 Private-Use"},
      {"172.16.0.0/12", "172.16.0.0/12 Private-Use"},
      {"192.168.1.0/24", "192.168.0.0/16"},
      {"127.0.0.1", "Loopback"},
      {"169.254.0.0/16", "Link Local"},
      {"100.64.0.0/10", "Shared Address Space"},
      {"192.0.2.0/24", "Documentation"},
      {"198.18.0.0/15", "Benchmarking"},
      {"224.0.0.0/4", "Multicast"},
      {"0.1.2.0/24", "\"This network\""},
      {"192.0.0.0/30", "192.0.0.0/29"},  // the more specific entry
      {"8.0.0.0/5", "10.0.0.0/8"},       // contains special space
      {"fd00::/8", "Unique-Local"},
      {"fe80::/64", "Link-Local"},
      {"2001:db8::/48", "Documentation"},
      {"::ffff:0:0/96", "IPv4-mapped"},
      {"ff02::/16", "Multicast"},
  };
  for (const auto& c : cases) {
    try {
      check_not_special(Cidr::parse(c.range), false);
      ADD_FAILURE() << c.range << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.entry), std::string::npos) << c.range << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("--allow-reserved"), std::string::npos);
    }
    EXPECT_NO_THROW(check_not_special(Cidr::parse(c.range), true));
  }
  for (const char* dflt : {"0.0.0.0/0", "::/0"}) {
    try {
      check_not_special(Cidr::parse(dflt), false);
      ADD_FAILURE() << dflt;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("default route"), std::string::npos);
    }
  }
}

TEST(SpecialPurpose, EopRangesAreNotSpecial) {
  for (const char* r : {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48",
                        "2a01:111:f403::/48", "40.95.0.0/16"})
    EXPECT_NO_THROW(check_not_special(Cidr::parse(r), false)) << r;
}

TEST(RangeFile, ParsesCommentsBlankLinesCrlfAndBom) {
  std::string text = "\xEF\xBB\xBF# EOP port 25\r\n40.92.0.0/15\r\n\n  40.107.0.0/16   # main pool\n2a01:111:f400::/48";
  auto lines = parse_range_file(text, "eop.txt");
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].cidr.str(), "40.92.0.0/15");
  EXPECT_EQ(lines[0].line, 2u);
  EXPECT_EQ(lines[1].comment, "main pool");
  EXPECT_EQ(lines[2].line, 5u);
}

TEST(RangeFile, ErrorsNameFileAndLine) {
  try {
    parse_range_file("40.92.0.0/15\n\n52.100.0.0/13\n", "eop.txt");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "eop.txt:3: 52.100.0.0/13 has host bits set; did you mean 52.96.0.0/13?");
  }
}

// What got through: inet_pton stops at a NUL, so "40.109.0.0<NUL>junk/16"
// was 40.109.0.0/16; ::a.b.c.d is an IPv6 address nobody means; an error
// echoed its whole input back.
TEST(Cidr, TextThatIsNotACidrIsRefusedAndQuotedShort) {
  struct {
    std::string in, says;
  } cases[] = {
      {std::string("40.109.0.0\0junk/16", 18),
       "'40.109.0.0\\x00junk/16' is not an IPv4 or IPv6 range (byte 0x00 at 11)"},
      {"40.109.0.0/16\xff", "'40.109.0.0/16\\xff' has no valid prefix length"},
      {"40.92.0.0%eth0/15", "(byte 0x25 at 10)"},
      {"::1.2.3.4/128",
       "'::1.2.3.4/128' is an IPv4-compatible IPv6 address (::/96, deprecated by RFC 4291): for the "
       "IPv4 address write 1.2.3.4/32"},
      {"::102:300/120",
       "IPv4-compatible IPv6 range (::/96, deprecated by RFC 4291): for the IPv4 range write 1.2.3.0/24"},
      {std::string(5 << 20, '4'), "(cut; 5242880 bytes in all) is not an IPv4 or IPv6 address (too long)"},
  };
  for (const auto& c : cases) {
    std::string e;
    try {
      Cidr::parse(c.in);
    } catch (const InputError& x) {
      e = x.what();
    }
    EXPECT_NE(e.find(c.says), std::string::npos) << c.in.substr(0, 40) << " -> " << e;
    EXPECT_LT(e.size(), 300u) << e.substr(0, 300);
  }
  // :: and ::1 stay what the special-purpose registry says they are.
  EXPECT_EQ(Cidr::parse("::1").str(), "::1/128");
  EXPECT_THROW(check_not_special(Cidr::parse("::/128"), false), InputError);
  EXPECT_EQ(Cidr::parse("::ffff:0:0/96").str(), "::ffff:0.0.0.0/96");
}

TEST(RangeFile, ALineThatIsNotTextIsRefusedWithFileAndLine) {
  struct {
    std::string text, says;
  } cases[] = {
      {std::string("40.92.0.0/15\n40.109.0.0\0junk/16\n", 32), "eop.txt:2: byte 0x00 at column 11 is a NUL"},
      {"40.92.0.0/15\n40.109.0.0/16 # caf\xe9 relay\n", "eop.txt:2: byte 0xe9 at column 20 is not UTF-8 text"},
      {"40.92.0.0/15 # \x1b]0;owned\x07\n", "eop.txt:1: byte 0x1b at column 16 is not UTF-8 text"},
      {"40.109.0.0/16 # " + std::string(300, 'c') + "\n", "eop.txt:1: comment 'ccc"},
      {"::1.2.3.4/128\n", "eop.txt:1: '::1.2.3.4/128' is an IPv4-compatible"},
      {std::string(5 << 20, '4') + "\n", "eop.txt:1: '4444"},
  };
  for (const auto& c : cases) {
    std::string e;
    try {
      parse_range_file(c.text, "eop.txt");
    } catch (const InputError& x) {
      e = x.what();
    }
    EXPECT_EQ(e.rfind(c.says, 0), 0u) << e.substr(0, 300);
    EXPECT_EQ(e.find('\n'), std::string::npos);
    EXPECT_LT(e.size(), 300u) << e.substr(0, 300);
  }
  // UTF-8 comments, tabs and CRLF are text.
  auto lines = parse_range_file("40.95.0.0/16\t# relay pool, caf\xc3\xa9\r\n", "eop.txt");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].comment, "relay pool, caf\xc3\xa9");
}

TEST(Text, BadTextOffsetFindsWhereUtf8TextEnds) {
  struct {
    std::string text;
    size_t at;
  } cases[] = {
      {"plain\ttext", std::string::npos},
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7", std::string::npos},
      {std::string("a\0b", 3), 1},
      {"\x7f", 0},
      {"\xc2\x85", 0},          // NEL, a C1 control character
      {"\xc0\xaf", 0},          // overlong '/'
      {"\xed\xa0\x80", 0},      // a surrogate
      {"\xf4\x90\x80\x80", 0},  // past U+10FFFF
      {"ok\xe2\x82", 2},        // cut short
      {"\xff", 0},
  };
  for (const auto& c : cases) EXPECT_EQ(bad_text_offset(c.text), c.at) << quote_input(c.text);
}

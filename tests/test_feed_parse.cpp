// The feed's three responses as data: every real endpoints fixture selects its
// instance's port-25 set by content; what the service really sends is
// tolerated; what it never sends is refused in one line that names the input;
// and a version that would shrink or open the gate does not pass validation.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "error.hpp"
#include "feed.hpp"
#include "fsutil.hpp"

using namespace smtpgate;

namespace {
std::string fixture(const std::string& name) { return read_file(std::string(SG_FIXTURES_DIR) + "/" + name); }

std::vector<std::string> strs(const std::vector<Cidr>& v) {
  std::vector<std::string> o;
  for (const auto& c : v) o.push_back(c.str());
  return o;
}

std::vector<Cidr> cidrs(const std::vector<std::string>& v) {
  std::vector<Cidr> o;
  for (const auto& s : v) o.push_back(Cidr::parse(s));
  return o;
}

// The InputError message of f(), or "" when it did not throw.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

const std::vector<std::string> kWorldwidePort25 = {"40.92.0.0/15",  "40.107.0.0/16",      "52.100.0.0/14",
                                                   "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"};
}  // namespace

TEST(FeedParse, EveryRealFixtureSelectsItsInstancesPort25Set) {
  struct {
    const char* file;
    Instance instance;
    int set_id;
    size_t ranges;
    const char* first;
    const char* last;
  } cases[] = {
      {"m365-endpoints-worldwide.2025-12-01.deploymenttheory-tfprovider.json", Instance::Worldwide, 10, 6,
       "40.92.0.0/15", "2a01:111:f403::/48"},
      {"m365-endpoints-worldwide.2024-04-24.slivertea-axisO365App.json", Instance::Worldwide, 10, 6, "40.92.0.0/15",
       "2a01:111:f403::/48"},
      {"m365-endpoints-china.2025-12-01.deploymenttheory-tfprovider.json", Instance::China, 27, 15, "40.72.120.0/22",
       "2406:e500:4400::/39"},
      // Set 4 lists port 25 too but has no ips (URLs only): not a port-25 set.
      {"m365-endpoints-usgovdod.2025-12-01.deploymenttheory-tfprovider.json", Instance::USGovDoD, 6, 8,
       "23.103.191.0/24", "2001:489a:2202:c000::/50"},
      {"m365-endpoints-usgovgcchigh.2025-12-01.deploymenttheory-tfprovider.json", Instance::USGovGCCHigh, 6, 11,
       "23.103.191.0/24", "2001:489a:2202:8000::/50"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    Port25Selection sel = select_port25(parse_endpoints(fixture(c.file), c.file), c.instance, c.file);
    EXPECT_EQ(sel.set_ids, std::vector<int>{c.set_id});
    EXPECT_TRUE(sel.warnings.empty()) << sel.warnings.front();
    ASSERT_EQ(sel.ranges.size(), c.ranges);
    EXPECT_EQ(sel.ranges.front().str(), c.first);
    EXPECT_EQ(sel.ranges.back().str(), c.last);
    if (c.instance == Instance::Worldwide) {
      EXPECT_EQ(strs(sel.ranges), kWorldwidePort25);
    }
    EXPECT_NO_THROW(validate_feed_update({}, sel.ranges, FeedPolicy{}, c.file));
  }
}

TEST(FeedParse, AFixtureReadAsTheWrongInstanceWarnsAboutTheId) {
  std::string file = "m365-endpoints-china.2025-12-01.deploymenttheory-tfprovider.json";
  Port25Selection sel = select_port25(parse_endpoints(fixture(file), file), Instance::Worldwide, file);
  EXPECT_EQ(sel.set_ids, std::vector<int>{27});
  ASSERT_EQ(sel.warnings.size(), 1u);
  EXPECT_NE(sel.warnings[0].find("id 27, not the 10"), std::string::npos) << sel.warnings[0];
}

TEST(FeedParse, ToleratesWhatTheServiceSends) {
  struct {
    const char* what;
    std::string body;
    std::vector<std::string> ranges;
    std::vector<int> set_ids;
    size_t warnings;
  } cases[] = {
      {"unknown fields, empty notes, missing urls and udpPorts",
       R"([{"id":10,"serviceArea":"Exchange","tcpPorts":"25","ips":["40.92.0.0/15"],"notes":"","newField":{"a":[1]},
            "expressRoute":"true"}])",
       {"40.92.0.0/15"},
       {10},
       0},
      {"unsorted ports with a range and spaces",
       R"([{"id":10,"serviceArea":"Exchange","tcpPorts":"587, 443,20-30","ips":["40.92.0.0/15"]}])",
       {"40.92.0.0/15"},
       {10},
       0},
      {"serviceArea in another case",
       R"([{"id":10,"serviceArea":"exchange","tcpPorts":"25","ips":["2a01:111:f400::/48"]}])",
       {"2a01:111:f400::/48"},
       {10},
       0},
      {"a byte-order mark and surrounding white space",
       "\xEF\xBB\xBF \n[{\"id\":10,\"serviceArea\":\"Exchange\",\"tcpPorts\":\"25\",\"ips\":[\"40.92.0.0/15\"]}]\n",
       {"40.92.0.0/15"},
       {10},
       0},
      {"sets without ips, ports or serviceArea around the port-25 set",
       R"([{"id":1,"urls":["a.example"]},{"id":2,"serviceArea":"Exchange","tcpPorts":"25"},
           {"id":3,"ips":["52.96.0.0/14"]},{"id":10,"serviceArea":"Exchange","tcpPorts":"25","ips":["40.92.0.0/15"]},
           {"id":11,"serviceArea":"Skype","tcpPorts":"25","ips":["52.112.0.0/14"]}])",
       {"40.92.0.0/15"},
       {10},
       0},
      {"two port-25 sets: merged, duplicates once, with a warning",
       R"([{"id":10,"serviceArea":"Exchange","tcpPorts":"25","ips":["40.107.0.0/16","40.92.0.0/15"]},
           {"id":77,"serviceArea":"Exchange","tcpPorts":"25,587","ips":["40.92.0.0/15","104.47.0.0/17"]}])",
       {"40.92.0.0/15", "40.107.0.0/16", "104.47.0.0/17"},
       {10, 77},
       1},
      {"selected by content when the id moved",
       R"([{"id":99,"serviceArea":"Exchange","tcpPorts":"25","ips":["40.92.0.0/15"]},
           {"id":10,"serviceArea":"Exchange","tcpPorts":"443,80","ips":["52.96.0.0/14"]}])",
       {"40.92.0.0/15"},
       {99},
       1},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    Port25Selection sel = select_port25(parse_endpoints(c.body, "resp"), Instance::Worldwide, "resp");
    EXPECT_EQ(strs(sel.ranges), c.ranges);
    EXPECT_EQ(sel.set_ids, c.set_ids);
    EXPECT_EQ(sel.warnings.size(), c.warnings);
  }
}

TEST(FeedParse, PortLists) {
  struct {
    const char* list;
    std::vector<std::pair<int, int>> ranges;
  } ok[] = {{"25", {{25, 25}}},    {"443,80", {{443, 443}, {80, 80}}}, {"80-90, 443", {{80, 90}, {443, 443}}}, {"", {}},
            {" 25 ,", {{25, 25}}}, {"0-65535", {{0, 65535}}}};
  for (const auto& c : ok) {
    SCOPED_TRACE(c.list);
    std::vector<std::pair<int, int>> got;
    for (const auto& r : parse_port_list(c.list)) got.emplace_back(r.first, r.last);
    EXPECT_EQ(got, c.ranges);
  }
  for (const char* bad : {"25,abc", "90-80", "70000", "25-", "-25", "1-2-3", "+25", "2 5"}) {
    std::string e = error_of([&] { parse_port_list(bad); });
    EXPECT_NE(e.find(std::string("port list '") + bad + "'"), std::string::npos) << bad << ": " << e;
  }
}

TEST(FeedParse, RefusesWhatIsNotAnEndpointsResponseInOneLine) {
  struct {
    std::string body;
    const char* says;
  } cases[] = {
      {"", "resp is empty"},
      {"  \n ", "resp is empty"},
      {"<html><head><title>Proxy Authorization Required</title></head></html>", "looks like HTML"},
      {"\n  <!DOCTYPE html><html>captive portal</html>", "check the feed URL and the proxy"},
      {R"([{"id": 10, "serviceArea": "Exch)", "is not JSON (starts with '[{\"id\": 10"},
      // Latin-1, a NUL and a newline come out as \xNN: one line of ASCII.
      {std::string("Fehler \xe4\0\n", 10) + std::string(100, 'x'),
       "is not JSON (starts with 'Fehler \\xe4\\x00\\x0axxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...')"},
      {R"({"instance": "Worldwide", "latest": "2025120100"})", "not a list of endpoint sets"},
      {R"({"error": "rate limited"})", "not a list of endpoint sets"},
      {R"([10])", "an endpoint set is not a JSON object"},
      {R"([{"serviceArea": "Exchange"}])", "has no numeric id"},
      {R"([{"id": "10"}])", "has no numeric id"},
      {R"([{"id": 99999999999}])", "has no numeric id"},
      {R"([{"id": 10, "ips": "40.92.0.0/15"}])", "set 10 has 'ips' that is not a list"},
      {R"([{"id": 10, "ips": [4092]}])", "set 10 lists an ip that is not a string but number"},
      // Nested deeper than any stack could print recursively.
      {R"([{"id": 10, "ips": [)" + std::string(200000, '[') + std::string(200000, ']') + "]}]",
       "set 10 lists an ip that is not a string but array"},
      {R"([{"id": 10, "ips": ["40.92.0.0/33"]}])", "set 10: '40.92.0.0/33'"},
      {R"([{"id": 10, "ips": ["52.100.0.0/13"]}])", "did you mean 52.96.0.0/13"},
      {"[{\"id\": 10, \"ips\": [\"40.92.0.0\\u0000/15\"]}]", "not a CIDR: '40.92.0.0\\x00/15'"},
      {R"([{"id": 10, "tcpPorts": "25,x", "ips": ["40.92.0.0/15"]}])", "set 10: port list '25,x'"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { parse_endpoints(c.body, "resp"); });
    EXPECT_NE(e.find(c.says), std::string::npos) << "body " << c.body << "\nmessage: " << e;
    EXPECT_EQ(e.rfind("resp", 0), 0u) << e;  // names the source first
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  std::string none = error_of([] {
    select_port25(
        parse_endpoints(R"([{"id":10,"serviceArea":"Exchange","tcpPorts":"443","ips":["40.92.0.0/15"]}])", "resp"),
        Instance::China, "resp");
  });
  EXPECT_NE(none.find("no port-25 set"), std::string::npos) << none;
  EXPECT_NE(none.find("instance China"), std::string::npos) << none;
}

TEST(FeedParse, Versions) {
  EXPECT_EQ(parse_version(R"({"instance":"Worldwide","latest":"2025120100"})", Instance::Worldwide, "v").latest,
            "2025120100");
  EXPECT_EQ(parse_version(R"({"instance":"worldwide","latest":"2025120100","versions":["2025120100","2025110100"]})",
                          Instance::Worldwide, "v")
                .latest,
            "2025120100");
  EXPECT_EQ(
      parse_version(R"([{"instance":"Worldwide","latest":"2025120100"},{"instance":"China","latest":"2025103000"}])",
                    Instance::China, "v")
          .latest,
      "2025103000");
  EXPECT_EQ(parse_version(R"({"latest":"2025120100"})", Instance::USGovDoD, "v").latest, "2025120100");

  struct {
    const char* body;
    const char* says;
  } bad[] = {
      {R"({"instance":"Worldwide","latest":"202512010"})", "latest version '202512010' is not 10 digits"},
      {R"({"instance":"Worldwide","latest":"20251201OO"})", "is not 10 digits"},
      {R"({"instance":"Worldwide","latest":2025120100})", "has no \"latest\" version string"},
      {R"({"instance":"Worldwide"})", "has no \"latest\""},
      {R"({"instance":"China","latest":"2025120100"})", "instance 'China', not Worldwide"},
      {R"([{"instance":"China","latest":"2025120100"}])", "lists no version for instance Worldwide"},
      {R"("2025120100")", "not a version response"},
      {"<html>502 Bad Gateway</html>", "looks like HTML"},
  };
  for (const auto& c : bad) {
    std::string e = error_of([&] { parse_version(c.body, Instance::Worldwide, "v"); });
    EXPECT_NE(e.find(c.says), std::string::npos) << c.body << ": " << e;
  }
  EXPECT_TRUE(is_feed_version("0000000000"));
  EXPECT_FALSE(is_feed_version("00000000000"));
  EXPECT_FALSE(is_feed_version("２025120100"));
  // Fixed width: plain string order is version order.
  EXPECT_LT(std::string("2025120100"), std::string("2026010100"));
}

TEST(FeedParse, ChangeRecordsAsTheServiceWritesThem) {
  auto recs = parse_changes(fixture("changes-tolerance.synthetic-from-schema.json"), "changes");
  ASSERT_EQ(recs.size(), 4u);

  EXPECT_EQ(recs[0].disposition, Disposition::Add);
  EXPECT_EQ(recs[0].endpoint_set_id, 10);
  EXPECT_EQ(recs[0].impact, "AddedEndpointSet");
  EXPECT_EQ(recs[0].version, "2025120100");
  EXPECT_EQ(recs[0].effective_date, "20251101");
  EXPECT_EQ(strs(recs[0].added_ips), (std::vector<std::string>{"40.94.0.0/16", "2a01:111:f404::/48"}));
  EXPECT_EQ(recs[0].added_urls, std::vector<std::string>{"*.mx.microsoft"});
  ASSERT_TRUE(recs[0].current.has_value());
  EXPECT_EQ(recs[0].current->express_route, false);  // "false"
  EXPECT_EQ(recs[0].current->required, true);        // "TRUE"
  EXPECT_EQ(recs[0].current->tcp_ports, "443,25");
  EXPECT_EQ(recs[0].current->notes, "");
  EXPECT_FALSE(recs[0].previous.has_value());

  EXPECT_EQ(recs[1].disposition, Disposition::Change);  // "change"
  EXPECT_EQ(recs[1].effective_date, "");                // absent

  EXPECT_EQ(recs[2].disposition, Disposition::Remove);  // "REMOVE"
  EXPECT_EQ(strs(recs[2].removed_ips), std::vector<std::string>{"52.112.0.0/14"});
  EXPECT_EQ(recs[2].removed_urls, std::vector<std::string>{"*.lync.com"});
  ASSERT_TRUE(recs[2].previous.has_value());
  EXPECT_EQ(recs[2].previous->express_route, true);  // JSON booleans too
  EXPECT_EQ(recs[2].previous->required, false);

  EXPECT_EQ(recs[3].disposition, Disposition::Other);
  EXPECT_EQ(recs[3].impact, "");
  EXPECT_TRUE(recs[3].added_ips.empty());

  auto two = parse_changes(fixture("changes-worldwide-2025120100.synthetic-from-schema.json"), "changes");
  ASSERT_EQ(two.size(), 4u);
  EXPECT_EQ(two[0].effective_date, "20260201");
  EXPECT_EQ(two[3].added_urls, std::vector<std::string>{"outlook.example-new.microsoft"});
  EXPECT_EQ(parse_changes("[]", "changes").size(), 0u);
}

TEST(FeedParse, RefusesChangeRecordsItCannotRead) {
  struct {
    const char* body;
    const char* says;
  } cases[] = {
      {R"({"id":1})", "not a list of change records"},
      {R"([{"endpointSetId":10,"version":"2026010100"}])", "a change record has no numeric id"},
      {R"([{"id":5,"version":"2026010100"}])", "change 5 has no numeric endpointSetId"},
      {R"([{"id":5,"endpointSetId":10,"version":"2026-01-01"}])", "change 5 has version '2026-01-01'"},
      {R"([{"id":5,"endpointSetId":10,"version":"2026010100","add":{"effectiveDate":"2026-02-01"}}])",
       "effectiveDate '2026-02-01', not 8 digits"},
      {R"([{"id":5,"endpointSetId":10,"version":"2026010100","add":{"ips":"40.94.0.0/16"}}])",
       "change 5 add has 'ips' that is not a list"},
      {R"([{"id":5,"endpointSetId":10,"version":"2026010100","remove":{"ips":["40.94.0.1/16"]}}])",
       "change 5 remove: 40.94.0.1/16 has host bits set"},
      {"<html></html>", "looks like HTML"},
  };
  for (const auto& c : cases) {
    std::string e = error_of([&] { parse_changes(c.body, "changes"); });
    EXPECT_NE(e.find(c.says), std::string::npos) << c.body << ": " << e;
  }
}

TEST(FeedParse, ValidationGuardsTheGate) {
  const auto current = cidrs(
      {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"});
  FeedPolicy forced;
  forced.force = true;
  FeedPolicy reserved_ok;
  reserved_ok.allow_reserved = true;
  reserved_ok.force = true;
  FeedPolicy strict;
  strict.min_prefix_v4 = 16;
  FeedPolicy share20;
  share20.max_removal_share = 0.2;
  FeedPolicy growth60;
  growth60.max_growth_share = 0.6;
  // n IPv4 /24s in 45.1.0.0/16: each new, together a sliver of the space.
  auto small_ranges = [](int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; i++) v.push_back("45.1." + std::to_string(i) + ".0/24");
    return v;
  };
  auto plus = [](std::vector<std::string> v, const std::vector<std::string>& more) {
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  struct {
    const char* what;
    std::vector<std::string> next;
    FeedPolicy policy;
    const char* refusal;  // nullptr: accepted
  } cases[] = {
      {"unchanged", kWorldwidePort25, {}, nullptr},
      {"one range added",
       {"40.92.0.0/15", "40.94.0.0/16", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48",
        "2a01:111:f403::/48"},
       {},
       nullptr},
      {"a range split in two is not a removal",
       {"40.92.0.0/16", "40.93.0.0/16", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"},
       {},
       nullptr},
      {"half removed is the limit", {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14"}, {}, nullptr},
      {"more than half removed", {"40.92.0.0/15", "40.107.0.0/16"}, {}, "remove 4 of the 6 current ranges"},
      {"more than half removed, forced", {"40.92.0.0/15", "40.107.0.0/16"}, forced, nullptr},
      {"part of a range dropped counts as removed",
       {"40.92.0.0/16", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"},
       share20,
       "remove 3 of the 6"},
      {"empty", {}, forced, "its port-25 set is empty"},
      {"private space", {"40.92.0.0/15", "10.1.0.0/16"}, forced, "10.1.0.0/16 is special-purpose space"},
      {"private space, allowed by policy", {"40.92.0.0/15", "10.1.0.0/16"}, reserved_ok, nullptr},
      {"loopback inside a longer prefix", {"40.92.0.0/15", "127.0.0.0/24"}, {}, "special-purpose"},
      {"IPv6 link-local", {"2a01:111:f400::/48", "fe80::/64"}, {}, "special-purpose"},
      {"IPv4 default route", {"40.92.0.0/15", "0.0.0.0/0"}, reserved_ok, "default route 0.0.0.0/0"},
      {"IPv6 default route", {"2a01:111:f400::/48", "::/0"}, reserved_ok, "default route ::/0"},
      {"IPv4 shorter than /12", {"40.0.0.0/11"}, forced, "40.0.0.0/11 is shorter than /12 (min_prefix_v4)"},
      {"IPv6 shorter than /32", {"2a00::/31"}, forced, "2a00::/31 is shorter than /32 (min_prefix_v6)"},
      {"configured minimum", {"40.92.0.0/15"}, strict, "shorter than /16"},
      // Growth: Worldwide admits 491520 IPv4 addresses and two IPv6 /48s.
      {"a new /15 grows IPv4 by a quarter", plus(kWorldwidePort25, {"40.94.0.0/15"}), {}, nullptr},
      {"a new /14 grows IPv4 by more than half",
       plus(kWorldwidePort25, {"52.96.0.0/14"}),
       {},
       "it would grow the admitted IPv4 space from 491520 addresses by 262144 addresses (53%, more than "
       "max_growth_share 50%)"},
      {"one more IPv6 /48 is half again", plus(kWorldwidePort25, {"2a01:111:f404::/48"}), {}, nullptr},
      {"an IPv6 /47 doubles it",
       plus(kWorldwidePort25, {"2a01:111:f404::/47"}),
       {},
       "it would grow the admitted IPv6 space from 2 /48s by 2 /48s (100%"},
      {"a wider prefix over a current one adds only what is new",
       {"40.92.0.0/14", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17", "2a01:111:f400::/48", "2a01:111:f403::/48"},
       {},
       nullptr},
      {"eight new ranges is the limit", plus(kWorldwidePort25, small_ranges(8)), {}, nullptr},
      {"nine new ranges",
       plus(kWorldwidePort25, small_ranges(9)),
       {},
       "it would add 9 new ranges to the 6 current ones (more than max_added_ranges 8)"},
      {"growth, forced", plus(kWorldwidePort25, {"52.96.0.0/14"}), forced, nullptr},
      {"a looser growth share", plus(kWorldwidePort25, {"52.96.0.0/14"}), growth60, nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    std::string e =
        error_of([&] { validate_feed_update(current, cidrs(c.next), c.policy, "feed version 2026010100"); });
    if (!c.refusal) {
      EXPECT_EQ(e, "");
      continue;
    }
    EXPECT_NE(e.find(c.refusal), std::string::npos) << e;
    EXPECT_EQ(e.rfind("feed version 2026010100 is refused: ", 0), 0u) << e;
    EXPECT_NE(e.find("the running allowlist is kept"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
  // The first version ever has nothing to remove.
  EXPECT_NO_THROW(validate_feed_update({}, cidrs({"40.92.0.0/15"}), FeedPolicy{}, "first"));
  // A family the gate admits nothing of may not start with a version.
  std::string e = error_of([&] {
    validate_feed_update(cidrs({"40.92.0.0/15"}), cidrs({"40.92.0.0/15", "2a01:111:f400::/48"}), FeedPolicy{}, "v6");
  });
  EXPECT_NE(e.find("it would admit 1 /48s of IPv6 where the running allowlist admits none"), std::string::npos) << e;
}

TEST(FeedParse, RefusalsSayWhetherTheVersionsRangesAreStillTrusted) {
  const auto current = cidrs(kWorldwidePort25);
  auto rule_of = [&](const std::vector<std::string>& next) {
    try {
      validate_feed_update(current, cidrs(next), FeedPolicy{}, "v");
    } catch (const FeedRefusal& r) {
      return std::make_pair(r.rule(), r.ranges_trusted());
    }
    ADD_FAILURE() << "accepted";
    return std::make_pair(FeedRule::Empty, false);
  };
  EXPECT_EQ(rule_of({"40.92.0.0/15"}), std::make_pair(FeedRule::Removal, true));
  EXPECT_EQ(rule_of({"40.92.0.0/15", "40.0.0.0/8"}), std::make_pair(FeedRule::ShortPrefix, false));
  EXPECT_EQ(rule_of({"40.92.0.0/15", "10.0.0.0/16"}), std::make_pair(FeedRule::SpecialPurpose, false));
  std::vector<std::string> grown = kWorldwidePort25;
  grown.push_back("52.96.0.0/14");
  EXPECT_EQ(rule_of(grown), std::make_pair(FeedRule::Growth, false));
}

TEST(FeedParse, Instances) {
  for (auto [word, inst] : std::vector<std::pair<const char*, Instance>>{{"Worldwide", Instance::Worldwide},
                                                                         {"worldwide", Instance::Worldwide},
                                                                         {"USGOVDoD", Instance::USGovDoD},
                                                                         {"usgovgcchigh", Instance::USGovGCCHigh},
                                                                         {"CHINA", Instance::China}})
    EXPECT_EQ(parse_instance(word), inst) << word;
  EXPECT_EQ(to_string(Instance::USGovGCCHigh), "USGovGCCHigh");
  EXPECT_NE(error_of([] { parse_instance("Germany"); }).find("Germany is retired"), std::string::npos);
}

// What scripts build on: every read command's -j output, produced by the real
// smtpgatectl against a real gate that has turned sources away, validated
// against docs/schema/*.schema.json (kept in step with docs/json-schema.md)
// by python3-jsonschema. The schemas are closed (additionalProperties false,
// every property required), so a renamed or new field fails here.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "fsutil.hpp"
#include "process.hpp"
#include "refusal_scene.hpp"

using sgtest::RefusalScene;

namespace {

class JsonSchema : public ::testing::Test {
 protected:
  // Runs each command with -j, saves its output, and validates them all.
  void check(RefusalScene& scene, const std::map<std::string, std::vector<std::string>>& commands) {
    std::vector<std::string> argv{"/usr/bin/python3", SG_SOURCE_DIR "/tests/check_json_schema.py",
                                  SG_SOURCE_DIR "/docs/schema"};
    for (const auto& [name, args] : commands) {
      std::vector<std::string> a{"-j"};
      a.insert(a.end(), args.begin(), args.end());
      sgtest::ProcResult r = scene.ctl(a);
      ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
      ASSERT_FALSE(r.out.empty()) << name;
      std::string file = scene.paths().state_dir + "/" + name + ".out.json";
      std::ofstream(file) << r.out;
      if (const char* keep = std::getenv("SMTPGATE_KEEP_JSON"))
        std::ofstream(std::string(keep) + "/" + name + ".json") << r.out;
      argv.push_back(name + "=" + file);
    }
    sgtest::ProcResult v = sgtest::run_here(argv);
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }
};

TEST_F(JsonSchema, EveryReadCommandMatchesItsSchemaOnAGateThatRefused) {
  RefusalScene scene("schema");
  scene.send_stories();
  check(scene, {{"status", {"status"}},
                {"ranges-list", {"ranges", "list"}},
                {"stats", {"stats"}},
                {"explain", {"explain", RefusalScene::kPending}},
                {"feed-status", {"feed", "status"}},
                {"top", {"top"}},
                {"drops", {"drops"}}});
}

TEST_F(JsonSchema, TheOtherShapesMatchToo) {
  // Admitted (eop_code null), an IPv6 deny, top filtered to nothing.
  RefusalScene scene("schema2");
  scene.syn(RefusalScene::kPartnerV6);
  check(scene, {{"explain", {"explain", RefusalScene::kEop}},
                {"top", {"top", "--origin", "feed-removed"}},
                {"drops", {"drops", "--since", "5m"}}});
}

TEST_F(JsonSchema, StatusAndRangesWithNoGateLoadedMatchToo) {
  RefusalScene scene("schema4");
  std::string dir = scene.paths().state_dir;
  std::vector<std::string> argv{"/usr/bin/python3", SG_SOURCE_DIR "/tests/check_json_schema.py",
                                SG_SOURCE_DIR "/docs/schema"};
  for (const auto& [name, args] :
       std::map<std::string, std::vector<std::string>>{{"status", {"status"}}, {"ranges-list", {"ranges", "list"}}}) {
    std::vector<std::string> a{
        sgtest::binary("smtpgatectl"), "--pin-dir", "/sys/fs/bpf/sgt-nothing-pinned-here", "--state-dir", dir, "-j"};
    a.insert(a.end(), args.begin(), args.end());
    sgtest::ProcResult r = sgtest::run_here(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ASSERT_FALSE(nlohmann::json::parse(r.out)["loaded"].get<bool>());
    std::ofstream(dir + "/" + name + ".json") << r.out;
    argv.push_back(name + "=" + dir + "/" + name + ".json");
  }
  sgtest::ProcResult v = sgtest::run_here(argv);
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(JsonSchema, AFieldTheSchemaDoesNotKnowFails) {
  RefusalScene scene("schema3");
  std::string file = scene.paths().state_dir + "/status.json";
  sgtest::ProcResult r = scene.ctl({"-j", "status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(r.out);
  doc["acton"] = doc["action"];  // a renamed field
  doc.erase("action");
  std::ofstream(file) << doc.dump();
  sgtest::ProcResult v = sgtest::run_here({"/usr/bin/python3", SG_SOURCE_DIR "/tests/check_json_schema.py",
                                           SG_SOURCE_DIR "/docs/schema", "status=" + file});
  EXPECT_EQ(v.exit_code, 1) << v.out;
  EXPECT_NE(v.out.find("acton"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("'action' is a required property"), std::string::npos) << v.out;
}

}  // namespace

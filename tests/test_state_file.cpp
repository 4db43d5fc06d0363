// read_state_file: every state file is read the same way; what does not
// parse, or is larger than any file smtpgate writes, is set aside.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "error.hpp"
#include "state.hpp"
#include "state_file.hpp"

using namespace smtpgate;
namespace fs = std::filesystem;

namespace {

class StateFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = "/tmp/sgt" + std::to_string(::getpid()) + "-statefile";
    fs::remove_all(dir);
    fs::create_directory(dir);
    path = dir + "/x.json";
  }
  void TearDown() override { fs::remove_all(dir); }

  void write(const std::string& text) { std::ofstream(path, std::ios::binary) << text; }
  // The files set aside, PATH.corrupt-TIME.
  std::vector<std::string> aside() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename().string().rfind("x.json.corrupt-", 0) == 0) out.push_back(e.path().string());
    return out;
  }

  std::string dir, path;
};

TEST_F(StateFile, AMissingFileIsNotParsed) {
  bool parsed = false, corrupt = false;
  EXPECT_FALSE(read_state_json(
      path, [&](const nlohmann::json&) { parsed = true; }, [&](const CorruptFile&) { corrupt = true; }));
  EXPECT_FALSE(parsed);
  EXPECT_FALSE(corrupt);
}

TEST_F(StateFile, AGoodFileIsParsedAndStays) {
  write("{\"a\": 1}");
  int a = 0;
  EXPECT_TRUE(read_state_json(
      path, [&](const nlohmann::json& j) { a = j.at("a").get<int>(); }, [](const CorruptFile&) { FAIL(); }));
  EXPECT_EQ(a, 1);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(aside().empty());
}

TEST_F(StateFile, WhatDoesNotParseIsSetAsideAndReported) {
  write("{\"a\": ");
  CorruptFile seen;
  EXPECT_TRUE(read_state_json(
      path, [](const nlohmann::json&) {}, [&](const CorruptFile& c) { seen = c; }));
  EXPECT_EQ(seen.path, path);
  EXPECT_NE(seen.cause.find("parse error"), std::string::npos) << seen.cause;
  ASSERT_EQ(aside().size(), 1u);
  EXPECT_EQ(seen.moved_to, aside()[0]);
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(StateFile, WhatTheParserRefusesIsSetAsideWithItsMessage) {
  write("{}");
  CorruptFile seen;
  read_state_json(
      path, [](const nlohmann::json&) { throw InputError("no ranges"); }, [&](const CorruptFile& c) { seen = c; });
  EXPECT_EQ(seen.cause, "no ranges");
  EXPECT_EQ(aside().size(), 1u);
}

TEST_F(StateFile, WithoutSetAsideACorruptFileStaysWhereItIs) {
  write("not json");
  CorruptFile seen;
  seen.moved_to = "unset";
  read_state_json(
      path, [](const nlohmann::json&) {}, [&](const CorruptFile& c) { seen = c; }, false);
  EXPECT_TRUE(seen.moved_to.empty());
  EXPECT_TRUE(fs::exists(path));
  EXPECT_TRUE(aside().empty());
}

TEST_F(StateFile, AFileLargerThanTheBoundIsCorruptAndNotRead) {
  write("{}");
  fs::resize_file(path, kMaxStateFileBytes + 1);  // sparse: costs no disk
  bool parsed = false;
  CorruptFile seen;
  read_state_file(
      path, [&](const std::string&) { parsed = true; }, [&](const CorruptFile& c) { seen = c; });
  EXPECT_FALSE(parsed);
  EXPECT_NE(seen.cause.find("larger than"), std::string::npos) << seen.cause;
  EXPECT_EQ(aside().size(), 1u);
}

// Only ranges.json, read as a stream, may be larger than the bound of the
// files parsed as a whole document (a million ranges are about 115 MiB).
TEST_F(StateFile, OnlyRangesJsonMayExceedTheDocumentBound) {
  std::string head = R"({"version": 1, "ranges": [{"cidr": "40.92.0.0/15"}]})";
  std::string text = head + std::string(kMaxStateFileBytes + 1 - head.size(), ' ');
  std::ofstream(dir + "/ranges.json", std::ios::binary) << text;
  auto rs = StateStore(dir).operator_ranges();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].cidr, Cidr::parse("40.92.0.0/15"));

  std::ofstream(path, std::ios::binary) << text;
  bool parsed = false;
  CorruptFile seen;
  read_state_json(
      path, [&](const nlohmann::json&) { parsed = true; }, [&](const CorruptFile& c) { seen = c; });
  EXPECT_FALSE(parsed);
  EXPECT_NE(seen.cause.find("larger than"), std::string::npos) << seen.cause;
}

TEST_F(StateFile, WhatOnCorruptThrowsIsThrown) {
  write("[");
  EXPECT_THROW(
      read_state_json(
          path, [](const nlohmann::json&) {}, [](const CorruptFile& c) { throw InputError(c.path + " is corrupt"); }),
      InputError);
}

}  // namespace

// ranges.json, read as a stream and written range by range: the same text
// and the same ranges as through a document tree.
TEST_F(StateFile, RangesJsonIsWrittenAsTheDocumentTreeWouldBe) {
  std::vector<OperatorRange> rs{
      {Cidr::parse("40.92.0.0/15"), RuleKind::Admit, "", 1796670507},
      {Cidr::parse("2a01:111:f400::/48"), RuleKind::Deny, "quote \" back\\slash, caf\xc3\xa9", -5},
  };
  for (size_t n : {size_t(0), size_t(1), size_t(2)}) {
    std::vector<OperatorRange> part(rs.begin(), rs.begin() + n);
    StateStore(dir).save_operator_ranges(part);
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : part)
      arr.push_back(
          {{"cidr", r.cidr.str()}, {"kind", to_string(r.kind)}, {"comment", r.comment}, {"added", r.added_unix}});
    std::ifstream in(dir + "/ranges.json", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, nlohmann::json({{"version", 1}, {"ranges", arr}}).dump(2) + "\n") << n;
    EXPECT_EQ(StateStore(dir).operator_ranges(), part) << n;
  }
}

TEST_F(StateFile, RangesJsonReadsDefaultsAndIgnoresOtherKeys) {
  std::ofstream(dir + "/ranges.json")
      << R"({"x": [1, {"ranges": 3}], "ranges": [{"cidr": "40.92.0.0/15", "note": {"a": [1, 2]}, "added": 7.0},)"
      << R"( {"kind": "deny", "cidr": "52.100.0.0/14", "comment": "c", "comment": "d", "more": [[]]}], "version": 1})";
  auto rs = StateStore(dir).operator_ranges();
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0], (OperatorRange{Cidr::parse("40.92.0.0/15"), RuleKind::Admit, "", 7}));
  EXPECT_EQ(rs[1], (OperatorRange{Cidr::parse("52.100.0.0/14"), RuleKind::Deny, "d", 0}));
}

TEST_F(StateFile, RangesJsonThatIsNotAListOfRangesIsSetAside) {
  for (const char* text :
       {R"([])", R"({"version": 1})", R"({"ranges": 3})", R"({"ranges": {}})", R"({"ranges": [{"kind": "admit"}]})",
        R"({"ranges": [{"cidr": 4}]})", R"({"ranges": [{"cidr": "40.92.0.0/15", "kind": 1}]})",
        R"({"ranges": [{"cidr": "40.92.0.0/15", "added": "x"}]})",
        R"({"ranges": [{"cidr": "40.92.0.0/15", "added": 1e300}]})",
        R"({"ranges": [{"cidr": "40.92.0.0/15", "comment": []}]})", R"({"ranges": [[]]})",
        R"({"ranges": ["40.92.0.0/15"]})", R"({"ranges": [{"cidr": "40.92.0.1/15"}]})",
        R"({"ranges": [{"cidr": "40.92.0.0/15"})"}) {
    fs::remove_all(dir);
    fs::create_directory(dir);
    std::ofstream(dir + "/ranges.json") << text;
    EXPECT_THROW(StateStore(dir).operator_ranges(), InputError) << text;
    EXPECT_FALSE(fs::exists(dir + "/ranges.json")) << text;
  }
}

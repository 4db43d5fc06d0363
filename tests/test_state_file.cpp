// read_state_file: every state file is read the same way; what does not
// parse, or is larger than any file smtpgate writes, is set aside.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "error.hpp"
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

TEST_F(StateFile, WhatOnCorruptThrowsIsThrown) {
  write("[");
  EXPECT_THROW(
      read_state_json(
          path, [](const nlohmann::json&) {}, [](const CorruptFile& c) { throw InputError(c.path + " is corrupt"); }),
      InputError);
}

}  // namespace

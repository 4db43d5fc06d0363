#include "refusal_scene.hpp"

#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "feed_other.hpp"
#include "feed_sync.hpp"
#include "fsutil.hpp"
#include "gate.hpp"
#include "packet_builder.hpp"
#include "process.hpp"

using namespace smtpgate;

namespace sgtest {

namespace {
ProgramOptions pinned_options(const Paths& p, uint32_t max_rules) {
  ensure_pin_dir(p.pin_dir);
  make_dirs(p.state_dir);
  ProgramOptions o;
  o.pin_dir = p.pin_dir;
  o.max_rules = max_rules;
  return o;
}

Paths scene_paths(const std::string& tag) {
  std::string t = "sgt" + std::to_string(::getpid()) + tag;
  return Paths{"/sys/fs/bpf/" + t, "/tmp/" + t + "-state"};
}
}  // namespace

RefusalScene::RefusalScene(const std::string& tag, uint32_t max_rules)
    : paths_(scene_paths(tag)), gate_(pinned_options(paths_, max_rules)) {
  int64_t now = ::time(nullptr);
  add_range(paths_, OperatorRange{Cidr::parse("2001:db8:77::/48"), RuleKind::Deny, "partner's old relay", 0}, true);

  FeedStatus f;
  f.instance = "Worldwide";
  FeedSnapshot applied;
  applied.version = kAppliedVersion;
  applied.source = "https://endpoints.office.com/endpoints/Worldwide";
  applied.fetched_at = now - 7200;
  applied.set_ids = {10};
  applied.ranges = {Cidr::parse("40.92.0.0/15"), Cidr::parse("2a01:111:f400::/48")};
  applied.effective_dates[Cidr::parse("40.92.0.0/15")] = "20251201";
  f.applied = applied;
  f.latest_version = kRejectedVersion;
  f.last_check = now - 60;
  f.last_success = now - 7200;
  f.last_error = std::string("feed version ") + kRejectedVersion +
                 " is refused: it would remove 1 of the 2 current ranges (more than max_removal_share 40%)";
  f.rejected =
      RejectedVersion{kRejectedVersion, f.last_error, now - 60,
                      applied.source,   {10},         {Cidr::parse("40.92.0.0/15"), Cidr::parse("52.100.0.0/14")}};
  write_feed_status(paths_.state_dir, f);

  OtherInstanceSet dod;
  dod.instance = Instance::USGovDoD;
  dod.version = "2025120100";
  dod.source = "https://endpoints.office.com/endpoints/USGovDoD";
  dod.fetched_at = now - 7200;
  dod.set_ids = {6};
  dod.ranges = {Cidr::parse("23.103.191.0/24"), Cidr::parse("2001:489a:2202::/62")};
  dod.last_check = now - 60;
  dod.next_check = now + 3600;
  write_other_instances(paths_.state_dir, {dod});

  GateLock lock(paths_);
  if (!republish_if_pinned(paths_)) throw std::runtime_error("scene: no gate pinned at " + paths_.pin_dir);
  gate_.maps().set_config(GateConfig{Action::Drop, {25}, 1000});
}

RefusalScene::~RefusalScene() {
  std::error_code ec;
  std::filesystem::remove_all(paths_.pin_dir, ec);
  std::filesystem::remove_all(paths_.state_dir, ec);
}

uint32_t RefusalScene::syn(const std::string& src, int n, uint16_t port) {
  bool v6 = src.find(':') != std::string::npos;
  Packet p;
  p.eth();
  if (v6)
    p.ipv6(src, "2001:db8::1");
  else
    p.ipv4(src, "192.0.2.1");
  p.tcp(40000, port, SYN);
  uint32_t action = 0;
  for (int i = 0; i < n; i++) action = gate_.run(p.bytes()).action;
  return action;
}

void RefusalScene::send_stories() {
  syn(kDod, 3);
  syn(kPending, 2);
  syn(kStranger, 1);
  syn(kPartnerV6, 1);
  syn(kEop, 2);
}

ProcResult RefusalScene::ctl(std::vector<std::string> args) const {
  std::vector<std::string> argv{binary("smtpgatectl"), "--pin-dir", paths_.pin_dir, "--state-dir", paths_.state_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_here(argv);
}

nlohmann::json RefusalScene::ctl_json(std::vector<std::string> args) const {
  args.insert(args.begin(), "-j");
  ProcResult r = ctl(args);
  if (r.exit_code != 0) throw std::runtime_error("smtpgatectl exited " + std::to_string(r.exit_code) + ": " + r.err);
  return nlohmann::json::parse(r.out);
}

}  // namespace sgtest

#include "drops.hpp"

#include <bpf/libbpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "clock.hpp"
#include "error.hpp"
#include "fsutil.hpp"
#include "gate_maps.hpp"
#include "render_text.hpp"
#include "report_json.hpp"
#include "rule_naming.hpp"

namespace smtpgate {

using nlohmann::json;

namespace {

std::string judged_as_name(uint32_t j) {
  switch (j) {
    case SG_JUDGED_SYN: return "syn";
    case SG_JUDGED_FIRST_FRAGMENT: return "first_fragment";
    case SG_JUDGED_TINY_FRAGMENT: return "tiny_fragment";
    case SG_JUDGED_EXT_LIMIT: return "ext_limit";
  }
  return "unknown";
}

// One record of the drop log: the event, stamped unix_ns, and its rule.
json drop_record_json(const sg_event& ev, int64_t unix_ns, const json& rule) {
  char ifname[IF_NAMESIZE] = {};
  return {{"schema", kJsonSchemaVersion},
          {"time", rfc3339_ms(unix_ns)},
          {"unix_ns", unix_ns},
          {"source", recorded_address(ev.family, ev.addr).address_str()},
          {"port", ev.dport},
          {"interface", if_indextoname(ev.ifindex, ifname) ? json(ifname) : json(nullptr)},
          {"verdict", verdict_name(ev.verdict)},
          {"reason", reason_name(ev.reason)},
          {"judged_as", judged_as_name(ev.judged_as)},
          {"rule_id", ev.rule_id},
          {"range", rule["range"]},
          {"kind", rule["kind"]},
          {"origin", rule["origin"]}};
}

// Appends records to the drop log in one write; rotates first when they
// would take it past max_bytes. Only the lock holder writes, so nobody else
// renames under it.
void append_to_drop_log(const std::string& state_dir, const std::vector<json>& records, size_t max_bytes) {
  if (records.empty()) return;
  std::string text;
  for (const auto& r : records) text += r.dump() + "\n";
  std::string path = drop_log_path(state_dir);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && size_t(st.st_size) + text.size() > max_bytes)
    if (::rename(path.c_str(), (path + ".1").c_str()) != 0) throw SystemError("rotate " + path, errno);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw SystemError("open " + path, errno);
  ssize_t w = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (w != ssize_t(text.size())) throw SystemError("append to " + path, w < 0 ? err : EIO);
}

}  // namespace

struct DropRecorder::Impl {
  Paths paths;
  size_t max_bytes = kDefaultDropLogBytes;
  std::optional<FileLock> lock;
  std::optional<GateMaps> maps;
  ring_buffer* rb = nullptr;
  std::unique_ptr<RuleNamer> names;  // after maps: refers to them
  std::vector<json> batch;
  int64_t offset_ns = 0;  // monotonic to Unix time, one value per batch

  static std::atomic<int> held_here;

  ~Impl() {
    if (rb) ring_buffer__free(rb);
    if (lock) held_here--;
  }

  // Reading the two clocks one after the other jitters by tens of ns: a
  // record of the next batch stamped in the same tick would seem older than
  // one of this batch. The offset follows only a step of more than 1 ms.
  void update_offset() {
    int64_t now = monotonic_offset_ns();
    if (offset_ns == 0 || now - offset_ns > 1000000 || offset_ns - now > 1000000) offset_ns = now;
  }

  // Names a rule from the event's source, looking up only what it needs
  // (RuleNamer): a publish costs no read of the whole allowlist.
  RuleNamer& namer() {
    if (!names) names = std::make_unique<RuleNamer>(*maps, paths.state_dir);
    return *names;
  }

  static int on_event(void* ctx, void* data, size_t size) {
    if (size < sizeof(sg_event)) return 0;
    sg_event ev;
    std::memcpy(&ev, data, sizeof(ev));
    Impl& self = *static_cast<Impl*>(ctx);
    json rule = self.namer().rule(ev.rule_id, recorded_address(ev.family, ev.addr));
    self.batch.push_back(drop_record_json(ev, int64_t(ev.ts_ns) + self.offset_ns, rule));
    return 0;
  }
};

std::unique_ptr<DropRecorder> DropRecorder::try_take(const Paths& paths, size_t max_log_bytes) {
  auto impl = std::make_unique<Impl>();
  impl->paths = paths;
  impl->max_bytes = max_log_bytes;
  impl->maps.emplace(GateMaps::open_pinned(paths.pin_dir));
  make_dirs(paths.state_dir, 0755);
  impl->lock = FileLock::try_take(drops_lock_path(paths.state_dir));
  if (!impl->lock) return nullptr;
  Impl::held_here++;
  impl->rb = ring_buffer__new(impl->maps->events_fd(), &Impl::on_event, impl.get(), nullptr);
  if (!impl->rb) throw SystemError("ring buffer of " + paths.pin_dir + "/events", errno);
  std::unique_ptr<DropRecorder> r(new DropRecorder());
  r->impl_ = std::move(impl);
  return r;
}

std::atomic<int> DropRecorder::Impl::held_here{0};

DropRecorder::~DropRecorder() = default;

bool DropRecorder::recording_here() { return Impl::held_here > 0; }

std::unique_ptr<DropRecorder> DropConsumerWatch::try_take(const Paths& paths) {
  std::string problem;
  try {
    if (auto r = DropRecorder::try_take(paths)) {
      if (!problem_.empty()) spdlog::warn("drops recorded again: this process reads the events ring");
      problem_.clear();
      return r;
    }
    problem = "the events ring is read by " + describe(lock_holder(drops_lock_path(paths.state_dir))) +
              ", which holds " + drops_lock_path(paths.state_dir) + "; taken over when it ends";
  } catch (const std::exception& e) {
    problem = e.what();
  }
  if (problem != problem_) spdlog::error("drops not recorded here: {}", problem);
  problem_ = problem;
  return nullptr;
}

int DropRecorder::epoll_fd() const { return ring_buffer__epoll_fd(impl_->rb); }

std::vector<json> DropRecorder::drain() { return wait(0); }

std::vector<json> DropRecorder::wait(int timeout_ms) {
  impl_->batch.clear();
  impl_->update_offset();
  int rc = timeout_ms > 0 ? ring_buffer__poll(impl_->rb, timeout_ms) : ring_buffer__consume(impl_->rb);
  if (rc < 0 && rc != -EINTR) throw SystemError("read the events ring buffer", -rc);
  append_to_drop_log(impl_->paths.state_dir, impl_->batch, impl_->max_bytes);
  return std::move(impl_->batch);
}

void stream_drops(const Paths& paths, int64_t since_s, bool follow, const std::function<void(const json&)>& emit) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  // A second of margin: the program's clock ticks coarsely, so a SYN just
  // after this call may carry a stamp just before it.
  int64_t from = (int64_t(now.tv_sec) - since_s - 1) * 1000000000 + now.tv_nsec;
  std::unique_ptr<DropRecorder> consumer = DropRecorder::try_take(paths);
  if (!consumer) {
    if (!follow) {
      for (const auto& r : read_drop_log(paths.state_dir, from)) emit(r);
      return;
    }
    DropLogTail tail(paths.state_dir, from);
    while (!consumer) {
      for (const auto& r : tail.next(500)) emit(r);
      consumer = DropRecorder::try_take(paths);
    }
    // The consumer went away: what it logged last, then the ring, read here.
    for (const auto& r : tail.next(0)) emit(r);
  } else {
    consumer->drain();
    for (const auto& r : read_drop_log(paths.state_dir, from)) emit(r);
  }
  while (follow)
    for (const auto& r : consumer->wait(500)) emit(r);
}

int64_t parse_duration_s(const std::string& text) {
  auto bad = [&] {
    return InputError("duration '" + text + "': use a number of seconds or one with a unit, e.g. 90s, 15m, 2h, 1d");
  };
  if (text.empty()) throw bad();
  int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || n < 0) throw bad();
  std::string unit(end, text.data() + text.size());
  int64_t mult = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
  if (mult == 0 || n > INT64_MAX / mult / 1000000000) throw bad();
  return n * mult;
}

std::string render_drop(const json& r) {
  auto s = json_text;  // each value as the text views print it
  const json gap = r.value("feed_gap", json(nullptr));
  return fmt::format("{} {} {} > port {} {} range {} origin {}{}{}\n", s(r["time"]), s(r["interface"]), s(r["source"]),
                     s(r["port"]), s(r["verdict"]), s(r["range"]), s(r["origin"]),
                     r["judged_as"] == "syn" ? "" : " (" + s(r["judged_as"]) + ")",
                     gap.is_object() ? " FEED GAP (EOP host " + s(gap["name"]) + ")" : "");
}

}  // namespace smtpgate

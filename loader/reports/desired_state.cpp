#include "desired_state.hpp"

#include <sys/stat.h>
#include <time.h>

#include <functional>

#include "desired_set.hpp"
#include "feed_ranges.hpp"
#include "state.hpp"

namespace smtpgate {

std::vector<DesiredRange> read_desired_ranges(const std::string& state_dir) {
  return desired_ranges(StateStore(state_dir));
}

bool is_feed_origin(const std::string& o) {
  return o == origin::kFeed || o == origin::kFeedPending || o == origin::kFeedGrace || o == origin::kFeedRemoved ||
         o == origin::kFeedOther || o == origin::kEopConfirmed;
}

FeedCover::FeedCover(const std::vector<DesiredRange>& desired) {
  for (const auto& d : desired)
    if (is_feed_origin(d.origin)) ranges_.insert(d.cidr);
}

bool FeedCover::contains(const Cidr& address) const {
  if (ranges_.empty()) return false;
  for (unsigned len = 0; len <= address.max_len(); len++)
    if (ranges_.count(Cidr::from_bytes(address.family(), address.bytes().data(), len))) return true;
  return false;
}

namespace {

// A file's identity when it was read: a change to any part means it changed.
struct FileId {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{};
  bool operator==(const FileId& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

FileId identify(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return FileId{true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

}  // namespace

// Some of the state directory's files and the desired ranges they hold, with
// the identity of each file when it was read.
struct DesiredState::Part {
  std::vector<std::string> files;
  std::function<std::vector<DesiredRange>()> load;
  std::optional<std::vector<FileId>> read_as;  // nullopt: never read
  std::vector<DesiredRange> ranges;
  std::unique_ptr<DesiredIndex> index;
  FeedCover feed;

  // Reads the files again if any changed since they were read. Identities
  // are taken first: a change during the read is seen by the next call.
  void refresh() {
    std::vector<FileId> now;
    for (const auto& f : files) now.push_back(identify(f));
    if (read_as && *read_as == now) return;
    index.reset();
    ranges = load();
    index = std::make_unique<DesiredIndex>(ranges);
    feed = FeedCover(ranges);
    read_as = std::move(now);
  }

  // The entry's ranges of this part: the first of the same kind, the first.
  std::pair<const DesiredRange*, const DesiredRange*> find(const TrieEntry& e) {
    refresh();
    const DesiredRange* any = index->find(e);
    return {any && any->kind == e.kind ? any : nullptr, any};
  }
};

DesiredState::DesiredState(std::string state_dir)
    : dir_(std::move(state_dir)), operator_(std::make_unique<Part>()), feed_(std::make_unique<Part>()) {
  // The two halves of desired_ranges(), each from its own files.
  operator_->files = {dir_ + "/ranges.json"};
  operator_->load = [dir = dir_] { return operator_desired_ranges(StateStore(dir).operator_ranges()); };
  // feed_desired_ranges() reads feed-gaps.json too (eop-confirmed ranges).
  feed_->files = {dir_ + "/feed.json", dir_ + "/feed-other.json", dir_ + "/feed-gaps.json"};
  feed_->load = [dir = dir_] { return feed_desired_ranges(dir); };
}

DesiredState::~DesiredState() = default;

std::optional<DesiredRange> DesiredState::explain(const TrieEntry& entry) {
  // desired_ranges() lists the operator's ranges first, then the feed's.
  auto [op_same, op_any] = operator_->find(entry);
  if (op_same) return *op_same;
  auto [feed_same, feed_any] = feed_->find(entry);
  if (feed_same) return *feed_same;
  if (op_any) return *op_any;
  if (feed_any) return *feed_any;
  return std::nullopt;
}

bool DesiredState::microsoft(const Cidr& address) {
  // Only the feed's files hold feed origins.
  feed_->refresh();
  return feed_->feed.contains(address);
}

}  // namespace smtpgate

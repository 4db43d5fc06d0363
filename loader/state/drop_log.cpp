#include "drop_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fsutil.hpp"

namespace smtpgate {

using nlohmann::json;

std::string drop_log_path(const std::string& state_dir) { return state_dir + "/drops.log"; }

std::string drops_lock_path(const std::string& state_dir) { return state_dir + "/drops.lock"; }

namespace {
void parse_lines(const std::string& text, int64_t since, std::vector<json>& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;  // a line still being written
    json r = json::parse(text.substr(pos, nl - pos), nullptr, false);
    pos = nl + 1;
    if (r.is_object() && r.value("unix_ns", int64_t{0}) >= since) out.push_back(std::move(r));
  }
}
}  // namespace

std::vector<json> read_drop_log(const std::string& state_dir, int64_t since_unix_ns) {
  std::vector<json> out;
  std::string path = drop_log_path(state_dir);
  for (const std::string& p : {path + ".1", path})
    if (file_exists(p)) parse_lines(read_file(p), since_unix_ns, out);
  return out;
}

DropLogTail::DropLogTail(std::string state_dir, int64_t from_unix_ns)
    : path_(drop_log_path(state_dir)), from_(from_unix_ns) {
  // The current file first: if it is rotated meanwhile, this fd still reads
  // it to its end and the new one follows.
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (file_exists(path_ + ".1")) parse_lines(read_file(path_ + ".1"), from_, backlog_);
}

DropLogTail::~DropLogTail() {
  if (fd_ >= 0) ::close(fd_);
}

void DropLogTail::reopen_if_rotated() {
  struct stat now {
  }, ours{};
  if (::stat(path_.c_str(), &now) != 0) return;
  if (fd_ >= 0 && ::fstat(fd_, &ours) == 0 && ours.st_ino == now.st_ino && ours.st_dev == now.st_dev) return;
  // Rotated (or created): what was left in the old file was read; the new
  // one is read from its start.
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  partial_.clear();
}

std::vector<json> DropLogTail::next(int timeout_ms) {
  std::vector<json> out = std::move(backlog_);
  backlog_.clear();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    char buf[65536];
    ssize_t n;
    while (fd_ >= 0 && (n = ::read(fd_, buf, sizeof(buf))) > 0) partial_.append(buf, n);
    size_t last = partial_.rfind('\n');
    if (last != std::string::npos) {
      parse_lines(partial_.substr(0, last + 1), from_, out);
      partial_.erase(0, last + 1);
    }
    reopen_if_rotated();
    if (!out.empty() || std::chrono::steady_clock::now() >= deadline) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace smtpgate

#include "fsutil.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "error.hpp"

namespace smtpgate {

namespace {
std::string parent_dir(const std::string& path) {
  auto p = std::filesystem::path(path).parent_path();
  return p.empty() ? "." : p.string();
}

void write_all(int fd, const std::string& content, const std::string& path) {
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw SystemError("write " + path, errno);
    }
    off += static_cast<size_t>(n);
  }
}
}  // namespace

void write_file_atomic(const std::string& path, const std::string& content, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw SystemError("create " + tmp, errno);
  try {
    write_all(fd, content, tmp);
    if (::fsync(fd) != 0) throw SystemError("fsync " + tmp, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("rename " + tmp + " to " + path, err);
  }
  int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SystemError("read " + path, errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string set_aside(const std::string& path) {
  std::string dest = path + ".corrupt-" + std::to_string(::time(nullptr));
  if (::rename(path.c_str(), dest.c_str()) != 0) throw SystemError("rename " + path, errno);
  return dest;
}

void make_dirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw SystemError("create directory " + path, ec.value());
  ::chmod(path.c_str(), mode);
}

FileLock::FileLock(const std::string& path, std::optional<std::chrono::milliseconds> wait) {
  // A directory (the pin dir) is locked through a read-only fd, as xdp-tools do.
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    fd_ = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  else
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw SystemError("open lock " + path, errno);
  const auto deadline = std::chrono::steady_clock::now() + wait.value_or(std::chrono::milliseconds(0));
  while (::flock(fd_, wait ? LOCK_EX | LOCK_NB : LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    if (err == EWOULDBLOCK && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    ::close(fd_);
    throw SystemError(err == EWOULDBLOCK ? "lock " + path + ": still held by another process after " +
                                               std::to_string(wait->count()) + " ms"
                                         : "lock " + path,
                      err);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace smtpgate

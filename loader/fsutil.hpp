// File-system helpers with the guarantees the state directory needs.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace smtpgate {

/// Writes content to path atomically: temp file in the same directory, fsync,
/// rename, fsync of the directory. On any failure the old file is untouched and
/// SystemError names the path.
void write_file_atomic(const std::string& path, const std::string& content, unsigned mode = 0644);
/// Reads a whole file; throws SystemError naming the path.
std::string read_file(const std::string& path);
/// True if path exists.
bool file_exists(const std::string& path);
/// Moves a file that could not be trusted aside as PATH.corrupt-<unix time>;
/// returns the new name.
std::string set_aside(const std::string& path);
/// Creates a directory and its parents (mode 0755 or as given).
void make_dirs(const std::string& path, unsigned mode = 0755);

/// An exclusive flock on a file, held for the object's lifetime. Serialises
/// every process that changes the gate (smtpgatectl, smtpgated).
class FileLock {
 public:
  /// Blocks until the lock on path (a directory, or a file created if
  /// missing) is held; with `wait`, at most that long, then throws
  /// SystemError (EWOULDBLOCK) naming the path.
  explicit FileLock(const std::string& path, std::optional<std::chrono::milliseconds> wait = std::nullopt);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace smtpgate

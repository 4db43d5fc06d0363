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
/// Creates a directory and its missing parents, each with mode (0755 or as
/// given, whatever the umask). A directory that exists keeps its mode.
void make_dirs(const std::string& path, unsigned mode = 0755);

/// Refuses a directory the gate keeps state or locks in when a user other
/// than root and this process's user could write into it: the directory
/// itself or one of its parents (a sticky parent apart, such as /tmp)
/// writable by others or by a group other than root's, or owned by another
/// user. A directory that does not exist yet is judged by the parents it
/// would be created in. Throws InputError naming `what` (e.g. "state_dir"),
/// the directory, its mode or owner, and the fix.
void check_private_dir(const std::string& path, const std::string& what);

/// An exclusive flock, held for the object's lifetime.
///
/// On a directory (the pin dir) the lock is taken through a read-only fd, as
/// xdp-tools do. A lock file is opened so that no other user can take it: it
/// lies in a private directory (check_private_dir), is created 0600 without
/// following a symbolic link, and must be a regular file of this user's; one
/// with a wider mode (left by an earlier version) is replaced, so that an fd
/// another user opened on it before locks nothing.
class FileLock {
 public:
  /// Blocks until the lock on path (a directory, or a lock file created if
  /// missing) is held; with `wait`, at most that long, then throws
  /// SystemError (EWOULDBLOCK) naming the path.
  explicit FileLock(const std::string& path, std::optional<std::chrono::milliseconds> wait = std::nullopt);
  /// Takes the lock without waiting; nullopt when another process holds it.
  static std::optional<FileLock> try_take(const std::string& path);
  ~FileLock();
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  FileLock() = default;
  int fd_ = -1;
};

/// The process that holds an flock on path, as /proc/locks names it.
struct LockHolder {
  int pid = 0;
  std::string command;  // from /proc/PID/comm; empty when not visible
};
/// nullopt when nobody holds it, or the holder is not visible from here
/// (another PID namespace, /proc/locks hidden).
std::optional<LockHolder> lock_holder(const std::string& path);
/// "pid 1234 (smtpgated)", or "a process not visible from here".
std::string describe(const std::optional<LockHolder>& holder);

}  // namespace smtpgate

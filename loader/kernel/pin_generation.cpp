#include "pin_generation.hpp"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "error.hpp"

namespace smtpgate {

namespace {
constexpr const char* kLive = "live";
constexpr const char* kGenPrefix = "gen-";

// N of a "gen-N" name, 0 when it is not one.
unsigned generation_number(const char* name) {
  if (std::strncmp(name, kGenPrefix, 4) != 0 || !name[4]) return 0;
  unsigned n = 0;
  for (const char* p = name + 4; *p; p++) {
    if (*p < '0' || *p > '9' || n > 100000000) return 0;
    n = n * 10 + unsigned(*p - '0');
  }
  return n;
}
}  // namespace

std::string live_maps_dir(const std::string& pin_dir) {
  char target[64];
  ssize_t n = ::readlink((pin_dir + "/" + kLive).c_str(), target, sizeof(target) - 1);
  if (n <= 0) return pin_dir;
  target[n] = '\0';
  // Only a generation of this directory: a link elsewhere is not followed.
  if (!generation_number(target)) return pin_dir;
  return pin_dir + "/" + target;
}

std::string new_generation_dir(const std::string& pin_dir) {
  unsigned highest = 0;
  if (DIR* d = ::opendir(pin_dir.c_str())) {
    while (dirent* e = ::readdir(d)) highest = std::max(highest, generation_number(e->d_name));
    ::closedir(d);
  } else {
    throw SystemError("read the pin directory " + pin_dir, errno);
  }
  std::string dir = pin_dir + "/" + kGenPrefix + std::to_string(highest + 1);
  if (::mkdir(dir.c_str(), 0700) != 0) throw SystemError("create " + dir, errno);
  return dir;
}

void make_live(const std::string& pin_dir, const std::string& maps_dir) {
  std::string name = maps_dir.substr(maps_dir.rfind('/') + 1);
  if (!generation_number(name.c_str())) throw SystemError(maps_dir + " is not a pin generation", EINVAL);
  // bpffs refuses names with a dot: the new link is "live_next".
  std::string next = pin_dir + "/live_next", live = pin_dir + "/" + kLive;
  ::unlink(next.c_str());
  if (::symlink(name.c_str(), next.c_str()) != 0) throw SystemError("create " + next, errno);
  if (::rename(next.c_str(), live.c_str()) != 0) {
    int err = errno;
    ::unlink(next.c_str());
    throw SystemError("point " + live + " at " + name, err);
  }
}

void retire_generation(const std::string& pin_dir, const std::string& maps_dir) {
  DIR* d = ::opendir(maps_dir.c_str());
  if (!d) {
    spdlog::warn("could not read the retired pin generation {}: {}", maps_dir, std::strerror(errno));
    return;
  }
  std::vector<std::string> pins;
  while (dirent* e = ::readdir(d))
    if (e->d_type == DT_REG) pins.push_back(e->d_name);  // bpffs shows pinned maps as regular files
  ::closedir(d);
  for (const auto& name : pins) {
    std::string path = maps_dir + "/" + name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("could not unpin {} of the retired gate: {}", path, std::strerror(errno));
  }
  if (maps_dir == pin_dir) return;
  if (::rmdir(maps_dir.c_str()) != 0 && errno != ENOENT)
    spdlog::warn("could not remove the retired pin generation {}: {}", maps_dir, std::strerror(errno));
}

void retire_all_but(const std::string& pin_dir, const std::string& keep) {
  std::vector<std::string> dirs{pin_dir};
  if (DIR* d = ::opendir(pin_dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_type == DT_DIR && generation_number(e->d_name)) dirs.push_back(pin_dir + "/" + e->d_name);
    ::closedir(d);
  }
  for (const auto& dir : dirs)
    if (dir != keep) retire_generation(pin_dir, dir);
}

}  // namespace smtpgate

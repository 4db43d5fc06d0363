#include "bpf_info.hpp"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>

#include "error.hpp"
#include "fd.hpp"

namespace smtpgate {

namespace {
template <typename Info>
std::optional<Info> info_of(int fd) {
  Info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return std::nullopt;
  return info;
}
}  // namespace

std::optional<bpf_map_info> try_map_info(int fd) { return info_of<bpf_map_info>(fd); }

bpf_map_info map_info(int fd, const std::string& what) {
  if (auto info = try_map_info(fd)) return *info;
  throw SystemError("read " + what + " info", errno);
}

std::optional<bpf_prog_info> try_prog_info(int fd) { return info_of<bpf_prog_info>(fd); }

bpf_prog_info prog_info(int fd, const std::string& what) {
  if (auto info = try_prog_info(fd)) return *info;
  throw SystemError("read " + what + " info", errno);
}

std::vector<uint32_t> prog_map_ids(uint32_t prog_id) {
  Fd prog(bpf_prog_get_fd_by_id(prog_id));
  if (prog.fd < 0) return {};
  // Asked twice: first how many, then the ids into a buffer of that size.
  auto counted = try_prog_info(prog.fd);
  if (!counted || counted->nr_map_ids == 0) return {};
  uint32_t n = counted->nr_map_ids;
  std::vector<uint32_t> ids(n);
  bpf_prog_info info{};
  info.nr_map_ids = n;
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog.fd, &info, &len) != 0) return {};
  ids.resize(std::min(n, info.nr_map_ids));
  return ids;
}

unsigned possible_cpus() {
  static int n = libbpf_num_possible_cpus();
  if (n <= 0) throw SystemError("count possible CPUs", -n);
  return unsigned(n);
}

}  // namespace smtpgate

// Which program is loaded: the kernel's run statistics and tag of a program
// (declared in gate_program.hpp).
#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <cerrno>

#include "bpf_info.hpp"
#include "error.hpp"
#include "fd.hpp"
#include "gate_program.hpp"

namespace smtpgate {

namespace {
// The tag in hex; "" when the kernel gives no info.
std::string tag_of(int prog_fd) {
  auto info = try_prog_info(prog_fd);
  if (!info) return "";
  std::string hex;
  for (unsigned char b : info->tag) hex += fmt::format("{:02x}", b);
  return hex;
}
}  // namespace

ProgramRunStats program_run_stats(uint32_t prog_id) {
  Fd prog(bpf_prog_get_fd_by_id(prog_id));
  if (prog.fd < 0) return {};
  auto info = try_prog_info(prog.fd);
  if (!info) return {};
  return {info->run_time_ns, info->run_cnt};
}

std::string program_tag(uint32_t prog_id) {
  Fd prog(bpf_prog_get_fd_by_id(prog_id));
  if (prog.fd < 0) return "";
  return tag_of(prog.fd);
}

std::string this_build_program_tag(const ProgramOptions& opts) {
  GateProgram program(opts);
  program.load();
  std::string tag = tag_of(program.prog_fd());
  if (tag.empty()) throw SystemError("read the tag of this version's program", errno);
  return tag;
}

}  // namespace smtpgate

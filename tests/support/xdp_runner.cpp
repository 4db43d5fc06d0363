#include "xdp_runner.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace sgtest {

namespace {
smtpgate::GateProgram loaded(smtpgate::ProgramOptions opts) {
  smtpgate::GateProgram p(opts);
  p.load();
  return p;
}
}  // namespace

XdpGate::XdpGate(smtpgate::ProgramOptions opts)
    : prog_(loaded(opts)), maps_(smtpgate::GateMaps::from_object(prog_.object())) {}

int XdpGate::map_fd(const char* name) const {
  bpf_map* m = bpf_object__find_map_by_name(prog_.object(), name);
  if (!m) throw std::runtime_error(std::string("no map named ") + name);
  return bpf_map__fd(m);
}

RunResult XdpGate::run(const std::vector<uint8_t>& frame) {
  RunResult r;
  r.out.resize(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()), .data_size_out = static_cast<uint32_t>(r.out.size()),
              .repeat = 1);
  int rc = bpf_prog_test_run_opts(prog_.prog_fd(), &opts);
  if (rc != 0) throw std::runtime_error(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(errno));
  r.action = opts.retval;
  r.out.resize(opts.data_size_out);
  return r;
}

}  // namespace sgtest

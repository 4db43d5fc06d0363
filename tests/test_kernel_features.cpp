// The kernel matrix catches a program that needs a newer kernel: needs_6_3
// calls a kfunc Linux 6.3 added. On this kernel it must load if the kernel is
// 6.3 or newer, and be refused with one clear line if older (Debian 12's 6.1,
// in the VM run).
#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <cstdlib>

#include "error.hpp"
#include "gate_program.hpp"

namespace {
std::string obj(const char* name) {
  if (const char* dir = std::getenv("SMTPGATE_BPF_DIR")) return std::string(dir) + "/" + name + ".bpf.o";
  return std::string(SG_BINARY_DIR) + "/bpf/" + name + ".bpf.o";
}

bool kernel_at_least(int major, int minor) {
  utsname u{};
  uname(&u);
  int ma = 0, mi = 0;
  std::sscanf(u.release, "%d.%d", &ma, &mi);
  return ma > major || (ma == major && mi >= minor);
}
}  // namespace

TEST(KernelFeatures, TheGateItselfLoadsHere) { EXPECT_NO_THROW(smtpgate::probe_object_file(obj("smtpgate"))); }

TEST(KernelFeatures, AProgramNeedingLinux63IsCaughtOnOlderKernels) {
  if (kernel_at_least(6, 3)) {
    EXPECT_NO_THROW(smtpgate::probe_object_file(obj("testprogs/needs_6_3")));
    return;
  }
  try {
    smtpgate::probe_object_file(obj("testprogs/needs_6_3"));
    FAIL() << "a kfunc of 6.3 was accepted by an older kernel";
  } catch (const smtpgate::SystemError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("lacks the kernel function bpf_dynptr_from_xdp"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line, not a verifier dump: " << msg;
  }
}

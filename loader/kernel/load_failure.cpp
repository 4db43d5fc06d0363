// Why the kernel refused to load a BPF object, in one line: explain_load_failure
// and probe_object_file (declared in gate_program.hpp).
#include <bpf/libbpf.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstring>

#include "error.hpp"
#include "gate_program.hpp"
#include "log.hpp"

namespace smtpgate {

namespace {
std::string kernel_release() {
  utsname u{};
  ::uname(&u);
  return u.release;
}

}  // namespace

std::string explain_load_failure(const std::string& log, int err) {
  std::string kernel = "this kernel (" + kernel_release() + ")";
  auto has = [&](const char* s) { return log.find(s) != std::string::npos; };
  if (has("not found in kernel or module BTFs")) {
    size_t p = log.find("extern (func ksym) '");
    std::string fn =
        p == std::string::npos ? "a kernel function" : log.substr(p + 20, log.find('\'', p + 20) - (p + 20));
    return kernel + " lacks the kernel function " + fn + " that the BPF program calls";
  }
  if (has("unknown func") || has("invalid func")) {
    size_t p = log.find("unknown func");
    if (p == std::string::npos) p = log.find("invalid func");
    std::string fn = log.substr(p, log.find('\n', p) - p);
    return kernel + " lacks a BPF helper smtpgate uses (" + fn + "); smtpgate needs Linux 6.1 or newer";
  }
  if (has("map_type") || has("Invalid map type") || (has("map '") && has("failed to create")))
    return kernel + " lacks a BPF map type smtpgate uses; smtpgate needs Linux 6.1 or newer";
  if (has("BPF program is too large") || has("too complex"))
    return "the verifier of " + kernel + " finds the smtpgate program too complex; smtpgate needs Linux 6.1 or newer";
  if (err == EPERM)
    return "loading BPF was refused (EPERM): run as root or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON";
  return "the verifier of " + kernel + " refused the smtpgate program (" + std::strerror(err) +
         "); run with -vv to see its log";
}

void probe_object_file(const std::string& path) {
  LibbpfCapture capture;
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) throw SystemError("open BPF object " + path, errno);
  int rc = bpf_object__load(obj);
  bpf_object__close(obj);
  if (rc) throw SystemError(explain_load_failure(capture.text(), -rc), -rc);
}

}  // namespace smtpgate

#include "log.hpp"

#include <bpf/libbpf.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace smtpgate {

namespace {
int g_verbosity = 0;
std::mutex g_capture_mu;
std::string* g_capture = nullptr;

void route(int level_debug, const char* fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string line(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  {
    std::lock_guard<std::mutex> lk(g_capture_mu);
    if (g_capture) *g_capture += line + "\n";
  }
  if (g_verbosity >= 2 || (g_verbosity >= 1 && !level_debug)) spdlog::debug("{}", line);
}

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  route(level == LIBBPF_DEBUG, fmt, ap);
  return 0;
}

int libxdp_print(enum libxdp_print_level level, const char* fmt, va_list ap) {
  route(level == LIBXDP_DEBUG, fmt, ap);
  return 0;
}
}  // namespace

void init_logging(int verbosity) {
  g_verbosity = verbosity;
  auto logger = spdlog::stderr_color_mt("smtpgate");
  // journald adds its own timestamps; a terminal gets short ones.
  if (std::getenv("JOURNAL_STREAM"))
    logger->set_pattern("%l: %v");
  else
    logger->set_pattern("%H:%M:%S %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug
                    : verbosity == 1 ? spdlog::level::info
                                     : spdlog::level::warn);
  libbpf_set_print(libbpf_print);
  libxdp_set_print(libxdp_print);
}

namespace {
// Before init_logging (tests, bench) libbpf's own printer writes to stderr;
// captures still need our hook.
struct HookOnce {
  HookOnce() {
    static std::once_flag once;
    std::call_once(once, [] {
      libbpf_set_print(libbpf_print);
      libxdp_set_print(libxdp_print);
    });
  }
};
}  // namespace

LibbpfCapture::LibbpfCapture() {
  HookOnce hook;
  std::lock_guard<std::mutex> lk(g_capture_mu);
  g_capture = new std::string;
}

LibbpfCapture::~LibbpfCapture() {
  std::lock_guard<std::mutex> lk(g_capture_mu);
  delete g_capture;
  g_capture = nullptr;
}

const std::string& LibbpfCapture::text() const { return *g_capture; }

}  // namespace smtpgate

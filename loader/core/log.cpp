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
// libbpf and libxdp call the print hook on the thread that called them: a
// capture collects its own thread's messages only (the metrics thread's
// queries never land in an attach's diagnosis, and nothing is shared).
thread_local std::string* g_capture = nullptr;

void route(int level_debug, const char* fmt, va_list ap) {
  char buf[4096];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string line(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (g_capture) *g_capture += line + "\n";
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
  spdlog::set_level(verbosity >= 2 ? spdlog::level::debug : verbosity == 1 ? spdlog::level::info : spdlog::level::warn);
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

LibbpfCapture::LibbpfCapture() : outer_(g_capture) {
  HookOnce hook;
  g_capture = &text_;
}

LibbpfCapture::~LibbpfCapture() { g_capture = outer_; }

const std::string& LibbpfCapture::text() const { return text_; }

}  // namespace smtpgate

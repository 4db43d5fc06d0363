// The memory latency curve of this machine, for reading bench/flood.sh's
// yardstick: nanoseconds per dependent load at random within a buffer of 8 KiB
// to 128 MiB (a pointer chase through one random cycle of its cache lines, so
// that no load can start before the one before it ends, and the hardware
// prefetchers cannot guess the next line). Where the figure jumps is where a
// working set stops fitting in a level of cache. Run in userspace, alone; a
// program under a flood shares the caches with the receive path and sees them
// smaller.
//
// Usage: mem_latency [--loads N]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

namespace {

constexpr size_t kLine = 64;

// ns per load of a chase through one random cycle of the lines of kib KiB.
double chase(size_t kib, size_t loads, std::mt19937_64& rng) {
  size_t bytes = kib * 1024, lines = bytes / kLine;
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::perror("mem_latency: mmap");
    std::exit(1);
  }
  char* base = static_cast<char*>(mem);
  std::vector<size_t> order(lines);
  std::iota(order.begin(), order.end(), size_t(0));
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t i = 0; i < lines; i++)
    *reinterpret_cast<char**>(base + order[i] * kLine) = base + order[(i + 1) % lines] * kLine;
  char* p = base;
  for (size_t i = 0; i < lines; i++) p = *reinterpret_cast<char**>(p);  // warm: one round
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < loads; i++) p = *reinterpret_cast<char**>(p);
  auto t1 = std::chrono::steady_clock::now();
  // Keeps the chase from being optimised away.
  if (p == nullptr) std::puts("");
  ::munmap(mem, bytes);
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / double(loads);
}

}  // namespace

int main(int argc, char** argv) {
  size_t loads = 4000000;
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--loads") == 0 && i + 1 < argc) {
      loads = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: mem_latency [--loads N]\n");
      return 2;
    }
  }
  if (loads == 0) {
    std::fprintf(stderr, "mem_latency: --loads must be above 0\n");
    return 2;
  }
  std::mt19937_64 rng(1);
  std::printf("ns per dependent load at random in a buffer (%zu loads each)\n", loads);
  for (size_t kib : {8, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 131072})
    std::printf("%8zu KiB: %6.1f ns\n", kib, chase(kib, loads, rng));
  return 0;
}

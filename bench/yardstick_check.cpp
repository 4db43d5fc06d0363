// Checks that each yardstick probe of bench/flood.sh (bpf/testprogs/
// read_<KiB>.bpf.c) reads a random bit of all of its S bytes, not of a part:
// its bitmap holds S bytes (elements x element size), and with one eighth of
// the bitmap set at a time, packets from random sources (BPF_PROG_TEST_RUN)
// find a set bit about one time in eight, for every eighth. A probe whose
// index reached only part of the bitmap would find none in the eighths it
// cannot reach.
//
// Usage: yardstick_check [KiB...] (default: every read_<KiB>.bpf.o built, the
// probes flood.sh runs). Run as root. Exit 0 if every probe passed, 1
// otherwise.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace {

constexpr int kRegions = 8;
constexpr int kPackets = 4000;  // per region: about 500 hits expected

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// An Ethernet/IPv4 frame from src (host order); the probes read nothing else.
std::vector<uint8_t> frame(uint32_t src) {
  std::vector<uint8_t> f(54, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  f[23] = 6;
  for (int i = 0; i < 4; i++) f[26 + i] = uint8_t(src >> (24 - 8 * i));
  return f;
}

bool fill(int fd, uint32_t first, uint32_t end, const std::vector<uint8_t>& value) {
  for (uint32_t k = first; k < end; k++)
    if (bpf_map_update_elem(fd, &k, value.data(), BPF_ANY) != 0) return false;
  return true;
}

// True if the probe of kib KiB passed; prints one line either way.
bool check(unsigned kib) {
  std::string path = std::string(SG_BPF_DIR) + "/testprogs/read_" + std::to_string(kib) + ".bpf.o";
  std::unique_ptr<bpf_object, void (*)(bpf_object*)> obj(bpf_object__open_file(path.c_str(), nullptr),
                                                         bpf_object__close);
  if (!obj || bpf_object__load(obj.get()) != 0) {
    std::printf("read_%u: cannot load %s\n", kib, path.c_str());
    return false;
  }
  bpf_map* map = bpf_object__find_map_by_name(obj.get(), "probe_bits");
  bpf_program* prog = bpf_object__next_program(obj.get(), nullptr);
  if (!map || !prog) {
    std::printf("read_%u: no probe_bits map or no program in %s\n", kib, path.c_str());
    return false;
  }
  uint64_t elems = bpf_map__max_entries(map), size = bpf_map__value_size(map);
  if (elems * size != uint64_t(kib) * 1024 || elems % kRegions != 0) {
    std::printf("read_%u: bitmap of %llu x %llu bytes, not %u KiB in %d equal parts\n", kib, (unsigned long long)elems,
                (unsigned long long)size, kib, kRegions);
    return false;
  }
  int mfd = bpf_map__fd(map), pfd = bpf_program__fd(prog);
  std::vector<uint8_t> ones(size, 0xff), zeros(size, 0);
  uint64_t seed = kib;
  bool ok = true;
  std::string hits;
  for (int r = 0; r < kRegions; r++) {
    uint32_t first = uint32_t(elems / kRegions * r), end = uint32_t(elems / kRegions * (r + 1));
    if (!fill(mfd, first, end, ones)) {
      std::printf("read_%u: cannot fill the bitmap\n", kib);
      return false;
    }
    int pass = 0;
    for (int i = 0; i < kPackets; i++) {
      std::vector<uint8_t> f = frame(uint32_t(splitmix(seed)));
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_size_in = uint32_t(f.size()), .repeat = 1);
      if (bpf_prog_test_run_opts(pfd, &o) != 0) {
        std::printf("read_%u: BPF_PROG_TEST_RUN failed\n", kib);
        return false;
      }
      pass += o.retval == XDP_PASS;
    }
    fill(mfd, first, end, zeros);
    // Expected kPackets / 8 = 500, standard deviation about 21: 400..600 is
    // almost 5 of them either way.
    bool region_ok = pass >= kPackets / kRegions * 4 / 5 && pass <= kPackets / kRegions * 6 / 5;
    ok &= region_ok;
    hits += (r ? " " : "") + std::to_string(pass);
  }
  std::printf(
      "read_%u: %llu x %llu bytes = %u KiB; set bits found per eighth of the bitmap, of %d packets each "
      "(expected about %d): %s: %s\n",
      kib, (unsigned long long)elems, (unsigned long long)size, kib, kPackets, kPackets / kRegions, hits.c_str(),
      ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<unsigned> sizes;
  for (int i = 1; i < argc; i++) {
    char* end = nullptr;
    unsigned long v = std::strtoul(argv[i], &end, 10);
    if (!*argv[i] || *end || v == 0 || v > (1u << 20)) {
      std::fprintf(stderr, "yardstick_check: '%s' is not a probe size in KiB (like 2048)\n", argv[i]);
      return 2;
    }
    sizes.push_back(unsigned(v));
  }
  if (sizes.empty()) {
    std::error_code ec;
    const std::regex probe("read_([0-9]+)\\.bpf\\.o");
    for (const auto& e : std::filesystem::directory_iterator(std::string(SG_BPF_DIR) + "/testprogs", ec)) {
      std::smatch m;
      std::string name = e.path().filename().string();
      if (std::regex_match(name, m, probe)) sizes.push_back(unsigned(std::stoul(m[1])));
    }
    std::sort(sizes.begin(), sizes.end());
    if (sizes.empty()) {
      std::fprintf(stderr, "yardstick_check: no read_<KiB>.bpf.o in %s/testprogs: build first\n", SG_BPF_DIR);
      return 1;
    }
  }
  libbpf_set_print(nullptr);
  bool ok = true;
  for (unsigned kib : sizes) ok &= check(kib);
  return ok ? 0 : 1;
}

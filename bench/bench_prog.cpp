// Per-packet cost of each packet class through the gate, against an empty
// XDP_PASS program measured in the same run, with BPF_PROG_TEST_RUN.
// Usage: bench_prog [REPEAT] (default 2000000). Run as root.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gate_maps.hpp"
#include "gate_program.hpp"
#include "testprogs/xdp_pass.skel.h"

using namespace smtpgate;

namespace {

// Frames built by hand (the bench does not link the test library).
std::vector<uint8_t> frame(bool v6, uint8_t proto, const uint8_t* src, uint16_t dport, uint8_t flags) {
  std::vector<uint8_t> f(14, 0);
  f[0] = 2;
  f[6] = 2;
  f[12] = v6 ? 0x86 : 0x08;
  f[13] = v6 ? 0xdd : 0x00;
  size_t l4 = proto == 6 ? 20 : 8;
  if (!v6) {
    std::vector<uint8_t> ip(20, 0);
    ip[0] = 0x45;
    ip[3] = 20 + l4;
    ip[8] = 64;
    ip[9] = proto;
    std::copy(src, src + 4, ip.begin() + 12);
    ip[16] = 192, ip[17] = 0, ip[18] = 2, ip[19] = 1;
    f.insert(f.end(), ip.begin(), ip.end());
  } else {
    std::vector<uint8_t> ip(40, 0);
    ip[0] = 0x60;
    ip[5] = l4;
    ip[6] = proto;
    ip[7] = 64;
    std::copy(src, src + 16, ip.begin() + 8);
    ip[24] = 0x20, ip[25] = 0x01, ip[26] = 0x0d, ip[27] = 0xb8, ip[39] = 1;
    f.insert(f.end(), ip.begin(), ip.end());
  }
  std::vector<uint8_t> l(l4, 0);
  l[0] = 0x9c, l[1] = 0x40;
  l[2] = dport >> 8, l[3] = dport & 0xff;
  if (proto == 6) {
    l[12] = 0x50;
    l[13] = flags;
  }
  f.insert(f.end(), l.begin(), l.end());
  return f;
}

// Average ns per run: one test run of `repeat` iterations (the kernel times
// the loop), or `repeat` test runs of one iteration when the program rewrites
// the packet (a reset would otherwise be judged again as a non-SYN).
double ns_per_packet(int fd, const std::vector<uint8_t>& f, int repeat, bool one_at_a_time) {
  std::vector<uint8_t> out(f.size() + 64);
  if (!one_at_a_time) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_size_in = uint32_t(f.size()), .repeat = repeat);
    if (bpf_prog_test_run_opts(fd, &o) != 0) {
      std::perror("BPF_PROG_TEST_RUN");
      std::exit(1);
    }
    return o.duration;
  }
  uint64_t total = 0;
  for (int i = 0; i < repeat; i++) {
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_out = out.data(),
                .data_size_in = uint32_t(f.size()), .data_size_out = uint32_t(out.size()), .repeat = 1);
    if (bpf_prog_test_run_opts(fd, &o) != 0) {
      std::perror("BPF_PROG_TEST_RUN");
      std::exit(1);
    }
    total += o.duration;
  }
  return double(total) / repeat;
}

double median3(int fd, const std::vector<uint8_t>& f, int repeat, bool one) {
  double a[3];
  for (double& x : a) x = ns_per_packet(fd, f, repeat, one);
  std::sort(a, a + 3);
  return a[1];
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = argc > 1 ? std::atoi(argv[1]) : 2000000;
  int single = std::max(repeat / 20, 1000);

  xdp_pass_bpf* empty = xdp_pass_bpf__open_and_load();
  if (!empty) {
    std::fprintf(stderr, "bench_prog: cannot load the empty XDP program (run as root)\n");
    return 1;
  }
  GateProgram gate(ProgramOptions{});
  gate.load();
  GateMaps maps = GateMaps::from_object(gate.object());
  std::vector<TrieEntry> ranges;
  const char* ten[] = {"40.92.0.0/15",       "40.107.0.0/16",      "52.100.0.0/14", "104.47.0.0/17",
                       "2a01:111:f400::/48", "2a01:111:f403::/48", "40.95.0.0/16",  "52.96.0.0/14",
                       "157.55.0.0/16",      "207.46.0.0/16"};
  uint32_t id = 1;
  for (const char* c : ten) ranges.push_back(TrieEntry{Cidr::parse(c), id++, RuleKind::Admit});
  maps.publish(ranges);

  const uint8_t eop[4] = {40, 92, 0, 10}, stranger[4] = {198, 51, 100, 7};
  struct Class {
    const char* name;
    std::vector<uint8_t> f;
    Action action;
    bool rewrites;
    double target;
  } classes[] = {
      {"non-TCP (UDP)", frame(false, 17, stranger, 25, 0), Action::Drop, false, 1.3},
      {"TCP, other port", frame(false, 6, stranger, 443, 0x02), Action::Drop, false, 1.3},
      {"TCP to 25, not SYN", frame(false, 6, stranger, 25, 0x10), Action::Drop, false, 1.3},
      {"admitted SYN", frame(false, 6, eop, 25, 0x02), Action::Drop, false, 2.0},
      {"dropped SYN", frame(false, 6, stranger, 25, 0x02), Action::Drop, false, 2.0},
      {"rejected SYN", frame(false, 6, stranger, 25, 0x02), Action::Reject, true, 2.0},
  };

  int efd = bpf_program__fd(empty->progs.xdp_pass);
  double floor_loop = median3(efd, classes[0].f, repeat, false);
  double floor_single = median3(efd, classes[0].f, single, true);
  std::printf("smtpgate per-packet cost, BPF_PROG_TEST_RUN, %d ranges loaded\n", int(ranges.size()));
  std::printf("empty XDP_PASS program: %.1f ns (loop of %d), %.1f ns (%d single runs)\n\n", floor_loop, repeat,
              floor_single, single);
  std::printf("%-22s %10s %8s %8s %s\n", "class", "ns/pkt", "ratio", "target", "");
  bool all_met = true;
  for (auto& c : classes) {
    maps.set_config(GateConfig{c.action, {25}, 0});
    double ns = median3(gate.prog_fd(), c.f, c.rewrites ? single : repeat, c.rewrites);
    double base = c.rewrites ? floor_single : floor_loop;
    double ratio = ns / base;
    bool met = ratio <= c.target;
    all_met &= met;
    std::printf("%-22s %10.1f %7.2fx %7.1fx %s\n", c.name, ns, ratio, c.target, met ? "met" : "MISSED");
  }
  std::printf("\n%s\n", all_met ? "all targets met" : "some targets missed");
  xdp_pass_bpf__destroy(empty);
  return 0;
}

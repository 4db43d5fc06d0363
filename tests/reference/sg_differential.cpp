// The long differential run: any number of packets, any seed.
//   build/tests/sg_differential --packets 1000000 --seed 7
// Every disagreement between the reference classifier and the program is
// written as a regression case (default: tests/regressions/) that the suite
// replays from then on. Exit 0: all agreed; 1: disagreements; 2: usage.
//   build/tests/sg_differential --classify CASE
// prints a case written by hand (setup and frame, no "expect" yet) with the
// reference's expectation and the program's outcome, ready to check in.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "differential.hpp"
#include "gate_maps.hpp"
#include "log.hpp"
#include "smtpgate_abi.h"

int main(int argc, char** argv) {
  smtpgate::init_logging(0);
  uint64_t packets = 1000000, seed = 1, per_setup = 2000;
  std::string save_dir = SG_REGRESSIONS_DIR;
  auto usage = [&](const std::string& why) {
    std::cerr << "sg_differential: " << why
              << "\nusage: sg_differential [--packets N] [--seed N] [--per-setup N] [--save-dir DIR]\n"
              << "       sg_differential --classify CASE\n";
    return 2;
  };
  if (argc == 3 && std::string(argv[1]) == "--classify") {
    try {
      std::ifstream in(argv[2]);
      if (!in) return usage(std::string("cannot read ") + argv[2]);
      std::stringstream text;
      text << in.rdbuf();
      sgref::Case c = sgref::from_text(text.str(), argv[2], true);
      sgref::Differential d;
      sgref::Outcome got = d.observe(c);  // first: a compile assigns the rule ids
      c.expected = sgref::classify(c.frame, c.setup);
      std::cout << sgref::to_text(c) << "# program: " << sgref::describe(got) << "\n";
      return got == c.expected ? 0 : 1;
    } catch (const std::exception& e) {
      std::cerr << "sg_differential: " << e.what() << "\n";
      return 1;
    }
  }
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage(a + " needs a value");
    std::string v = argv[++i];
    try {
      if (a == "--packets")
        packets = std::stoull(v);
      else if (a == "--seed")
        seed = std::stoull(v);
      else if (a == "--per-setup")
        per_setup = std::stoull(v);
      else if (a == "--save-dir")
        save_dir = v;
      else
        return usage("unknown option " + a);
    } catch (const std::exception&) {
      return usage(a + " takes a number, not '" + v + "'");
    }
  }
  if (per_setup == 0) return usage("--per-setup must be at least 1");
  auto t0 = std::chrono::steady_clock::now();
  sgref::RunStats st;
  try {
    sgref::Differential d;
    st = d.run(seed, packets, per_setup, 100);
  } catch (const std::exception& e) {
    std::cerr << "sg_differential: " << e.what() << "\n";
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("seed %llu: %llu packets, %llu setups, %llu judged, %zu disagreements, %.1f s\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(st.packets),
              static_cast<unsigned long long>(st.setups), static_cast<unsigned long long>(st.judged),
              st.disagreements.size(), secs);
  std::printf("  guarded SYNs Linux delivers %llu, of them let through by the reference %llu\n",
              static_cast<unsigned long long>(st.linux_guarded), static_cast<unsigned long long>(st.spec_bypasses));
  for (const auto& c : st.spec_bypass_cases)
    std::printf("REFERENCE BYPASS %s: %s\n%s", c.note.c_str(), sgref::describe(c.expected).c_str(),
                sgref::to_text(c).c_str());
  for (uint32_t v = 0; v < SG_VERDICT_MAX; v++)
    std::printf("  verdict %-8s %llu\n", smtpgate::verdict_name(v).c_str(),
                static_cast<unsigned long long>(st.by_verdict[v]));
  for (uint32_t r = 0; r < SG_REASON_MAX; r++)
    std::printf("  reason  %-15s %llu\n", smtpgate::reason_name(r).c_str(),
                static_cast<unsigned long long>(st.by_reason[r]));
  if (st.disagreements.empty()) return st.spec_bypasses ? 1 : 0;
  std::filesystem::create_directories(save_dir);
  for (const auto& d : st.disagreements) {
    auto name = std::filesystem::path(save_dir) /
                ("seed" + std::to_string(seed) + "-" + d.c.note.substr(d.c.note.rfind(' ') + 1) + ".case");
    std::ofstream(name) << sgref::to_text(d.c) << "# program: " << sgref::describe(d.got) << " (" << d.what
                        << " differs: " << d.kind << ")\n";
    std::printf("DISAGREE %s (%s): want %s, got %s -> %s\n", d.what.c_str(), d.kind.c_str(),
                sgref::describe(d.c.expected).c_str(), sgref::describe(d.got).c_str(), name.c_str());
  }
  return 1;
}

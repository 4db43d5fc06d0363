// The operator's ranges: ranges list, add, del and import.
#include <iostream>
#include <string>

#include "cidr.hpp"
#include "command.hpp"
#include "gate.hpp"
#include "report.hpp"

namespace smtpgate::ctl {
namespace {

int run_list(const Globals& g) {
  print(build_ranges(g.paths), g.as_json, render_ranges);
  return kExitOk;
}

struct AddOptions {
  std::string cidr;
  std::string comment;
  bool allow_reserved = false;
  bool deny = false;
};

void add_options(CLI::App& cmd, AddOptions& o) {
  cmd.add_option("CIDR", o.cidr, "Range, e.g. 40.95.0.0/16 or 2a01:111:f400::/48")->required();
  cmd.add_option("--comment", o.comment, "Why the range is there");
  cmd.add_flag("--allow-reserved", o.allow_reserved, "Accept special-purpose space (private, loopback, ...)");
  cmd.add_flag("--deny", o.deny, "Refuse this range, even inside an admitted one");
}

int run_add(const Globals& g, const AddOptions& o) {
  OperatorRange r{Cidr::parse(o.cidr), o.deny ? RuleKind::Deny : RuleKind::Admit, o.comment, 0};
  add_range(g.paths, r, o.allow_reserved);
  if (!g.as_json) std::cout << (o.deny ? "denied " : "admitted ") << r.cidr.str() << "\n";
  return kExitOk;
}

struct DelOptions {
  std::string cidr;
};

void del_options(CLI::App& cmd, DelOptions& o) {
  cmd.add_option("CIDR", o.cidr, "Range as listed by 'ranges list'")->required();
}

int run_del(const Globals& g, const DelOptions& o) {
  Cidr c = Cidr::parse(o.cidr);
  del_range(g.paths, c);
  if (!g.as_json) std::cout << "removed " << c.str() << "\n";
  return kExitOk;
}

struct ImportOptions {
  std::string file;
  bool allow_reserved = false;
  bool deny = false;
};

void import_options(CLI::App& cmd, ImportOptions& o) {
  cmd.add_option("FILE", o.file, "Range file")->required();
  cmd.add_flag("--allow-reserved", o.allow_reserved, "Accept special-purpose space");
  cmd.add_flag("--deny", o.deny, "Import the ranges as deny ranges");
}

int run_import(const Globals& g, const ImportOptions& o) {
  size_t n = import_ranges(g.paths, o.file, o.deny ? RuleKind::Deny : RuleKind::Admit, o.allow_reserved);
  if (!g.as_json) std::cout << "imported " << n << " new range(s) from " << o.file << "\n";
  return kExitOk;
}

CommandTable<Globals> ranges_commands() {
  return {
      command("list", "Every range the gate knows, with kind, origin and rule id", run_list),
      command("add", "Admit (or with --deny refuse) a range, now and after restarts", add_options, run_add),
      command("del", "Remove an operator range", del_options, run_del),
      command("import", "Add every range of a file (one CIDR per line, # comments)", import_options, run_import),
  };
}

}  // namespace

Command<Globals> ranges_command() { return group("ranges", "List or change the operator's ranges", ranges_commands); }

}  // namespace smtpgate::ctl

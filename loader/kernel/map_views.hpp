// The gate's mmap-able maps seen in this process's memory: a stride table,
// the prefilter or the summary (TableMapping), and gate_config
// (ConfigMapping). Used by GateMaps only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cidr.hpp"
#include "smtpgate_abi.h"
#include "stride_table.hpp"

namespace smtpgate {

/// A stride table, the prefilter or the summary mapped into this process
/// (BPF_F_MMAPABLE arrays of chunks, at least min_elements of them).
class TableMapping {
 public:
  /// Maps `fd`; throws SystemError when its values are not chunks or it has
  /// fewer than min_elements.
  explicit TableMapping(int fd, uint32_t min_elements = SG_SLOTS * 256 + 2);
  /// Maps only elements [first, first + count) of `fd` (first at a page
  /// boundary), which element() still numbers as in the map; the rest of
  /// the map is not to be asked for (the patch: one slot's part).
  TableMapping(int fd, uint32_t min_elements, uint32_t first, uint32_t count);
  TableMapping(const TableMapping&) = delete;
  TableMapping& operator=(const TableMapping&) = delete;
  ~TableMapping();

  sg_chunk* element(uint32_t i) { return chunks_ + (i - first_); }
  /// Chunks each slot may use: the pool after the roots, split in halves.
  uint32_t pool_per_slot() const { return (elements_ - SG_TABLE_FIRST_CHUNK) / 2; }
  uint32_t first_chunk_of(uint32_t slot) const { return slot * pool_per_slot(); }

  /// Writes a compiled image of one family into its slot: the root (IPv6),
  /// then its chunks; the /16 bits into `summary` (the summary map), IPv4's
  /// directory and groups into `prefilter` (the prefilter map).
  void write(uint32_t slot, Family family, const StrideImage& img, TableMapping& summary, TableMapping* prefilter);
  /// Walks a slot's table in place, as the program does.
  uint32_t walk(uint32_t slot, const Cidr& address, TableMapping& summary, TableMapping* prefilter);

 private:
  sg_chunk* chunks_ = nullptr;
  size_t bytes_ = 0;
  uint32_t elements_ = 0;
  uint32_t first_ = 0;  // the first element mapped
};

/// gate_config mapped into this process: the state is read and written as one
/// aligned 8-byte word, as the program loads it, and the configuration fields
/// are written without touching it.
class ConfigMapping {
 public:
  explicit ConfigMapping(int fd);
  ConfigMapping(const ConfigMapping&) = delete;
  ConfigMapping& operator=(const ConfigMapping&) = delete;
  ~ConfigMapping();

  sg_config* get() { return cfg_; }
  sg_state state() const;
  void set_state(const sg_state& st);

 private:
  sg_config* cfg_ = nullptr;
};

/// The state word of the gate_config map `config_fd`.
sg_state read_state(int config_fd);

}  // namespace smtpgate

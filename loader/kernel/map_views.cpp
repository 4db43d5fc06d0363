#include "map_views.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "bpf_info.hpp"
#include "error.hpp"
#include "map_names.hpp"

namespace smtpgate {

namespace {
uint32_t summary_index(uint32_t slot, Family family) { return SG_SUMMARY_INDEX(slot, family == Family::V4 ? 4 : 6); }

size_t config_bytes() {
  size_t page = size_t(::sysconf(_SC_PAGESIZE));
  return (sizeof(sg_config) + page - 1) / page * page;
}
}  // namespace

TableMapping::TableMapping(int fd, uint32_t min_elements) : TableMapping(fd, min_elements, 0, 0) {}

TableMapping::TableMapping(int fd, uint32_t min_elements, uint32_t first, uint32_t count) : first_(first) {
  bpf_map_info info = map_info(fd, "stride table");
  if (info.value_size != sizeof(sg_chunk) || info.max_entries < min_elements)
    throw SystemError("stride table has an unexpected layout", EINVAL);
  elements_ = info.max_entries;
  if (count == 0) count = elements_ - first;
  size_t offset = size_t(first) * sizeof(sg_chunk);
  if (first + uint64_t(count) > elements_ || offset % size_t(::sysconf(_SC_PAGESIZE)) != 0)
    throw SystemError("map part of the stride table", EINVAL);
  bytes_ = size_t(count) * sizeof(sg_chunk);
  void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(offset));
  if (p == MAP_FAILED) throw SystemError("map the stride table", errno);
  chunks_ = static_cast<sg_chunk*>(p);
}

TableMapping::~TableMapping() { ::munmap(chunks_, bytes_); }

void TableMapping::write(uint32_t slot, Family family, const StrideImage& img, TableMapping& summary,
                         TableMapping* prefilter) {
  std::copy(img.root.begin(), img.root.end(), element(slot * 256));
  std::copy(img.chunks.begin(), img.chunks.end(), element(SG_TABLE_FIRST_CHUNK + img.first_chunk));
  std::copy(img.summary.begin(), img.summary.end(), summary.element(summary_index(slot, family)));
  if (prefilter && !img.dir.empty()) {
    std::copy(img.dir.begin(), img.dir.end(), prefilter->element(SG_DIR_INDEX(slot)));
    std::copy(img.groups.begin(), img.groups.end(), prefilter->element(SG_GROUP_INDEX(slot)));
  }
}

uint32_t TableMapping::walk(uint32_t slot, const Cidr& address, TableMapping& summary, TableMapping* prefilter) {
  return stride_walk(StrideView{summary.element(summary_index(slot, address.family())), element(slot * 256),
                                element(SG_TABLE_FIRST_CHUNK), 0, elements_ - SG_TABLE_FIRST_CHUNK,
                                prefilter ? prefilter->element(SG_DIR_INDEX(slot)) : nullptr,
                                prefilter ? prefilter->element(SG_GROUP_INDEX(slot)) : nullptr},
                     address);
}

static_assert(offsetof(sg_config, state) % 8 == 0 && sizeof(sg_state) == 8, "the state is one aligned word");

ConfigMapping::ConfigMapping(int fd) {
  void* p = ::mmap(nullptr, config_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw SystemError(std::string("map ") + mapname::gate_config, errno);
  cfg_ = static_cast<sg_config*>(p);
}

ConfigMapping::~ConfigMapping() { ::munmap(cfg_, config_bytes()); }

sg_state ConfigMapping::state() const {
  uint64_t w = __atomic_load_n(reinterpret_cast<const uint64_t*>(&cfg_->state), __ATOMIC_ACQUIRE);
  sg_state st;
  std::memcpy(&st, &w, sizeof(st));
  return st;
}

void ConfigMapping::set_state(const sg_state& st) {
  uint64_t w;
  std::memcpy(&w, &st, sizeof(w));
  __atomic_store_n(reinterpret_cast<uint64_t*>(&cfg_->state), w, __ATOMIC_RELEASE);
}

sg_state read_state(int config_fd) { return ConfigMapping(config_fd).state(); }

}  // namespace smtpgate

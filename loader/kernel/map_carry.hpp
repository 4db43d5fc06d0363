// Carrying map contents from a gate of one layout to a gate of another: the
// values are copied field by field, matched by name through each map's BTF
// (the value types of bpf/smtpgate_abi.h as each version compiled them),
// never as raw bytes of a layout that may differ.
#pragma once

#include <cstdint>
#include <string>

struct btf;  // libbpf's

namespace smtpgate {

/// What to do with keys when the two maps have different entry counts.
enum class KeyMeaning {
  Index,  // key k means the same in both (a rule id): keys below both counts are carried
  Shape,  // keys are positions in a shape (hash sets, an enum matrix): carried only when the counts are equal
};

/// What carry_map did.
struct CarryResult {
  bool carried = false;
  uint32_t keys = 0;    // entries copied (an all-zero one needs no copy)
  uint32_t fields = 0;  // fields of a value matched by name (0: no BTF, copied whole at one size)
  std::string skipped;  // why nothing was carried, when carried is false
};

/// Copies the values of the array (or per-CPU array) map `from_fd` into
/// `to_fd`: for every key both hold, each field of the destination's value
/// type takes the field of the same name (and size) in the source's, through
/// nested structs and arrays; fields the source lacks are zero. Maps without
/// BTF are copied only when their value sizes are equal.
CarryResult carry_map(int from_fd, int to_fd, KeyMeaning keys);

/// The field layout of a value type as BTF `b` describes it: every field's
/// name, offset and size, through nested structs and arrays. Two versions
/// whose values have the same size can still differ here (fields reordered
/// or renamed); then their pins cannot be shared as they are.
std::string value_layout(const ::btf* b, uint32_t value_type_id);

/// value_layout of the map `fd` in the kernel; "" when it has no BTF.
std::string map_value_layout(int fd);

}  // namespace smtpgate

// Pin generations: where under the pin directory the live gate's maps are.
// A gate is pinned in PIN_DIR itself (as every gate before generations, and
// as bpfman pins it), or in PIN_DIR/gen-N with the symbolic link PIN_DIR/live
// naming gen-N. An upgrade to another map layout builds gen-N+1 beside the
// running gate and moves `live` in one rename (see docs/design.md).
#pragma once

#include <string>

namespace smtpgate {

/// The directory holding the live gate's maps: PIN_DIR/gen-N when PIN_DIR/live
/// names it, else PIN_DIR. The link is read once, so a caller opening several
/// maps opens them all from one generation.
std::string live_maps_dir(const std::string& pin_dir);

/// A fresh generation directory under pin_dir (gen-N, N one past the highest
/// there), created empty, mode 0700.
std::string new_generation_dir(const std::string& pin_dir);

/// Makes maps_dir (a generation under pin_dir) the live one: one rename of a
/// new symbolic link over PIN_DIR/live.
void make_live(const std::string& pin_dir, const std::string& maps_dir);

/// Unpins every map in maps_dir and removes the directory when it is a
/// generation; in pin_dir itself (a gate pinned before generations) only the
/// pins go, not the locks, `live` or the generations. Errors are logged, not
/// thrown: the gate already runs on another generation.
void retire_generation(const std::string& pin_dir, const std::string& maps_dir);

/// Retires every generation under pin_dir but `keep` (and the pins in pin_dir
/// itself): what a replacement left when it was killed half-way.
void retire_all_but(const std::string& pin_dir, const std::string& keep);

}  // namespace smtpgate

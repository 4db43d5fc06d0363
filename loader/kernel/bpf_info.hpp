// What the kernel tells of its BPF objects: a map's or a program's info
// (bpf_obj_get_info_by_fd), the maps a program uses, the possible CPUs that
// per-CPU values are laid out by.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace smtpgate {

/// The info of the map `fd`; nullopt (errno set) when the kernel gives none.
std::optional<bpf_map_info> try_map_info(int fd);
/// The info of the map `fd`. Throws SystemError "read WHAT info".
bpf_map_info map_info(int fd, const std::string& what);

/// The info of the program `fd`; nullopt (errno set) when the kernel gives none.
std::optional<bpf_prog_info> try_prog_info(int fd);
/// The info of the program `fd`. Throws SystemError "read WHAT info".
bpf_prog_info prog_info(int fd, const std::string& what);

/// The ids of the maps the loaded program `prog_id` uses; none when it is gone.
std::vector<uint32_t> prog_map_ids(uint32_t prog_id);

/// The number of possible CPUs: a per-CPU map's value is one 8-byte-aligned
/// slot per possible CPU. Throws SystemError when libbpf cannot tell.
unsigned possible_cpus();

}  // namespace smtpgate

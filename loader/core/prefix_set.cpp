// Sets of prefixes: their order, their aggregate, their difference. A
// million prefixes are sorted as packed integers, not compared as Cidrs.
#include <algorithm>
#include <iterator>

#include "cidr.hpp"

namespace smtpgate {

namespace {

using u128 = unsigned __int128;

// A prefix as integers: the address (IPv4 in a uint32_t, IPv6 in a 128-bit
// number), its length, and where it came from.
template <class U>
struct Packed {
  U addr;
  uint32_t len;
  uint32_t index;
};

template <class U>
constexpr unsigned kBits = sizeof(U) * 8;

template <class U>
U to_int(const Cidr& c) {
  U v = 0;
  for (unsigned i = 0; i < sizeof(U); i++) v = (v << 8) | c.bytes()[i];
  return v;
}

template <class U>
Cidr from_int(U v, unsigned len) {
  uint8_t b[16];
  for (unsigned i = sizeof(U); i-- > 0; v >>= 8) b[i] = static_cast<uint8_t>(v);
  return Cidr::from_bytes(sizeof(U) == 4 ? Family::V4 : Family::V6, b, len);
}

// The addresses a prefix of length len shares with its network.
template <class U>
U net_mask(unsigned len) {
  return len == 0 ? U(0) : ~U(0) << (kBits<U> - len);
}

// Stable LSD radix sort by (address, length): the 40-bit key (address, 8
// bits of length) in four passes of 11, 11, 11 and 7 bits (2 048 buckets
// stay in cache); a pass where every key has the same digit is skipped, and
// input already in order (a set read back sorted) is left as it is.
void radix_sort(std::vector<Packed<uint32_t>>& v) {
  auto less = [](const auto& a, const auto& b) { return a.addr != b.addr ? a.addr < b.addr : a.len < b.len; };
  if (std::is_sorted(v.begin(), v.end(), less)) return;
  if (v.size() < 256) {
    std::stable_sort(v.begin(), v.end(), less);
    return;
  }
  auto key = [](const Packed<uint32_t>& p) { return uint64_t(p.addr) << 8 | p.len; };
  std::vector<Packed<uint32_t>> tmp(v.size());
  constexpr unsigned kDigit = 11;
  std::vector<uint32_t> count(1u << kDigit);
  for (unsigned shift = 0; shift < 40; shift += kDigit) {
    const uint64_t mask = (uint64_t(1) << kDigit) - 1;
    std::fill(count.begin(), count.end(), 0);
    for (const auto& p : v) count[(key(p) >> shift) & mask]++;
    if (count[(key(v[0]) >> shift) & mask] == v.size()) continue;
    uint32_t sum = 0;
    for (auto& c : count) {
      uint32_t n = c;
      c = sum;
      sum += n;
    }
    for (const auto& p : v) tmp[count[(key(p) >> shift) & mask]++] = p;
    v.swap(tmp);
  }
}

void radix_sort(std::vector<Packed<u128>>& v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const auto& a, const auto& b) { return a.addr != b.addr ? a.addr < b.addr : a.len < b.len; });
}

// The prefixes of one family, packed and sorted.
template <class U>
std::vector<Packed<U>> packed_sorted(const std::vector<Cidr>& prefixes, Family family) {
  std::vector<Packed<U>> v;
  for (size_t i = 0; i < prefixes.size(); i++)
    if (prefixes[i].family() == family)
      v.push_back(Packed<U>{to_int<U>(prefixes[i]), prefixes[i].prefix_len(), static_cast<uint32_t>(i)});
  radix_sort(v);
  return v;
}

// aggregate() for one family's sorted prefixes, appended to out. Sorted by
// address then length: a prefix contained in the previous kept one comes
// right after it.
template <class U>
void aggregate_sorted(const std::vector<Packed<U>>& sorted, std::vector<Cidr>& out) {
  std::vector<Packed<U>> kept;
  kept.reserve(sorted.size());
  for (const auto& c : sorted) {
    if (!kept.empty()) {
      const auto& b = kept.back();
      if (c.len >= b.len && ((c.addr ^ b.addr) & net_mask<U>(b.len)) == 0) continue;
    }
    kept.push_back(c);
    // Merge adjacent siblings upwards: X/n and its sibling make X/(n-1).
    while (kept.size() >= 2) {
      auto& a = kept[kept.size() - 2];
      const auto& b = kept.back();
      if (a.len != b.len || a.len == 0) break;
      U parent = a.addr & net_mask<U>(a.len - 1);
      if (parent != (b.addr & net_mask<U>(b.len - 1))) break;
      kept.pop_back();
      a.addr = parent;
      a.len--;
    }
  }
  for (const auto& k : kept) out.push_back(from_int<U>(k.addr, k.len));
}

}  // namespace

std::vector<uint32_t> prefix_order(const std::vector<Cidr>& prefixes) {
  std::vector<uint32_t> order;
  order.reserve(prefixes.size());
  for (const auto& p : packed_sorted<uint32_t>(prefixes, Family::V4)) order.push_back(p.index);
  for (const auto& p : packed_sorted<u128>(prefixes, Family::V6)) order.push_back(p.index);
  return order;
}

std::vector<Cidr> aggregate(std::vector<Cidr> prefixes) {
  std::vector<Cidr> out;
  aggregate_sorted(packed_sorted<uint32_t>(prefixes, Family::V4), out);
  aggregate_sorted(packed_sorted<u128>(prefixes, Family::V6), out);
  return out;
}

CidrDiff diff(const std::vector<Cidr>& before, const std::vector<Cidr>& after) {
  std::vector<Cidr> b = before, a = after;
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  CidrDiff d;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(d.added));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(d.removed));
  return d;
}

}  // namespace smtpgate

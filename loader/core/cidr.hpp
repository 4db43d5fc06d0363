// One CIDR type for IPv4 and IPv6: parse, print, contain, aggregate, diff,
// and the special-purpose address registries that never belong in an allowlist.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtpgate {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

/// A network prefix (or, at full length, one address). Always in network form:
/// host bits are zero. IPv4 uses the first 4 bytes of bytes(), the rest zero.
class Cidr {
 public:
  /// Parses "a.b.c.d/n" or "x:y::z/n"; a bare address is a full-length prefix.
  /// Throws InputError naming the text (cut short); host bits set is an error
  /// that names the network form ("52.100.0.0/13 has host bits set; did you
  /// mean 52.96.0.0/13?"). Any byte but hex digits, ':', '.' and '/' is
  /// refused, and so is an IPv4-compatible IPv6 address (::a.b.c.d).
  static Cidr parse(std::string_view text);
  /// Parses a single address (no "/n"); throws InputError otherwise.
  static Cidr parse_address(std::string_view text);
  /// Builds from raw network-order bytes (4 or 16 used) and a length; host bits
  /// are cleared.
  static Cidr from_bytes(Family family, const uint8_t* bytes, unsigned prefix_len);

  Family family() const { return family_; }
  unsigned prefix_len() const { return prefix_len_; }
  /// Address length in bits: 32 or 128.
  unsigned max_len() const { return family_ == Family::V4 ? 32 : 128; }
  bool is_host() const { return prefix_len_ == max_len(); }
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  /// An IPv4 address as one integer, first byte highest.
  uint32_t v4_value() const {
    return uint32_t(bytes_[0]) << 24 | uint32_t(bytes_[1]) << 16 | uint32_t(bytes_[2]) << 8 | bytes_[3];
  }

  /// Canonical text: "40.92.0.0/15", "2a01:111:f400::/48" (RFC 5952).
  std::string str() const;
  /// Address only, without "/n".
  std::string address_str() const;

  /// True if every address of other lies in this prefix (same family).
  bool contains(const Cidr& other) const;
  /// True if the two prefixes share any address.
  bool overlaps(const Cidr& other) const;
  /// The prefix one bit shorter; requires prefix_len() > 0.
  Cidr parent() const;
  /// Last address of the prefix, as a full-length Cidr.
  Cidr last() const;

  /// Orders by family, then address, then length (shorter first).
  auto operator<=>(const Cidr&) const = default;

 private:
  // Member order is the ordering operator<=> uses: family, address, length.
  Family family_ = Family::V4;
  std::array<uint8_t, 16> bytes_{};
  uint8_t prefix_len_ = 0;
};

/// The smallest set of prefixes covering exactly the same addresses: merges
/// overlapping, nested and adjacent prefixes. Result sorted, both families.
/// Works on packed integers (IPv4 radix-sorted): a million prefixes in tens
/// of milliseconds.
std::vector<Cidr> aggregate(std::vector<Cidr> prefixes);

/// The order operator< gives, as indices into prefixes; stable (equal
/// prefixes keep their order). IPv4 is radix-sorted on packed (address,
/// length) keys, IPv6 compared as 128-bit integers.
std::vector<uint32_t> prefix_order(const std::vector<Cidr>& prefixes);

/// Exact difference of two prefix sets (compared as written, after sorting and
/// de-duplication): what is only in `after`, what is only in `before`.
struct CidrDiff {
  std::vector<Cidr> added;
  std::vector<Cidr> removed;
};
CidrDiff diff(const std::vector<Cidr>& before, const std::vector<Cidr>& after);

/// An entry of the IANA IPv4 or IPv6 Special-Purpose Address Registry.
struct SpecialPurpose {
  std::string_view block;     // "10.0.0.0/8"
  std::string_view name;      // "Private-Use"
  std::string_view rfc;       // "RFC 1918"
  std::string_view registry;  // "IANA IPv4 Special-Purpose Address Registry"
};

/// The special-purpose entry the prefix overlaps (contains or lies in), if any.
/// 0.0.0.0/0 and ::/0 overlap everything and are reported as such.
std::optional<SpecialPurpose> find_special_purpose(const Cidr& prefix);

/// Checks one range an operator or a feed wants admitted. Throws InputError
/// naming the range and the registry entry it hits unless allow_reserved.
void check_not_special(const Cidr& prefix, bool allow_reserved);

/// The longest text Cidr::parse reads (an IPv6 address with an embedded IPv4
/// one and a length is 49 bytes).
constexpr size_t kMaxCidrText = 64;
/// The longest comment a range may carry.
constexpr size_t kMaxCommentBytes = 256;

/// Checks a range's comment (range files, ranges add --comment): one line of
/// UTF-8 text, no control character, at most kMaxCommentBytes. Throws
/// InputError quoting it (cut short).
void check_comment(std::string_view comment);

/// Parses a range file: one CIDR per line, '#' starts a comment, blank lines
/// ignored. A line with a NUL, a control character or bytes that are not
/// UTF-8 is refused. Errors name the file and line ("ranges.txt:3: ...").
/// `origin` is the name used in messages.
struct RangeLine {
  Cidr cidr;
  std::string comment;  // text after '#' on the same line, trimmed
  unsigned line = 0;
};
std::vector<RangeLine> parse_range_file(std::string_view text, std::string_view origin);

}  // namespace smtpgate

/** @file checkpoint.hpp
 *  @brief Saving and loading every tensor of a ParameterStore, checked by name and shape.
 *
 *  Body layout (inside an io::save_container file, after whatever the network
 *  writes about its architecture):
 *    "params" | u32 value width (4 = float, 8 = double) | u64 tensor count |
 *    per tensor: name | u32 rank | u64 dims... | u64 count + values.
 *  Loading compares the file's list with the store's, tensor by tensor, and
 *  refuses the first mismatch with a message naming it, e.g.
 *  "expected conv1.weight [32,1,3,3], file has [64,1,3,3]". Values are
 *  staged and copied only once everything matched, so a failed load never
 *  leaves a half-overwritten network. A float file loads into a double store
 *  (and back, rounding), so gradient tests can reuse trained weights. */
#pragma once
#include <scoreood/core/error.hpp>
#include <scoreood/core/serialization.hpp>
#include <scoreood/nn/parameter.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace scoreood::nn {

namespace detail {
inline std::string shape_str(const std::vector<std::size_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}
}  // namespace detail

/// Appends every tensor of `store` (name, shape, values) to `w`.
template <class T, class B>
void save_parameters(io::ByteWriter& w, const ParameterStore<T, B>& store) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "parameters are float or double");
  // On the CPU the values themselves; elsewhere one download of the whole store.
  std::vector<T> copy;
  const T* values = store.value_data();
  if constexpr (!std::is_same_v<B, backend::cpu>) {
    copy = store.to_host();
    values = copy.data();
  }
  w.put_string("params");
  w.put<std::uint32_t>(sizeof(T));
  w.put<std::uint64_t>(store.entries().size());
  for (const auto& e : store.entries()) {
    w.put_string(e.name);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(e.shape.size()));
    for (auto d : e.shape) w.put<std::uint64_t>(d);
    w.put_array(std::span<const T>(values + e.offset, e.size));
  }
}

/// Reads what save_parameters wrote into `store`, whose tensors (names,
/// order, shapes) must match the file's exactly. Throws FormatError naming the
/// source and the first mismatching tensor; the store is untouched on error.
template <class T, class B>
void load_parameters(io::ByteReader& r, ParameterStore<T, B>& store) {
  const std::string tag = r.get_string(64);
  r.expect(tag == "params", "expected a parameter block, found '" + tag + "'");
  const auto width = r.get<std::uint32_t>();
  r.expect(width == 4 || width == 8, "parameter values of " + std::to_string(width) + " bytes are not supported");
  const auto count = r.get<std::uint64_t>();
  const auto& entries = store.entries();
  std::vector<T> staged(store.count());
  const std::size_t common = std::min<std::uint64_t>(count, entries.size());
  for (std::size_t i = 0; i < common; ++i) {
    const auto& e = entries[i];
    const std::string name = r.get_string(4096);
    const auto rank = r.get<std::uint32_t>();
    r.expect(rank <= 8, "tensor '" + name + "' has implausible rank " + std::to_string(rank));
    std::vector<std::size_t> shape(rank);
    for (auto& d : shape) d = static_cast<std::size_t>(r.get<std::uint64_t>());
    if (name != e.name)
      r.fail("architecture mismatch at tensor #" + std::to_string(i) + ": expected " + e.name + " " +
             detail::shape_str(e.shape) + ", file has " + name + " " + detail::shape_str(shape));
    if (shape != e.shape)
      r.fail("architecture mismatch: expected " + e.name + " " + detail::shape_str(e.shape) + ", file has " +
             detail::shape_str(shape));
    std::span<T> dst(staged.data() + e.offset, e.size);
    if (width == sizeof(T)) {
      r.get_into(dst, e.name);
    } else if (width == 4) {
      std::vector<float> tmp(e.size);
      r.get_into(std::span<float>(tmp), e.name);
      std::copy(tmp.begin(), tmp.end(), dst.begin());
    } else {
      std::vector<double> tmp(e.size);
      r.get_into(std::span<double>(tmp), e.name);
      std::transform(tmp.begin(), tmp.end(), dst.begin(), [](double v) { return T(v); });
    }
  }
  if (count < entries.size())
    r.fail("architecture mismatch: file has " + std::to_string(count) + " parameter tensors, the network " +
           std::to_string(entries.size()) + " (first missing: " + entries[count].name + " " +
           detail::shape_str(entries[count].shape) + ")");
  if (count > entries.size()) {
    const std::string extra = r.get_string(4096);
    r.fail("architecture mismatch: file has " + std::to_string(count) + " parameter tensors, the network " +
           std::to_string(entries.size()) + " (first extra: " + extra + ")");
  }
  store.from_host(staged);
}

/// Writes a file holding only the parameters (container kind `kind`).
template <class T, class B>
void save_parameters_file(const std::filesystem::path& path, const ParameterStore<T, B>& store,
                          std::string_view kind = "scoreood.parameters") {
  io::ByteWriter w;
  save_parameters(w, store);
  io::save_container(path, kind, w);
}

/// Loads a file written by save_parameters_file into a store of the same architecture.
template <class T, class B>
void load_parameters_file(const std::filesystem::path& path, ParameterStore<T, B>& store,
                          std::string_view kind = "scoreood.parameters") {
  const std::vector<char> body = io::load_container(path, kind);
  io::ByteReader r(body, path.string());
  load_parameters(r, store);
  r.expect(r.at_end(), "unexpected " + std::to_string(r.remaining()) + " bytes after the parameters");
}

}  // namespace scoreood::nn

// CodecChain: the `codecs` list of a Zarr v3 array, parsed once and applied to chunks.
//
// Supported: `transpose` (array -> array), `bytes` and `sharding_indexed` (array -> bytes),
// `zstd`, `gzip`, `crc32c` (bytes -> bytes). Decoded chunks live in voxelytics' memory order, the
// Fortran order of the array's axes; the chain's transposes and the C order of `bytes` are
// folded into one permutation, so the usual webKnossos layout (transpose [3, 2, 1, 0] on
// (c, x, y, z)) costs a plain copy.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/io/compression.hpp"
#include "voxelytics/io/crc32c.hpp"

namespace vx::io {

using Shape = std::vector<std::int64_t>;
using json = nlohmann::json;

inline std::int64_t product(const Shape& s) {
    return std::accumulate(s.begin(), s.end(), std::int64_t{1}, std::multiplies<>());
}

inline Shape fortran_strides(const Shape& shape) {
    Shape s(shape.size());
    std::int64_t stride = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        s[d] = stride;
        stride *= shape[d];
    }
    return s;
}

/// Copies an N-d block of `shape` elements of `elem` bytes between two strided layouts (strides
/// in elements, per axis). Axis 0 is the innermost loop.
inline void strided_copy(const std::uint8_t* src, const Shape& src_strides, std::uint8_t* dst, const Shape& dst_strides,
                         const Shape& shape, std::size_t elem) {
    const std::size_t n = shape.size();
    if (product(shape) == 0) return;
    std::vector<std::int64_t> index(n, 0);
    const bool contiguous = src_strides[0] == 1 && dst_strides[0] == 1;
    for (;;) {
        std::int64_t s = 0, d = 0;
        for (std::size_t a = 1; a < n; ++a) {
            s += index[a] * src_strides[a];
            d += index[a] * dst_strides[a];
        }
        if (contiguous) {
            std::memcpy(dst + d * static_cast<std::int64_t>(elem), src + s * static_cast<std::int64_t>(elem),
                        static_cast<std::size_t>(shape[0]) * elem);
        } else {
            for (std::int64_t i = 0; i < shape[0]; ++i)
                std::memcpy(dst + (d + i * dst_strides[0]) * static_cast<std::int64_t>(elem),
                            src + (s + i * src_strides[0]) * static_cast<std::int64_t>(elem), elem);
        }
        std::size_t a = 1;
        for (; a < n; ++a) {
            if (++index[a] < shape[a]) break;
            index[a] = 0;
        }
        if (a == n) return;
    }
}

class CodecChain;

/// The `sharding_indexed` codec: a shard holds inner chunks, each encoded with `inner`, and an
/// index of (offset, nbytes) per inner chunk in C order, encoded with `index`.
struct Sharding {
    Shape chunk_shape;
    std::shared_ptr<const CodecChain> inner;
    std::shared_ptr<const CodecChain> index;
    bool index_at_end = true;
    static constexpr std::uint64_t empty = ~std::uint64_t{0};
};

class CodecChain {
public:
    /// Parses a `codecs` list; `where` names it in errors (e.g. ".../zarr.json codecs").
    static CodecChain from_json(const json& codecs, std::size_t ndim, const std::string& where) {
        if (!codecs.is_array() || codecs.empty()) throw CorruptData(where + ": must be a non-empty list");
        CodecChain chain;
        chain.json_ = codecs;
        chain.permutation_.resize(ndim);
        std::iota(chain.permutation_.begin(), chain.permutation_.end(), 0);
        bool have_array_to_bytes = false;
        for (std::size_t i = 0; i < codecs.size(); ++i) {
            const json& c = codecs[i];
            const std::string at = where + "[" + std::to_string(i) + "]";
            if (!c.is_object() || !c.contains("name") || !c["name"].is_string())
                throw CorruptData(at + ": a codec needs a \"name\"");
            const std::string name = c["name"];
            const json config = c.value("configuration", json::object());
            if (name == "transpose") {
                if (have_array_to_bytes) throw CorruptData(at + ": transpose must come before bytes/sharding");
                std::vector<std::size_t> order;
                try {
                    order = config.at("order").get<std::vector<std::size_t>>();
                } catch (const json::exception&) {
                    throw CorruptData(at + ": transpose needs \"order\", a list of axis indices");
                }
                std::vector<bool> seen(ndim, false);
                if (order.size() != ndim) throw CorruptData(at + ": transpose order must have one entry per axis");
                for (std::size_t o : order) {
                    if (o >= ndim || seen[o]) throw CorruptData(at + ": transpose order is not a permutation");
                    seen[o] = true;
                }
                std::vector<std::size_t> composed(ndim);
                for (std::size_t k = 0; k < ndim; ++k) composed[k] = chain.permutation_[order[k]];
                chain.permutation_ = composed;
            } else if (name == "bytes" || name == "sharding_indexed") {
                if (have_array_to_bytes) throw CorruptData(at + ": only one array -> bytes codec is allowed");
                have_array_to_bytes = true;
                if (name == "bytes") {
                    const std::string endian = config.value("endian", "little");
                    if (endian != "little" && endian != "big")
                        throw CorruptData(at + ": endian must be \"little\" or \"big\"");
                    chain.big_endian_ = endian == "big";
                } else {
                    chain.sharding_ = parse_sharding(config, ndim, at);
                }
            } else if (name == "zstd" || name == "gzip" || name == "crc32c") {
                if (!have_array_to_bytes) throw CorruptData(at + ": " + name + " must come after bytes/sharding");
                if (chain.sharding_) throw UnsupportedType(at + ": codecs after sharding_indexed are not supported");
                BytesCodec b{name, 0, false};
                if (name == "zstd") {
                    b.level = config.value("level", 0);
                    b.checksum = config.value("checksum", false);
                } else if (name == "gzip") {
                    b.level = config.value("level", 6);
                }
                chain.bytes_codecs_.push_back(b);
            } else {
                throw UnsupportedType(at + ": unsupported codec \"" + name +
                                      "\" (supported: transpose, bytes, sharding_indexed, zstd, gzip, crc32c)");
            }
        }
        if (!have_array_to_bytes) throw CorruptData(where + ": needs a bytes or sharding_indexed codec");
        return chain;
    }

    const json& to_json() const { return json_; }
    const Sharding* sharding() const { return sharding_ ? &*sharding_ : nullptr; }

    /// Encodes a chunk held in Fortran order (not for sharded chains: see ZarrArray).
    Bytes encode(const std::uint8_t* chunk, const Shape& shape, std::size_t elem) const {
        thread_local Bytes raw;  // scratch reused per thread: chunks are encoded by the thousand
        raw.resize(static_cast<std::size_t>(product(shape)) * elem);
        strided_copy(chunk, fortran_strides(shape), raw.data(), encoded_strides(shape), shape, elem);
        if (big_endian_) swap_bytes(raw.data(), raw.size(), elem);
        Bytes out;
        bool in_raw = true;  // the current bytes are still in `raw`
        for (const BytesCodec& b : bytes_codecs_) {
            const std::uint8_t* data = in_raw ? raw.data() : out.data();
            const std::size_t n = in_raw ? raw.size() : out.size();
            if (b.name == "zstd") {
                out = zstd_compress(data, n, b.level, b.checksum);
            } else if (b.name == "gzip") {
                out = gzip_compress(data, n, b.level);
            } else {
                if (in_raw) out.assign(raw.begin(), raw.end());
                const std::uint32_t crc = crc32c(out.data(), out.size());
                for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(crc >> (8 * i)));
            }
            in_raw = false;
        }
        if (in_raw) out.assign(raw.begin(), raw.end());
        return out;
    }

    /// Decodes `n` encoded bytes into `out` (Fortran order, product(shape) elements); `what`
    /// names the chunk (file, coordinates) in errors.
    void decode_into(const std::uint8_t* data, std::size_t n, const Shape& shape, std::size_t elem,
                     const std::string& what, std::uint8_t* out) const {
        thread_local Bytes stages[2];  // scratch reused per thread, see encode
        int next = 0;
        for (auto b = bytes_codecs_.rbegin(); b != bytes_codecs_.rend(); ++b) {
            if (b->name == "crc32c") {
                if (n < 4) throw CorruptData(what + ": too short for its crc32c checksum");
                n -= 4;
                std::uint32_t stored = 0;
                for (std::size_t i = 0; i < 4; ++i) stored |= std::uint32_t{data[n + i]} << (8 * i);
                if (crc32c(data, n) != stored) throw CorruptData(what + ": crc32c checksum mismatch");
                continue;
            }
            Bytes& stage = stages[next];
            next ^= 1;
            if (b->name == "zstd") {
                zstd_decompress(data, n, stage, what);
            } else {
                gzip_decompress(data, n, stage, what);
            }
            data = stage.data();
            n = stage.size();
        }
        const auto expected = static_cast<std::size_t>(product(shape)) * elem;
        if (n != expected)
            throw CorruptData(what + ": decoded to " + std::to_string(n) + " bytes, expected " +
                              std::to_string(expected));
        if (is_fortran_identity()) {
            std::memcpy(out, data, n);
        } else {
            strided_copy(data, encoded_strides(shape), out, fortran_strides(shape), shape, elem);
        }
        if (big_endian_) swap_bytes(out, n, elem);
    }

    /// decode_into a new buffer.
    Bytes decode(const Bytes& data, const Shape& shape, std::size_t elem, const std::string& what) const {
        Bytes out(static_cast<std::size_t>(product(shape)) * elem);
        decode_into(data.data(), data.size(), shape, elem, what, out.data());
        return out;
    }

private:
    struct BytesCodec {
        std::string name;
        int level;
        bool checksum;
    };

    static Sharding parse_sharding(const json& config, std::size_t ndim, const std::string& at) {
        Sharding s;
        try {
            s.chunk_shape = config.at("chunk_shape").get<Shape>();
        } catch (const json::exception&) {
            throw CorruptData(at + ": sharding_indexed needs \"chunk_shape\"");
        }
        if (s.chunk_shape.size() != ndim) throw CorruptData(at + ": chunk_shape must have one entry per axis");
        for (auto c : s.chunk_shape)
            if (c <= 0) throw CorruptData(at + ": chunk_shape entries must be positive");
        s.inner = std::make_shared<CodecChain>(from_json(config.value("codecs", json()), ndim, at + ".codecs"));
        s.index = std::make_shared<CodecChain>(
            from_json(config.value("index_codecs", json()), ndim + 1, at + ".index_codecs"));
        const std::string location = config.value("index_location", "end");
        if (location != "end" && location != "start")
            throw CorruptData(at + ": index_location must be \"start\" or \"end\"");
        s.index_at_end = location == "end";
        return s;
    }

    // Strides (per array axis) of the encoded layout: C order of the permuted array.
    Shape encoded_strides(const Shape& shape) const {
        const std::size_t n = shape.size();
        Shape strides(n);
        std::int64_t stride = 1;
        for (std::size_t k = n; k-- > 0;) {
            strides[permutation_[k]] = stride;
            stride *= shape[permutation_[k]];
        }
        return strides;
    }
    bool is_fortran_identity() const {
        for (std::size_t k = 0; k < permutation_.size(); ++k)
            if (permutation_[k] != permutation_.size() - 1 - k) return false;
        return true;
    }
    static void swap_bytes(std::uint8_t* data, std::size_t n, std::size_t elem) {
        if (elem == 1) return;
        for (std::size_t i = 0; i + elem <= n; i += elem) std::reverse(data + i, data + i + elem);
    }

    json json_;
    std::vector<std::size_t> permutation_;  // encoded array axis k = chunk axis permutation_[k]
    bool big_endian_ = false;
    std::optional<Sharding> sharding_;
    std::vector<BytesCodec> bytes_codecs_;
};

/// The codecs webknossos-libs writes: chunks stored x-fastest (a transpose reversing the axes),
/// little-endian, zstd with checksum; with `inner_chunk_shape`, sharded with a crc32c index.
inline json default_codecs(std::size_t ndim, const std::optional<Shape>& inner_chunk_shape, int compression_level) {
    std::vector<std::size_t> reversed(ndim);
    for (std::size_t k = 0; k < ndim; ++k) reversed[k] = ndim - 1 - k;
    const json chunk =
        json::array({json{{"name", "transpose"}, {"configuration", {{"order", reversed}}}},
                     json{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}},
                     json{{"name", "zstd"}, {"configuration", {{"level", compression_level}, {"checksum", true}}}}});
    if (!inner_chunk_shape) return chunk;
    const json index =
        json::array({json{{"name", "bytes"}, {"configuration", {{"endian", "little"}}}}, json{{"name", "crc32c"}}});
    return json::array(
        {json{{"name", "sharding_indexed"},
              {"configuration", {{"chunk_shape", *inner_chunk_shape}, {"codecs", chunk}, {"index_codecs", index}}}}});
}

}  // namespace vx::io

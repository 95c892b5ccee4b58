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
#include "voxelytics/io/json_field.hpp"

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
/// in elements, per axis). Axes of size 1 are dropped and axes that are contiguous in both
/// layouts merged first, so a (1, x, y, z) chunk copies like an (x, y, z) one and a block that
/// is contiguous in both layouts is one memcpy. The first remaining axis is the innermost loop.
inline void strided_copy(const std::uint8_t* src, const Shape& src_strides, std::uint8_t* dst, const Shape& dst_strides,
                         const Shape& shape, std::size_t elem) {
    if (product(shape) == 0) return;
    Shape n, ss, ds;  // the simplified shape and strides
    for (std::size_t a = 0; a < shape.size(); ++a) {
        if (shape[a] == 1) continue;
        if (!n.empty() && ss.back() * n.back() == src_strides[a] && ds.back() * n.back() == dst_strides[a]) {
            n.back() *= shape[a];
            continue;
        }
        n.push_back(shape[a]);
        ss.push_back(src_strides[a]);
        ds.push_back(dst_strides[a]);
    }
    if (n.empty()) {
        std::memcpy(dst, src, elem);
        return;
    }
    while (n.size() < 2) {  // rows (axis 0) in planes (axis 1), planes in the rest
        n.push_back(1);
        ss.push_back(0);
        ds.push_back(0);
    }
    const auto e = static_cast<std::int64_t>(elem);
    const bool contiguous = ss[0] == 1 && ds[0] == 1;
    const auto row_bytes = static_cast<std::size_t>(n[0]) * elem;
    std::vector<std::int64_t> index(n.size(), 0);
    std::int64_t s = 0, d = 0;  // offsets of the current plane, in elements
    for (;;) {
        const std::uint8_t* from = src + s * e;
        std::uint8_t* to = dst + d * e;
        for (std::int64_t j = 0; j < n[1]; ++j, from += ss[1] * e, to += ds[1] * e) {
            if (contiguous) {
                std::memcpy(to, from, row_bytes);
            } else {
                for (std::int64_t i = 0; i < n[0]; ++i) std::memcpy(to + i * ds[0] * e, from + i * ss[0] * e, elem);
            }
        }
        std::size_t a = 2;
        for (; a < n.size(); ++a) {
            s += ss[a];
            d += ds[a];
            if (++index[a] < n[a]) break;
            s -= ss[a] * n[a];
            d -= ds[a] * n[a];
            index[a] = 0;
        }
        if (a >= n.size()) return;
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
    /// Parses a `codecs` list (the field `codecs` of a zarr.json, or of a sharding codec's
    /// configuration) for arrays of `ndim` axes; errors name the file and key path.
    static CodecChain from_json(const JsonField& codecs, std::size_t ndim) {
        if (codecs.require_list().size() == 0) codecs.fail("needs at least one codec");
        CodecChain chain;
        chain.json_ = codecs.value();
        chain.permutation_.resize(ndim);
        std::iota(chain.permutation_.begin(), chain.permutation_.end(), 0);
        bool have_array_to_bytes = false;
        for (const JsonField& c : codecs.items()) {
            const std::string name = c.field("name").as<std::string>();
            const std::optional<JsonField> config = c.find("configuration");
            if (config) config->require_object();
            if (name == "transpose") {
                if (have_array_to_bytes) c.fail("transpose must come before bytes/sharding");
                if (!config) c.fail("transpose needs a \"configuration\" with an \"order\"");
                const JsonField order_field = config->field("order");
                const auto order = order_field.list<std::size_t>();
                std::vector<bool> seen(ndim, false);
                if (order.size() != ndim) order_field.fail("needs one entry per axis (" + std::to_string(ndim) + ")");
                for (std::size_t o : order) {
                    if (o >= ndim || seen[o]) order_field.fail("is not a permutation of the axes");
                    seen[o] = true;
                }
                std::vector<std::size_t> composed(ndim);
                for (std::size_t k = 0; k < ndim; ++k) composed[k] = chain.permutation_[order[k]];
                chain.permutation_ = composed;
            } else if (name == "bytes" || name == "sharding_indexed") {
                if (have_array_to_bytes) c.fail("only one array -> bytes codec is allowed");
                have_array_to_bytes = true;
                if (name == "bytes") {
                    const std::string endian = config ? config->get("endian", "little") : "little";
                    if (endian != "little" && endian != "big")
                        config->field("endian").fail("must be \"little\" or \"big\"");
                    chain.big_endian_ = endian == "big";
                } else {
                    if (!config) c.fail("sharding_indexed needs a \"configuration\"");
                    chain.sharding_ = parse_sharding(*config, ndim);
                }
            } else if (name == "zstd" || name == "gzip" || name == "crc32c") {
                if (!have_array_to_bytes) c.fail(name + " must come after bytes/sharding");
                if (chain.sharding_)
                    throw UnsupportedType(c.where() + ": codecs after sharding_indexed are not supported");
                BytesCodec b{name, 0, false};
                if (name == "zstd" && config) {
                    b.level = config->get<int>("level", 0);
                    b.checksum = config->get<bool>("checksum", false);
                } else if (name == "gzip") {
                    b.level = config ? config->get<int>("level", 6) : 6;
                }
                chain.bytes_codecs_.push_back(b);
            } else {
                throw UnsupportedType(c.where() + ": unsupported codec \"" + name +
                                      "\" (supported: transpose, bytes, sharding_indexed, zstd, gzip, crc32c)");
            }
        }
        if (!have_array_to_bytes) codecs.fail("needs a bytes or sharding_indexed codec");
        return chain;
    }

    const json& to_json() const { return json_; }
    const Sharding* sharding() const { return sharding_ ? &*sharding_ : nullptr; }

    /// Encodes a chunk held in Fortran order (not for sharded chains: see ZarrArray).
    Bytes encode(const std::uint8_t* chunk, const Shape& shape, std::size_t elem) const {
        const std::size_t size = static_cast<std::size_t>(product(shape)) * elem;
        const std::uint8_t* raw = chunk;  // the chunk's bytes in stored order
        if (!is_fortran_identity() || big_endian_) {
            thread_local Bytes scratch;  // reused per thread: chunks are encoded by the thousand
            scratch.resize(size);
            strided_copy(chunk, fortran_strides(shape), scratch.data(), encoded_strides(shape), shape, elem);
            if (big_endian_) swap_bytes(scratch.data(), scratch.size(), elem);
            raw = scratch.data();
        }
        Bytes out;
        bool in_raw = true;  // the current bytes are still those at `raw`
        for (const BytesCodec& b : bytes_codecs_) {
            const std::uint8_t* data = in_raw ? raw : out.data();
            const std::size_t n = in_raw ? size : out.size();
            if (b.name == "zstd") {
                out = zstd_compress(data, n, b.level, b.checksum);
            } else if (b.name == "gzip") {
                out = gzip_compress(data, n, b.level);
            } else {
                if (in_raw) out.assign(raw, raw + size);
                const std::uint32_t crc = crc32c(out.data(), out.size());
                for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(crc >> (8 * i)));
            }
            in_raw = false;
        }
        if (in_raw) out.assign(raw, raw + size);
        return out;
    }

    /// Decodes `n` encoded bytes into `out` (Fortran order, product(shape) elements); `what`
    /// names the chunk (file, coordinates) in errors.
    void decode_into(const std::uint8_t* data, std::size_t n, const Shape& shape, std::size_t elem,
                     const std::string& what, std::uint8_t* out) const {
        thread_local Bytes stages[2];  // scratch reused per thread, see encode
        int next = 0;
        const auto expected = static_cast<std::size_t>(product(shape)) * elem;
        // The usual chain (x-fastest bytes, zstd as the last stage): decompress into place.
        const bool in_place = is_fortran_identity() && !big_endian_;
        const auto first = std::find_if(bytes_codecs_.begin(), bytes_codecs_.end(),
                                        [](const BytesCodec& b) { return b.name != "crc32c"; });
        const BytesCodec* last_stage = first == bytes_codecs_.end() ? nullptr : &*first;
        for (auto b = bytes_codecs_.rbegin(); b != bytes_codecs_.rend(); ++b) {
            if (in_place && &*b == last_stage && b->name == "zstd" &&
                zstd_decompress_exact(data, n, out, expected, what))
                return;
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

    static Sharding parse_sharding(const JsonField& config, std::size_t ndim) {
        Sharding s;
        const JsonField chunk_shape = config.field("chunk_shape");
        s.chunk_shape = chunk_shape.list<std::int64_t>();
        if (s.chunk_shape.size() != ndim) chunk_shape.fail("needs one entry per axis (" + std::to_string(ndim) + ")");
        for (std::size_t d = 0; d < ndim; ++d)
            if (s.chunk_shape[d] <= 0) chunk_shape.item(d).fail("chunk sizes must be positive");
        s.inner = std::make_shared<CodecChain>(from_json(config.field("codecs"), ndim));
        s.index = std::make_shared<CodecChain>(from_json(config.field("index_codecs"), ndim + 1));
        const std::string location = config.get("index_location", "end");
        if (location != "end" && location != "start")
            config.field("index_location").fail("must be \"start\" or \"end\"");
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

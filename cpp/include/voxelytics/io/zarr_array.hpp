// ZarrArray: a Zarr v3 array in a Store, read and written by box.
//
// Boxes are (offset, shape) in array index space (for webKnossos data: c, x, y, z); buffers are
// in voxelytics' memory order, Fortran order of those axes. Reads outside the stored chunks give
// the fill value. Writes read-modify-write partly covered chunks (shards), skip chunks that hold
// only the fill value, and replace each chunk (shard) file atomically. Chunks (shards) are
// processed in parallel on the caller's ThreadPool; each is written by one thread.
#pragma once

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "voxelytics/core/dtype.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/io/chunk_cache.hpp"
#include "voxelytics/io/codecs.hpp"
#include "voxelytics/io/json_field.hpp"
#include "voxelytics/io/store.hpp"

namespace vx::io {

inline std::size_t dtype_size(DType d) {
    return dispatch<AllTypes>(d, "zarr array", [](auto tag) { return sizeof(typename decltype(tag)::type); });
}

inline DType dtype_from_zarr(const std::string& name, const std::string& where) {
    for (DType d : {DType::uint8, DType::uint16, DType::uint32, DType::uint64, DType::int8, DType::int16, DType::int32,
                    DType::int64, DType::float32, DType::float64})
        if (name == dtype_name(d)) return d;
    throw UnsupportedType(where + ": unsupported data_type \"" + name + "\" (supported: " + AllTypes::names() + ")");
}

/// A zarr.json fill_value as a T: a number in T's range, or for floats "NaN", "Infinity" or
/// "-Infinity" (Zarr v3's names); anything else fails naming the field.
template <class T>
T fill_value_as(const JsonField& fill) {
    if constexpr (std::is_floating_point_v<T>)
        if (fill.value().is_string()) {
            const auto name = fill.as<std::string>();
            if (name == "NaN") return std::numeric_limits<T>::quiet_NaN();
            if (name == "Infinity") return std::numeric_limits<T>::infinity();
            if (name == "-Infinity") return -std::numeric_limits<T>::infinity();
            fill.fail("expected a number, \"NaN\", \"Infinity\" or \"-Infinity\", got \"" + name + "\"");
        }
    return fill.as<T>();
}

struct ArrayMetadata {
    Shape shape;
    Shape chunk_shape;  // of the chunk grid: the shard shape when sharded
    DType dtype = DType::uint8;
    json fill_value = 0;
    CodecChain codecs;
    char separator = '/';
    bool v2_keys = false;         // chunk_key_encoding "v2": "0.0.0" instead of "c/0/0/0"
    json extra = json::object();  // attributes, dimension_names: kept as they are

    /// Parses a zarr.json document; `where` (the file) and the key path are named in errors.
    static ArrayMetadata from_json(const json& document, const std::string& where) {
        const JsonField j(document, where);
        j.require_object();
        const JsonField format = j.field("zarr_format");
        if (format.as<int>() != 3)
            throw UnsupportedType(format.where() + ": zarr_format " + format.value().dump() +
                                  " is not supported (only 3 is)");
        if (j.field("node_type").value() != "array") j.field("node_type").fail("node_type is not \"array\"");
        ArrayMetadata m;
        m.shape = j.field("shape").list<std::int64_t>();
        const JsonField grid = j.field("chunk_grid");
        if (grid.field("name").as<std::string>() != "regular")
            throw UnsupportedType(grid.field("name").where() +
                                  ": unsupported chunk_grid (only \"regular\" is supported)");
        const JsonField chunk_shape = grid.field("configuration").field("chunk_shape");
        m.chunk_shape = chunk_shape.list<std::int64_t>();
        const JsonField data_type = j.field("data_type");
        m.dtype = dtype_from_zarr(data_type.as<std::string>(), data_type.where());
        const JsonField fill = j.field("fill_value");
        dispatch<AllTypes>(m.dtype, "fill_value", [&](auto tag) {  // of the array's type, in range
            fill_value_as<typename decltype(tag)::type>(fill);
        });
        m.fill_value = fill.value();
        if (m.chunk_shape.size() != m.shape.size()) chunk_shape.fail("chunk_shape and shape differ in length");
        for (std::size_t d = 0; d < m.shape.size(); ++d) {
            if (m.shape[d] < 0) j.field("shape").item(d).fail("negative size");
            if (m.chunk_shape[d] <= 0) chunk_shape.item(d).fail("chunk sizes must be positive");
        }
        std::string encoding = "default";
        std::optional<std::string> separator;
        if (const auto keys = j.find("chunk_key_encoding")) {
            encoding = keys->get("name", "default");
            if (encoding != "default" && encoding != "v2")
                throw UnsupportedType(keys->where() + ": unsupported chunk_key_encoding \"" + encoding + "\"");
            if (const auto config = keys->find("configuration"))
                if (const auto sep = config->find("separator")) {
                    separator = sep->as<std::string>();
                    if (*separator != "/" && *separator != ".") sep->fail("chunk key separator must be \"/\" or \".\"");
                }
        }
        m.v2_keys = encoding == "v2";
        m.separator = separator ? (*separator)[0] : (m.v2_keys ? '.' : '/');
        m.codecs = CodecChain::from_json(j.field("codecs"), m.shape.size());
        if (const auto names = j.find("dimension_names")) {
            if (names->size() != m.shape.size()) names->fail("needs one entry per axis");
            for (const JsonField& name : names->items())
                if (!name.is_null()) name.as<std::string>();
        }
        if (const auto attributes = j.find("attributes")) attributes->require_object();
        for (const char* key : {"attributes", "dimension_names", "storage_transformers"})
            if (document.contains(key)) m.extra[key] = document[key];
        if (const auto transformers = j.find("storage_transformers"))
            if (transformers->size() != 0)
                throw UnsupportedType(transformers->where() + ": storage_transformers are not supported");
        return m;
    }

    json to_json() const {
        json j = {
            {"zarr_format", 3},
            {"node_type", "array"},
            {"shape", shape},
            {"data_type", dtype_name(dtype)},
            {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", chunk_shape}}}}},
            {"chunk_key_encoding",
             {{"name", v2_keys ? "v2" : "default"}, {"configuration", {{"separator", std::string(1, separator)}}}}},
            {"fill_value", fill_value},
            {"codecs", codecs.to_json()}};
        for (auto& [key, value] : extra.items()) j[key] = value;
        return j;
    }
};

class ZarrArray {
public:
    /// Opens the array at `path` ("" for the store root); NotFound if it has no zarr.json.
    static ZarrArray open(std::shared_ptr<Store> store, const std::string& path) {
        const std::string key = join(path, "zarr.json");
        const auto raw = store->get(key);
        if (!raw) throw NotFound("no Zarr array at " + store->describe(key));
        const json j = parse_json(raw->begin(), raw->end(), store->describe(key));
        ArrayMetadata meta = ArrayMetadata::from_json(j, store->describe(key));
        return ZarrArray(std::move(store), path, std::move(meta));
    }

    /// Creates (or replaces the metadata of) the array at `path`.
    static ZarrArray create(std::shared_ptr<Store> store, const std::string& path, ArrayMetadata metadata) {
        ZarrArray array(std::move(store), path, std::move(metadata));
        array.write_metadata();
        return array;
    }

    const ArrayMetadata& metadata() const { return meta_; }
    std::size_t element_size() const { return elem_; }

    /// The cache of decoded chunks this array uses (ChunkCache::shared() unless set; nullptr:
    /// none). Reads that take small parts of chunks or shards go through it (with the shard
    /// index); reads of whole shards stream past it, so large reads do not evict small ones.
    const std::shared_ptr<ChunkCache>& cache() const { return cache_; }
    void set_cache(std::shared_ptr<ChunkCache> cache) { cache_ = std::move(cache); }

    /// Grows (or shrinks) the array's shape; stored chunks are kept.
    void resize(const Shape& shape) {
        if (shape.size() != meta_.shape.size()) throw InvalidArgument("resize: wrong number of axes");
        const auto guard = store_->lock(join(path_, "zarr.json"));
        meta_.shape = shape;
        write_metadata();
    }

    /// Grows the shape to at least `shape` on every axis, taking into account growth by other
    /// processes since this array was opened (the stored zarr.json is re-read under its lock).
    void grow_to(const Shape& shape) {
        if (shape.size() != meta_.shape.size()) throw InvalidArgument("grow_to: wrong number of axes");
        const std::string key = join(path_, "zarr.json");
        const auto guard = store_->lock(key);
        if (const auto raw = store_->get(key)) {
            const json stored_json = parse_json(raw->begin(), raw->end(), store_->describe(key));
            const auto stored = JsonField(stored_json, store_->describe(key)).field("shape").list<std::int64_t>();
            if (stored.size() == shape.size())
                for (std::size_t d = 0; d < shape.size(); ++d) meta_.shape[d] = std::max(meta_.shape[d], stored[d]);
        }
        bool changed = false;
        for (std::size_t d = 0; d < shape.size(); ++d)
            if (shape[d] > meta_.shape[d]) {
                meta_.shape[d] = shape[d];
                changed = true;
            }
        if (changed) write_metadata();
    }

    /// Reads the box (offset, shape) into `out` (Fortran order, product(shape) elements).
    void read(const Shape& offset, const Shape& shape, std::uint8_t* out, ThreadPool& pool) const {
        check_box(offset, shape, "read");
        for_each_cell(
            offset, shape, pool,
            [&](const Sharding& s, const Shape& coords, ThreadPool& inner_pool) {
                read_shard(s, coords, offset, shape, out, inner_pool);
            },
            [&](const Shape& coords) { read_chunk(coords, offset, shape, out); });
    }

    /// Writes `in` (Fortran order) to the box (offset, shape); the box must lie inside the shape.
    void write(const Shape& offset, const Shape& shape, const std::uint8_t* in, ThreadPool& pool) {
        check_box(offset, shape, "write");
        for (std::size_t d = 0; d < shape.size(); ++d)
            if (offset[d] + shape[d] > meta_.shape[d])
                throw InvalidArgument("write: box reaches past the array shape on axis " + std::to_string(d) +
                                      " (resize the array first)");
        for_each_cell(
            offset, shape, pool,
            [&](const Sharding& s, const Shape& coords, ThreadPool& inner_pool) {
                write_shard(s, coords, offset, shape, in, inner_pool);
            },
            [&](const Shape& coords) { write_chunk(coords, offset, shape, in); });
    }

    /// The store key of the chunk (shard) at grid coordinates `coords`.
    std::string chunk_key(const Shape& coords) const {
        std::string key = meta_.v2_keys ? "" : "c";
        for (std::size_t d = 0; d < coords.size(); ++d) {
            if (!key.empty() || d > 0) key += meta_.separator;
            key += std::to_string(coords[d]);
        }
        if (coords.empty()) key = meta_.v2_keys ? "0" : "c";
        return join(path_, key);
    }

private:
    ZarrArray(std::shared_ptr<Store> store, std::string path, ArrayMetadata meta)
        : store_(std::move(store)), path_(std::move(path)), meta_(std::move(meta)), elem_(dtype_size(meta_.dtype)) {
        fill_ = fill_bytes();
        if (const Sharding* s = meta_.codecs.sharding()) {
            for (std::size_t d = 0; d < meta_.shape.size(); ++d)
                if (meta_.chunk_shape[d] % s->chunk_shape[d] != 0)
                    throw CorruptData(store_->describe(join(path_, "zarr.json")) +
                                      ": the shard shape must be a multiple of the inner chunk shape");
            // The index codecs hold no compressor in practice (bytes, crc32c), so its size is fixed.
            Bytes probe(static_cast<std::size_t>(product(index_shape(*s))) * 8, 0);
            index_size_ = static_cast<std::int64_t>(s->index->encode(probe.data(), index_shape(*s), 8).size());
        }
    }

    static std::string join(const std::string& path, const std::string& key) {
        return path.empty() ? key : path + "/" + key;
    }

    void write_metadata() {
        const std::string text = meta_.to_json().dump(2);
        store_->set(join(path_, "zarr.json"), Bytes(text.begin(), text.end()));
    }

    Bytes fill_bytes() const {
        Bytes b(elem_);
        dispatch<AllTypes>(meta_.dtype, "fill_value", [&](auto tag) {
            const auto v = fill_value_as<typename decltype(tag)::type>(JsonField(meta_.fill_value, "fill_value"));
            std::memcpy(b.data(), &v, sizeof v);
        });
        return b;
    }
    void fill(std::uint8_t* data, std::int64_t count) const {
        if (count <= 0) return;
        std::memcpy(data, fill_.data(), elem_);
        // Double the filled prefix until it covers everything: a handful of memcpy calls.
        const std::size_t total = static_cast<std::size_t>(count) * elem_;
        for (std::size_t done = elem_; done < total; done *= 2)
            std::memcpy(data + done, data, std::min(done, total - done));
    }
    bool all_fill(const std::uint8_t* data, std::int64_t count) const {
        if (count <= 0) return true;
        // All elements equal the first iff the buffer equals itself shifted by one element.
        const std::size_t total = static_cast<std::size_t>(count) * elem_;
        return std::memcmp(data, fill_.data(), elem_) == 0 && std::memcmp(data, data + elem_, total - elem_) == 0;
    }

    void check_box(const Shape& offset, const Shape& shape, const char* what) const {
        if (offset.size() != meta_.shape.size() || shape.size() != meta_.shape.size())
            throw InvalidArgument(std::string(what) + ": the box needs " + std::to_string(meta_.shape.size()) +
                                  " axes");
        for (std::size_t d = 0; d < shape.size(); ++d)
            if (offset[d] < 0 || shape[d] < 0)
                throw InvalidArgument(std::string(what) + ": negative offset or size on axis " + std::to_string(d));
    }

    // Grid coordinates of the cells of size `cell` that overlap the box.
    static std::vector<Shape> chunks_overlapping(const Shape& offset, const Shape& shape, const Shape& cell) {
        std::vector<Shape> out;
        if (product(shape) == 0) return out;
        const std::size_t n = shape.size();
        Shape lo(n), hi(n), c(n);
        for (std::size_t d = 0; d < n; ++d) {
            lo[d] = offset[d] / cell[d];
            hi[d] = (offset[d] + shape[d] - 1) / cell[d] + 1;
        }
        c = lo;
        for (;;) {
            out.push_back(c);
            std::size_t d = 0;
            for (; d < n; ++d) {
                if (++c[d] < hi[d]) break;
                c[d] = lo[d];
            }
            if (d == n) return out;
        }
    }

    // Where a cell (origin, cell shape) and a box (offset, shape), both Fortran buffers, overlap.
    struct Overlap {
        Shape size, cell_strides, box_strides;
        std::int64_t cell_start = 0, box_start = 0;  // in elements
        bool empty = true;
    };
    static Overlap overlap(const Shape& origin, const Shape& cell, const Shape& offset, const Shape& shape) {
        Overlap o;
        const std::size_t n = shape.size();
        Shape lo(n);
        o.size.resize(n);
        for (std::size_t d = 0; d < n; ++d) {
            lo[d] = std::max(origin[d], offset[d]);
            o.size[d] = std::min(origin[d] + cell[d], offset[d] + shape[d]) - lo[d];
            if (o.size[d] <= 0) return o;
        }
        o.cell_strides = fortran_strides(cell);
        o.box_strides = fortran_strides(shape);
        for (std::size_t d = 0; d < n; ++d) {
            o.cell_start += (lo[d] - origin[d]) * o.cell_strides[d];
            o.box_start += (lo[d] - offset[d]) * o.box_strides[d];
        }
        o.empty = false;
        return o;
    }
    void copy_cell_to_box(const Shape& origin, const Shape& cell, const std::uint8_t* cell_data, const Shape& offset,
                          const Shape& shape, std::uint8_t* box_data) const {
        const Overlap o = overlap(origin, cell, offset, shape);
        const auto e = static_cast<std::int64_t>(elem_);
        if (!o.empty)
            strided_copy(cell_data + o.cell_start * e, o.cell_strides, box_data + o.box_start * e, o.box_strides,
                         o.size, elem_);
    }
    void copy_box_to_cell(const Shape& offset, const Shape& shape, const std::uint8_t* box_data, const Shape& origin,
                          const Shape& cell, std::uint8_t* cell_data) const {
        const Overlap o = overlap(origin, cell, offset, shape);
        const auto e = static_cast<std::int64_t>(elem_);
        if (!o.empty)
            strided_copy(box_data + o.box_start * e, o.box_strides, cell_data + o.cell_start * e, o.cell_strides,
                         o.size, elem_);
    }

    Shape origin_of(const Shape& coords, const Shape& cell) const {
        Shape o(coords.size());
        for (std::size_t d = 0; d < coords.size(); ++d) o[d] = coords[d] * cell[d];
        return o;
    }

    // Runs fn(i) for i in [0, n) as 8 tasks per thread rather than one range per thread: chunks
    // differ in cost (empty or full, compressible or not) and a virtual CPU can stall, so threads
    // take tasks from a shared queue until it is empty.
    template <class F>
    static void for_each_chunk(ThreadPool& pool, std::int64_t n, F&& fn) {
        parallel_for(pool, 0, n, std::forward<F>(fn),
                     std::min<std::int64_t>(n, 8 * static_cast<std::int64_t>(pool.size())));
    }

    // The cells of the chunk grid that the box touches: on_shard(sharding, coords, pool for its
    // inner chunks) for each shard of a sharded array, else on_chunk(coords) for each chunk.
    template <class OnShard, class OnChunk>
    void for_each_cell(const Shape& offset, const Shape& shape, ThreadPool& pool, OnShard&& on_shard,
                       OnChunk&& on_chunk) const {
        const auto cells = chunks_overlapping(offset, shape, meta_.chunk_shape);
        if (const Sharding* s = meta_.codecs.sharding()) {
            for_each_shard(pool, cells,
                           [&](const Shape& coords, ThreadPool& inner_pool) { on_shard(*s, coords, inner_pool); });
            return;
        }
        for_each_chunk(pool, static_cast<std::int64_t>(cells.size()),
                       [&](std::int64_t i) { on_chunk(cells[static_cast<std::size_t>(i)]); });
    }

    // Runs fn(shard, pool for its inner chunks) for every shard. With at least as many shards as
    // threads, each thread takes whole shards (its file I/O then overlaps the others' coding);
    // with fewer, shards go one by one and their inner chunks are spread over the threads. Either
    // way at most `pool.size()` shards are in memory at once.
    template <class F>
    static void for_each_shard(ThreadPool& pool, const std::vector<Shape>& shards, F&& fn) {
        if (shards.size() >= pool.size() && pool.size() > 1) {
            for_each_chunk(pool, static_cast<std::int64_t>(shards.size()), [&](std::int64_t i) {
                ThreadPool serial(1);
                fn(shards[static_cast<std::size_t>(i)], serial);
            });
        } else {
            for (const Shape& shard : shards) fn(shard, pool);
        }
    }

    // --- one chunk (shard) ---------------------------------------------------------------------

    void read_chunk(const Shape& coords, const Shape& offset, const Shape& shape, std::uint8_t* out) const {
        const std::string key = chunk_key(coords);
        const Shape origin = origin_of(coords, meta_.chunk_shape);
        const auto reader = store_->open(key);
        if (!reader) {
            Bytes data(static_cast<std::size_t>(product(meta_.chunk_shape)) * elem_);
            fill(data.data(), product(meta_.chunk_shape));
            copy_cell_to_box(origin, meta_.chunk_shape, data.data(), offset, shape, out);
            return;
        }
        // Chunks read only in part are likely read again (neighbouring boxes, halos): cache them.
        const bool cached = cache_ && !covers(offset, shape, origin, meta_.chunk_shape);
        const std::string entry = cache_key(key, "");
        std::shared_ptr<const Bytes> data = cached ? cache_->get<std::uint8_t>(entry, reader->version()) : nullptr;
        if (!data) {
            data = std::make_shared<const Bytes>(meta_.codecs.decode(reader->read(0, reader->size()), meta_.chunk_shape,
                                                                     elem_, describe_chunk(key, coords)));
            if (cached) cache_->put(entry, reader->version(), data);
        }
        copy_cell_to_box(origin, meta_.chunk_shape, data->data(), offset, shape, out);
    }

    // Reads the part of the box in one shard. Many inner chunks: the shard is read in one go;
    // a few: the index and then each chunk are read as byte ranges, through the cache.
    void read_shard(const Sharding& s, const Shape& coords, const Shape& offset, const Shape& shape, std::uint8_t* out,
                    ThreadPool& pool) const {
        const std::string key = chunk_key(coords);
        const Shape origin = origin_of(coords, meta_.chunk_shape);
        const auto inner = chunks_overlapping(offset_in(origin, offset), clip(origin, offset, shape), s.chunk_shape);
        const std::int64_t count = product(s.chunk_shape);
        auto fill_missing = [&](const Shape& c) {
            thread_local Bytes chunk;  // reused: fresh large buffers per chunk cost page faults
            chunk.resize(static_cast<std::size_t>(count) * elem_);
            fill(chunk.data(), count);
            copy_cell_to_box(add(origin, origin_of(c, s.chunk_shape)), s.chunk_shape, chunk.data(), offset, shape, out);
        };
        if (static_cast<std::int64_t>(inner.size()) * 4 < product(chunks_per_shard(s))) {
            const auto reader = store_->open(key);
            const auto index = reader ? shard_index(*reader, key, s) : nullptr;
            for_each_chunk(pool, static_cast<std::int64_t>(inner.size()), [&](std::int64_t i) {
                const Shape& c = inner[static_cast<std::size_t>(i)];
                const auto chunk = index ? inner_chunk(*reader, key, s, *index, c) : nullptr;
                if (!chunk) return fill_missing(c);
                copy_cell_to_box(add(origin, origin_of(c, s.chunk_shape)), s.chunk_shape, chunk->data(), offset, shape,
                                 out);
            });
            return;
        }
        const auto reader = store_->open(key);
        if (!reader) {
            for_each_chunk(pool, static_cast<std::int64_t>(inner.size()),
                           [&](std::int64_t i) { fill_missing(inner[static_cast<std::size_t>(i)]); });
            return;
        }
        // The stored chunks in file order, cut into runs that are read with one pread each (gaps
        // of up to 64 KiB read along): threads read and decode runs side by side, nobody waits
        // for a whole shard file, and memory holds one run per thread, not the shard.
        const auto index = shard_index(*reader, key, s);
        struct Stored {
            std::size_t chunk;
            std::uint64_t at, size;
        };
        std::vector<Stored> stored;
        std::vector<std::size_t> missing;
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < inner.size(); ++i) {
            const auto range = inner_range(key, s, *index, inner[i], static_cast<std::uint64_t>(reader->size()));
            if (!range) {
                missing.push_back(i);
                continue;
            }
            stored.push_back({i, range->first, range->second});
            total += range->second;
        }
        std::sort(stored.begin(), stored.end(), [](const Stored& a, const Stored& b) { return a.at < b.at; });
        const std::uint64_t target = std::max<std::uint64_t>(total / (8 * pool.size()), 1 << 20);
        std::vector<std::size_t> runs{0};  // runs[k]..runs[k+1]: the stored chunks of run k
        for (std::size_t i = 1, begin = 0; i < stored.size(); ++i) {
            const std::uint64_t end = stored[i - 1].at + stored[i - 1].size;
            if (stored[i].at > end + (64 << 10) || end - stored[begin].at >= target) {
                runs.push_back(i);
                begin = i;
            }
        }
        runs.push_back(stored.size());
        const auto num_runs = static_cast<std::int64_t>(stored.empty() ? 0 : runs.size() - 1);
        for_each_chunk(pool, num_runs + static_cast<std::int64_t>(missing.size()), [&](std::int64_t k) {
            if (k >= num_runs) return fill_missing(inner[missing[static_cast<std::size_t>(k - num_runs)]]);
            const Stored* first = stored.data() + runs[static_cast<std::size_t>(k)];
            const Stored* last = stored.data() + runs[static_cast<std::size_t>(k) + 1];
            std::uint64_t end = 0;
            for (const Stored* c = first; c != last; ++c) end = std::max(end, c->at + c->size);
            thread_local Bytes bytes, chunk;  // reused, see fill_missing
            bytes.resize(static_cast<std::size_t>(end - first->at));
            reader->read_into(static_cast<std::int64_t>(first->at), static_cast<std::int64_t>(bytes.size()),
                              bytes.data());
            chunk.resize(static_cast<std::size_t>(count) * elem_);
            for (const Stored* c = first; c != last; ++c) {
                const Shape& coords = inner[c->chunk];
                s.inner->decode_into(bytes.data() + (c->at - first->at), static_cast<std::size_t>(c->size),
                                     s.chunk_shape, elem_, inner_what(key, coords), chunk.data());
                copy_cell_to_box(add(origin, origin_of(coords, s.chunk_shape)), s.chunk_shape, chunk.data(), offset,
                                 shape, out);
            }
        });
    }

    // Cache entries of a chunk (shard) key: "<file>#" then the part ("index", inner coordinates).
    std::string cache_key(const std::string& key, const std::string& part) const {
        return store_->describe(key) + "#" + part;
    }
    void invalidate(const std::string& key) const {
        if (cache_) cache_->erase_prefix(cache_key(key, ""));
    }

    // The decoded index of the shard open in `reader`, from the cache when it holds this version.
    std::shared_ptr<const std::vector<std::uint64_t>> shard_index(const StoreReader& reader, const std::string& key,
                                                                  const Sharding& s) const {
        const std::string entry = cache_key(key, "index");
        if (cache_)
            if (auto hit = cache_->get<std::uint64_t>(entry, reader.version())) return hit;
        if (reader.size() < index_size_) throw CorruptData(store_->describe(key) + ": shard shorter than its index");
        auto index = std::make_shared<const std::vector<std::uint64_t>>(
            decode_index(reader.read(s.index_at_end ? -index_size_ : 0, index_size_), key, s));
        if (cache_) cache_->put(entry, reader.version(), index);
        return index;
    }

    // Inner chunk `c` of the shard open in `reader`, decoded; nullptr if it is not stored.
    std::shared_ptr<const Bytes> inner_chunk(const StoreReader& reader, const std::string& key, const Sharding& s,
                                             const std::vector<std::uint64_t>& index, const Shape& c) const {
        const std::string entry = cache_key(key, coords_string(c));
        if (cache_)
            if (auto hit = cache_->get<std::uint8_t>(entry, reader.version())) return hit;
        const auto range = inner_range(key, s, index, c, static_cast<std::uint64_t>(reader.size()));
        if (!range) return nullptr;
        const Bytes raw =
            reader.read(static_cast<std::int64_t>(range->first), static_cast<std::int64_t>(range->second));
        auto chunk = std::make_shared<Bytes>(static_cast<std::size_t>(product(s.chunk_shape)) * elem_);
        s.inner->decode_into(raw.data(), raw.size(), s.chunk_shape, elem_, inner_what(key, c), chunk->data());
        std::shared_ptr<const Bytes> result = std::move(chunk);
        if (cache_) cache_->put(entry, reader.version(), result);
        return result;
    }

    void write_chunk(const Shape& coords, const Shape& offset, const Shape& shape, const std::uint8_t* in) {
        const std::string key = chunk_key(coords);
        const auto guard = store_->lock(key);
        const Shape origin = origin_of(coords, meta_.chunk_shape);
        const std::int64_t count = product(meta_.chunk_shape);
        // The chunk as it will be: the stored one (if the box covers it only partly) with the box on top.
        Bytes data(static_cast<std::size_t>(count) * elem_);
        if (covers(offset, shape, origin, meta_.chunk_shape)) {
            fill(data.data(), count);
        } else {
            ThreadPool serial(1);
            read(origin, meta_.chunk_shape, data.data(), serial);
        }
        copy_box_to_cell(offset, shape, in, origin, meta_.chunk_shape, data.data());
        if (all_fill(data.data(), count)) {
            store_->erase(key);
        } else {
            store_->set(key, meta_.codecs.encode(data.data(), meta_.chunk_shape, elem_));
        }
        invalidate(key);
    }

    static bool covers(const Shape& offset, const Shape& shape, const Shape& origin, const Shape& cell) {
        for (std::size_t d = 0; d < shape.size(); ++d)
            if (offset[d] > origin[d] || origin[d] + cell[d] > offset[d] + shape[d]) return false;
        return true;
    }
    static bool overlaps(const Shape& offset, const Shape& shape, const Shape& origin, const Shape& cell) {
        for (std::size_t d = 0; d < shape.size(); ++d)
            if (origin[d] >= offset[d] + shape[d] || offset[d] >= origin[d] + cell[d]) return false;
        return true;
    }

    // --- shards --------------------------------------------------------------------------------

    Shape chunks_per_shard(const Sharding& s) const {
        Shape n(s.chunk_shape.size());
        for (std::size_t d = 0; d < n.size(); ++d) n[d] = meta_.chunk_shape[d] / s.chunk_shape[d];
        return n;
    }
    Shape index_shape(const Sharding& s) const {
        Shape shape = chunks_per_shard(s);
        shape.push_back(2);
        return shape;
    }
    // Position of inner chunk `inner` in the index, which is in C order over the inner grid.
    std::int64_t index_position(const Sharding& s, const Shape& inner) const {
        const Shape cps = chunks_per_shard(s);
        std::int64_t pos = 0;
        for (std::size_t d = 0; d < inner.size(); ++d) pos = pos * cps[d] + inner[d];
        return pos;
    }

    // The decoded index as (offset, nbytes) pairs in C order of the inner grid.
    std::vector<std::uint64_t> decode_index(const Bytes& raw, const std::string& key, const Sharding& s) const {
        const Shape shape = index_shape(s);
        const Bytes fortran = s.index->decode(raw, shape, 8, store_->describe(key) + " (shard index)");
        // Fortran order of (inner grid..., 2) -> pairs in C order of the inner grid.
        const std::int64_t n = product(shape) / 2;
        std::vector<std::uint64_t> pairs(static_cast<std::size_t>(2 * n));
        const auto* words = reinterpret_cast<const std::uint64_t*>(fortran.data());
        for (std::int64_t i = 0; i < n; ++i) {  // i = Fortran position over the inner grid
            const auto p = static_cast<std::size_t>(index_position(s, inner_coords(s, i)));
            pairs[2 * p] = words[i];
            pairs[2 * p + 1] = words[i + n];
        }
        return pairs;
    }

    // Grid coordinates of the inner chunk at Fortran position i of the inner grid.
    Shape inner_coords(const Sharding& s, std::int64_t i) const {
        const Shape cps = chunks_per_shard(s);
        Shape inner(cps.size());
        for (std::size_t d = 0; d < cps.size(); ++d) {
            inner[d] = i % cps[d];
            i /= cps[d];
        }
        return inner;
    }

    Bytes index_slice(const Bytes& shard, const std::string& key, const Sharding& s) const {
        if (static_cast<std::int64_t>(shard.size()) < index_size_)
            throw CorruptData(store_->describe(key) + ": shard shorter than its index");
        const auto begin = s.index_at_end ? shard.end() - index_size_ : shard.begin();
        return Bytes(begin, begin + index_size_);
    }

    // Where inner chunk `inner` is stored within the whole shard `shard`: (nullptr, 0) if absent.
    std::pair<const std::uint8_t*, std::size_t> inner_span(const Bytes& shard, const std::string& key,
                                                           const Sharding& s, const std::vector<std::uint64_t>& index,
                                                           const Shape& inner) const {
        const auto range = inner_range(key, s, index, inner, shard.size());
        if (!range) return {nullptr, 0};
        return {shard.data() + range->first, static_cast<std::size_t>(range->second)};
    }

    // (offset, nbytes) of inner chunk `inner` in a shard of `shard_size` bytes, checked to lie
    // inside it; nothing if the chunk is not stored.
    std::optional<std::pair<std::uint64_t, std::uint64_t>> inner_range(const std::string& key, const Sharding& s,
                                                                       const std::vector<std::uint64_t>& index,
                                                                       const Shape& inner,
                                                                       std::uint64_t shard_size) const {
        const auto p = static_cast<std::size_t>(index_position(s, inner));
        const std::uint64_t at = index[2 * p], size = index[2 * p + 1];
        if (at == Sharding::empty && size == Sharding::empty) return std::nullopt;
        if (at > shard_size || size > shard_size - at)
            throw CorruptData(inner_what(key, inner) + ": index entry points outside the shard");
        return std::make_pair(at, size);
    }

    std::string inner_what(const std::string& key, const Shape& inner) const {
        return store_->describe(key) + " inner chunk " + coords_string(inner);
    }

    // Rewrites one shard inner chunk by inner chunk: chunks the box touches are decoded (or
    // start as fill), overlaid and re-encoded; the others keep their stored bytes. Chunks are
    // encoded in groups of consecutive ones, a task each. With the index at the end (the
    // default), a group is appended to the new shard file as soon as it and every group before it
    // are done, while later groups are still being encoded: the file write overlaps the
    // compression, memory holds the old shard and the groups not yet written, and the file is
    // the same for every thread count (chunks in index order).
    void write_shard(const Sharding& s, const Shape& coords, const Shape& offset, const Shape& shape,
                     const std::uint8_t* in, ThreadPool& pool) {
        const std::string key = chunk_key(coords);
        const auto guard = store_->lock(key);
        const Shape origin = origin_of(coords, meta_.chunk_shape);
        const auto old = covers(offset, shape, origin, meta_.chunk_shape) ? std::nullopt : store_->get(key);
        std::vector<std::uint64_t> old_index;
        if (old) old_index = decode_index(index_slice(*old, key, s), key, s);
        const std::int64_t n = product(chunks_per_shard(s));
        const std::int64_t count = product(s.chunk_shape);
        std::vector<Bytes> encoded(static_cast<std::size_t>(n));  // per inner chunk, Fortran order; empty = absent
        auto encode = [&](std::int64_t i) {
            const Shape inner = inner_coords(s, i);
            const Shape inner_origin = add(origin, origin_of(inner, s.chunk_shape));
            const auto [at, size] = old ? inner_span(*old, key, s, old_index, inner)
                                        : std::pair<const std::uint8_t*, std::size_t>{nullptr, 0};
            if (!overlaps(offset, shape, inner_origin, s.chunk_shape)) {
                if (at) encoded[static_cast<std::size_t>(i)].assign(at, at + size);
                return;
            }
            thread_local Bytes chunk;  // reused, see read_shard
            chunk.resize(static_cast<std::size_t>(count) * elem_);
            if (covers(offset, shape, inner_origin, s.chunk_shape)) {
                // overwritten whole below: neither the stored bytes nor the fill matter
            } else if (at) {
                s.inner->decode_into(at, size, s.chunk_shape, elem_, inner_what(key, inner), chunk.data());
            } else {
                fill(chunk.data(), count);
            }
            copy_box_to_cell(offset, shape, in, inner_origin, s.chunk_shape, chunk.data());
            if (!all_fill(chunk.data(), count))
                encoded[static_cast<std::size_t>(i)] = s.inner->encode(chunk.data(), s.chunk_shape, elem_);
        };

        std::vector<std::uint64_t> words(static_cast<std::size_t>(2 * n), Sharding::empty);  // Fortran (grid..., 2)
        std::unique_ptr<StoreWriter> writer;  // opened with the first stored chunk
        std::uint64_t written = s.index_at_end ? 0 : static_cast<std::uint64_t>(index_size_);
        auto place = [&](std::int64_t i) {  // the offset of chunk i in the file, once it is known
            Bytes& e = encoded[static_cast<std::size_t>(i)];
            if (e.empty()) return;
            words[static_cast<std::size_t>(i)] = written;
            words[static_cast<std::size_t>(i + n)] = e.size();
            written += e.size();
        };
        auto encode_index = [&] {
            return s.index->encode(reinterpret_cast<const std::uint8_t*>(words.data()), index_shape(s), 8);
        };
        auto append = [&](std::int64_t begin, std::int64_t end) {  // chunks [begin, end), in one call
            std::vector<StoreWriter::Part> parts;
            for (std::int64_t i = begin; i < end; ++i) {
                const Bytes& e = encoded[static_cast<std::size_t>(i)];
                if (!e.empty()) parts.push_back({e.data(), e.size()});
            }
            if (parts.empty()) return;
            if (!writer) writer = store_->write(key);
            writer->append(parts);
            for (std::int64_t i = begin; i < end; ++i) Bytes().swap(encoded[static_cast<std::size_t>(i)]);
        };

        const std::int64_t groups = std::min<std::int64_t>(n, 8 * static_cast<std::int64_t>(pool.size()));
        auto group_begin = [&](std::int64_t g) { return n * g / groups; };
        std::mutex mutex;  // guards finished, next_group and writing
        std::vector<char> finished(static_cast<std::size_t>(groups), 0);
        std::int64_t next_group = 0;
        bool writing = false;
        parallel_for(
            pool, 0, groups,
            [&](std::int64_t g) {
                for (std::int64_t i = group_begin(g); i < group_begin(g + 1); ++i) encode(i);
                if (!s.index_at_end) return;
                std::unique_lock<std::mutex> lock(mutex);
                finished[static_cast<std::size_t>(g)] = 1;
                if (writing) return;  // the thread writing will find this group done
                writing = true;
                while (next_group < groups && finished[static_cast<std::size_t>(next_group)]) {
                    const std::int64_t k = next_group++;
                    lock.unlock();
                    for (std::int64_t i = group_begin(k); i < group_begin(k + 1); ++i) place(i);
                    append(group_begin(k), group_begin(k + 1));
                    lock.lock();
                }
                writing = false;
            },
            groups);
        if (!s.index_at_end) {  // the index goes first: every chunk's place must be known before writing
            for (std::int64_t i = 0; i < n; ++i) place(i);
            if (written > static_cast<std::uint64_t>(index_size_)) {
                const Bytes index = encode_index();
                writer = store_->write(key);
                writer->append(index.data(), index.size());
                append(0, n);
            }
        }
        if (!writer) {  // nothing but fill: no shard
            store_->erase(key);
            invalidate(key);
            return;
        }
        if (s.index_at_end) {
            const Bytes index = encode_index();
            writer->append(index.data(), index.size());
        }
        writer->commit();
        invalidate(key);
    }

    // --- small helpers ---------------------------------------------------------------------------

    static Shape add(const Shape& a, const Shape& b) {
        Shape r(a.size());
        for (std::size_t d = 0; d < a.size(); ++d) r[d] = a[d] + b[d];
        return r;
    }
    // The box clipped to the cell at `origin`, relative to it: used to find inner chunks.
    Shape offset_in(const Shape& origin, const Shape& offset) const {
        Shape r(origin.size());
        for (std::size_t d = 0; d < origin.size(); ++d) r[d] = std::max(offset[d] - origin[d], std::int64_t{0});
        return r;
    }
    Shape clip(const Shape& origin, const Shape& offset, const Shape& shape) const {
        Shape r(origin.size());
        for (std::size_t d = 0; d < origin.size(); ++d) {
            const std::int64_t lo = std::max(offset[d], origin[d]);
            const std::int64_t hi = std::min(offset[d] + shape[d], origin[d] + meta_.chunk_shape[d]);
            r[d] = std::max(hi - lo, std::int64_t{0});
        }
        return r;
    }
    static std::string coords_string(const Shape& c) {
        std::string s = "(";
        for (std::size_t d = 0; d < c.size(); ++d) s += (d ? ", " : "") + std::to_string(c[d]);
        return s + ")";
    }
    std::string describe_chunk(const std::string& key, const Shape& coords) const {
        return store_->describe(key) + " (chunk " + coords_string(coords) + ")";
    }

    std::shared_ptr<Store> store_;
    std::string path_;
    ArrayMetadata meta_;
    std::size_t elem_;
    Bytes fill_;
    std::int64_t index_size_ = 0;  // encoded shard index, when sharded
    std::shared_ptr<ChunkCache> cache_ = ChunkCache::shared();
};

}  // namespace vx::io

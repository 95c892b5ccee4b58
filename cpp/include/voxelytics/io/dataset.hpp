// Dataset: a webKnossos dataset on disk. `datasource-properties.json` at the root describes the
// voxel size and the layers (color or segmentation, element class, bounding box in mag-1
// voxels, channels, mags); each mag of a layer is a Zarr v3 array shaped (c, x, y, z) in the
// folder `<layer>/<mag>` (mag "1", "2", "2-2-1", ...). Fields this class does not model (view
// configurations, mappings, additional axes) are kept as they are on rewrite.
//
// Coordinates are mag-1 voxels unless a name says otherwise. Writing through a Mag grows the
// array, the layer's bounding box and (segmentation) its largestSegmentId. Every change to the
// properties file is made under its lock on the file as stored (re-read first), so processes
// adding layers, mags or data to one dataset keep each other's changes; the file is replaced
// atomically.
#pragma once

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "voxelytics/core/blocking.hpp"
#include "voxelytics/core/box.hpp"
#include "voxelytics/io/downsampling.hpp"
#include "voxelytics/io/zarr_array.hpp"

namespace vx::io {

/// "1" for (1, 1, 1), "2" for (2, 2, 2), "2-2-1" for (2, 2, 1): webKnossos' folder names.
inline std::string mag_name(Vec3 mag) {
    if (mag.x == mag.y && mag.y == mag.z) return std::to_string(mag.x);
    return std::to_string(mag.x) + "-" + std::to_string(mag.y) + "-" + std::to_string(mag.z);
}

/// webKnossos' elementClass: the type of a whole voxel, all channels together ("uint24" for 3
/// uint8 channels, "float96" for 3 float32 ones), with "float" and "double" for one float channel.
inline std::string element_class(DType d, std::int64_t channels) {
    if (channels == 1 && d == DType::float32) return "float";
    if (channels == 1 && d == DType::float64) return "double";
    if (channels == 1) return dtype_name(d);
    const std::string name = dtype_name(d);  // "uint8", "int16", "float32", ...
    const std::size_t digits = name.find_first_of("0123456789");
    return name.substr(0, digits) + std::to_string(std::stoi(name.substr(digits)) * channels);
}
/// The type of one channel, from an elementClass and the number of channels.
inline DType dtype_from_element_class(std::string name, std::int64_t channels, const std::string& where) {
    if (name == "float") name = "float32";
    if (name == "double") name = "float64";
    const std::size_t digits = name.find_first_of("0123456789");
    int bits = 0;
    if (digits != std::string::npos && digits > 0 &&
        name.find_first_not_of("0123456789", digits) == std::string::npos && name.size() - digits <= 4)
        bits = std::stoi(name.substr(digits));
    if (bits == 0 || channels < 1 || bits % channels != 0)
        throw UnsupportedType(where + ": unsupported elementClass \"" + name + "\" for " + std::to_string(channels) +
                              " channel(s) (the type of a whole voxel: uint8, uint24 for 3 x uint8, float, float96 " +
                              "for 3 x float32, ...)");
    return dtype_from_zarr(name.substr(0, digits) + std::to_string(bits / channels), where);
}

/// A file attached to a segmentation layer (webKnossos "attachments": meshes, agglomerate
/// mappings, segment index, ...). `kind` is the properties key: "meshes", "agglomerates",
/// "connectomes" (lists) or "segmentIndex", "segmentStatistics", "cumsum" (one each).
struct Attachment {
    std::string kind, name, path, data_format;  // path relative to the dataset, as stored
};

inline bool attachment_kind_is_list(const std::string& kind) {
    if (kind == "meshes" || kind == "agglomerates" || kind == "connectomes") return true;
    if (kind == "segmentIndex" || kind == "segmentStatistics" || kind == "cumsum") return false;
    throw InvalidArgument("unknown attachment kind '" + kind +
                          "' (meshes, agglomerates, connectomes, segmentIndex, segmentStatistics, cumsum)");
}

/// The largest value among `count` elements of an integer type (nothing for float types or no
/// elements): what a segmentation write raises largestSegmentId to.
inline std::optional<std::uint64_t> largest_value(DType dtype, const std::uint8_t* data, std::int64_t count,
                                                  ThreadPool& pool) {
    if (dtype == DType::float32 || dtype == DType::float64 || count <= 0) return std::nullopt;
    return dispatch<IntegerTypes>(dtype, "segmentation", [&](auto tag) -> std::optional<std::uint64_t> {
        using T = typename decltype(tag)::type;
        const T* values = reinterpret_cast<const T*>(data);
        const auto parts = static_cast<std::int64_t>(pool.size());
        std::vector<T> part_max(static_cast<std::size_t>(parts), T{0});
        parallel_for(
            pool, 0, parts,
            [&](std::int64_t p) {
                T m = values[count * p / parts];
                for (std::int64_t i = count * p / parts; i < count * (p + 1) / parts; ++i) m = std::max(m, values[i]);
                part_max[static_cast<std::size_t>(p)] = m;
            },
            parts);
        const T m = *std::max_element(part_max.begin(), part_max.end());
        if (m <= T{0}) return std::uint64_t{0};
        return static_cast<std::uint64_t>(m);
    });
}

struct LayerInfo {
    std::string name;
    std::string category;  // "color" or "segmentation"
    DType dtype = DType::uint8;
    std::int64_t num_channels = 1;
    Box bounding_box;  // mag-1 voxels
    std::optional<std::uint64_t> largest_segment_id;
    std::vector<Vec3> mags;
    std::vector<Attachment> attachments;
    json extra = json::object();  // fields kept verbatim
};

class Dataset;

/// One mag of one layer: reads and writes boxes given in mag-1 voxels.
class Mag {
public:
    Vec3 factor() const { return factor_; }
    const ZarrArray& array() const { return *array_; }

    /// Reads `box` (mag-1 voxels, aligned to the mag) into `out`: (c, x, y, z) in Fortran order,
    /// in this mag's voxels.
    void read(const Box& box, std::uint8_t* out, ThreadPool& pool) const;
    /// Writes `size` voxels of this mag (c, x, y, z Fortran order in `data`) at `offset` (mag-1
    /// voxels, aligned to the mag), growing the array and (unless told not to, as when building
    /// mags from the layer's own data) the layer's bounding box and largest segment id.
    void write(Vec3 offset, Vec3 size, const std::uint8_t* data, ThreadPool& pool, bool grow_bounding_box = true);

private:
    friend class Dataset;
    Mag(Dataset* dataset, std::string layer, Vec3 factor, std::shared_ptr<ZarrArray> array, bool segmentation)
        : dataset_(dataset),
          layer_(std::move(layer)),
          factor_(factor),
          array_(std::move(array)),
          segmentation_(segmentation) {}
    Box to_mag(const Box& mag1, const char* what) const;

    Dataset* dataset_;
    std::string layer_;
    Vec3 factor_;
    std::shared_ptr<ZarrArray> array_;
    bool segmentation_;
};

class Dataset {
public:
    static constexpr const char* properties_file = "datasource-properties.json";

    /// A new, empty dataset at `path` (which must not hold one yet).
    static std::unique_ptr<Dataset> create(const std::string& path, std::array<double, 3> voxel_size,
                                           const std::string& unit = "nanometer") {
        auto store = std::make_shared<FileStore>(path);
        if (store->get(properties_file)) throw InvalidArgument("a dataset already exists at " + path);
        std::unique_ptr<Dataset> ds(new Dataset(path, std::move(store)));
        ds->voxel_size_ = voxel_size;
        ds->unit_ = unit;
        ds->save();
        const std::string group = R"({"zarr_format": 3, "node_type": "group", "attributes": {}})";
        ds->store_->set("zarr.json", Bytes(group.begin(), group.end()));
        return ds;
    }

    static std::unique_ptr<Dataset> open(const std::string& path) {
        auto store = std::make_shared<FileStore>(path);
        const auto raw = store->get(properties_file);
        const std::string where = store->describe(properties_file);
        if (!raw) throw NotFound("no webKnossos dataset at " + path + " (" + where + " is missing)");
        std::unique_ptr<Dataset> ds(new Dataset(path, std::move(store)));
        ds->parse(parse_json(raw->begin(), raw->end(), where), where);
        return ds;
    }

    const std::string& path() const { return path_; }
    std::array<double, 3> voxel_size() const { return voxel_size_; }
    const std::string& unit() const { return unit_; }
    std::vector<std::string> layer_names() const {
        const std::lock_guard<std::mutex> lock(mutex_);
        std::vector<std::string> names;
        for (const auto& l : layers_) names.push_back(l.name);
        return names;
    }
    /// A copy: writes from other threads may update the layer meanwhile.
    LayerInfo layer(const std::string& name) const {
        const std::lock_guard<std::mutex> lock(mutex_);
        return *find_layer(name);
    }

    void add_layer(const std::string& name, const std::string& category, DType dtype, std::int64_t num_channels = 1) {
        if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
            throw InvalidArgument("invalid layer name '" + name + "'");
        if (category != "color" && category != "segmentation")
            throw InvalidArgument("layer category must be 'color' or 'segmentation', got '" + category + "'");
        if (num_channels < 1) throw InvalidArgument("num_channels must be >= 1");
        LayerInfo l;
        l.name = name;
        l.category = category;
        l.dtype = dtype;
        l.num_channels = num_channels;
        if (category == "segmentation") l.largest_segment_id = 0;
        update([&] {
            for (const auto& other : layers_)
                if (other.name == name) throw InvalidArgument("layer '" + name + "' exists already in " + path_);
            layers_.push_back(l);
        });
    }

    /// Adds a mag to a layer: chunks of `chunk_shape` inside shards of `shard_shape` (x, y, z),
    /// zstd at `compression_level`: the layout webknossos-libs writes.
    Mag add_mag(const std::string& layer, Vec3 mag, Vec3 chunk_shape = {32, 32, 32},
                Vec3 shard_shape = {1024, 1024, 1024}, int compression_level = 5) {
        if (mag.x < 1 || mag.y < 1 || mag.z < 1) throw InvalidArgument("mag factors must be >= 1");
        for (int d = 0; d < 3; ++d)
            if (chunk_shape[static_cast<std::size_t>(d)] < 1 ||
                shard_shape[static_cast<std::size_t>(d)] % chunk_shape[static_cast<std::size_t>(d)] != 0)
                throw InvalidArgument("shard_shape must be a positive multiple of chunk_shape on every axis");
        std::shared_ptr<ZarrArray> array;
        bool segmentation = false;
        update([&] {
            LayerInfo& l = *find_layer(layer);
            segmentation = l.category == "segmentation";
            for (const Vec3& m : l.mags)
                if (m == mag) throw InvalidArgument("layer '" + layer + "' has mag " + mag_name(mag) + " already");
            const Shape chunk{l.num_channels, chunk_shape.x, chunk_shape.y, chunk_shape.z};
            const Shape shard{l.num_channels, shard_shape.x, shard_shape.y, shard_shape.z};
            const json meta = {{"zarr_format", 3},
                               {"node_type", "array"},
                               {"shape", array_shape(l, mag, shard)},
                               {"data_type", dtype_name(l.dtype)},
                               {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", shard}}}}},
                               {"chunk_key_encoding", {{"name", "default"}, {"configuration", {{"separator", "/"}}}}},
                               {"fill_value", 0},
                               {"codecs", default_codecs(4, chunk, compression_level)},
                               {"dimension_names", {"c", "x", "y", "z"}},
                               {"attributes", json::object()}};
            const std::string dir = layer + "/" + mag_name(mag);
            array = std::make_shared<ZarrArray>(
                ZarrArray::create(store_, dir, ArrayMetadata::from_json(meta, store_->describe(dir + "/zarr.json"))));
            l.mags.push_back(mag);
        });
        return Mag(this, layer, mag, std::move(array), segmentation);
    }

    Mag get_mag(const std::string& layer, Vec3 mag) {
        const LayerInfo l = this->layer(layer);
        for (const Vec3& m : l.mags)
            if (m == mag)
                return Mag(this, layer, mag,
                           std::make_shared<ZarrArray>(ZarrArray::open(store_, layer + "/" + mag_name(mag))),
                           l.category == "segmentation");
        throw NotFound("layer '" + layer + "' of " + path_ + " has no mag " + mag_name(mag));
    }

    /// Builds mag `to` of a layer from its mag `from` (each factor of `to` a multiple of the one of
    /// `from`), block by block (one target shard at a time, so memory stays bounded), adding
    /// the mag if it does not exist yet with the chunk and shard shapes of `from`.
    Mag downsample(const std::string& layer, Vec3 from, Vec3 to, Downsampling method, ThreadPool& pool) {
        Mag source = get_mag(layer, from);
        const Vec3 ratio = floor_div(to, from);
        if (ratio * from != to || ratio.x < 1 || ratio.y < 1 || ratio.z < 1)
            throw InvalidArgument("mag " + mag_name(to) + " is not a multiple of mag " + mag_name(from));
        const ArrayMetadata& meta = source.array().metadata();
        const Shape inner = meta.codecs.sharding() ? meta.codecs.sharding()->chunk_shape : meta.chunk_shape;
        const Vec3 chunk{inner[1], inner[2], inner[3]},
            shard{meta.chunk_shape[1], meta.chunk_shape[2], meta.chunk_shape[3]};
        const LayerInfo info = this->layer(layer);
        bool exists = false;
        for (const Vec3& m : info.mags) exists = exists || m == to;
        Mag target = exists ? get_mag(layer, to) : add_mag(layer, to, chunk, shard);
        const Box covered = info.bounding_box.aligned_outward(to);  // mag 1
        const Box in_target(floor_div(covered.topleft(), to), floor_div(covered.size(), to));
        const std::int64_t channels = meta.shape[0];
        dispatch<AllTypes>(meta.dtype, "layer", [&](auto tag) {
            using T = typename decltype(tag)::type;
            const BlockGrid grid(in_target, shard);
            for (std::int64_t i = 0; i < grid.size(); ++i) {
                const Box block = grid[i].core;  // target voxels
                const Box mag1(block.topleft() * to, block.size() * to);
                std::vector<T> src(static_cast<std::size_t>(channels * (block.size() * ratio).prod()));
                source.read(mag1, reinterpret_cast<std::uint8_t*>(src.data()), pool);
                std::vector<T> dst(static_cast<std::size_t>(channels * block.volume()));
                io::downsample(src.data(), channels, block.size() * ratio, ratio, method, dst.data(), pool);
                target.write(mag1.topleft(), block.size(), reinterpret_cast<const std::uint8_t*>(dst.data()), pool,
                             false);
            }
        });
        return target;
    }

    /// Records an attachment of a layer (replacing one of the same kind and name). `path` is
    /// relative to the dataset folder (webknossos-libs puts them in `<layer>/<kind>/<name>`).
    void add_attachment(const std::string& layer, const Attachment& attachment) {
        const bool list = attachment_kind_is_list(attachment.kind);
        if (attachment.name.empty() || attachment.path.empty())
            throw InvalidArgument("an attachment needs a name and a path");
        update([&] {
            auto& all = find_layer(layer)->attachments;
            all.erase(std::remove_if(all.begin(), all.end(),
                                     [&](const Attachment& a) {
                                         return a.kind == attachment.kind && (!list || a.name == attachment.name);
                                     }),
                      all.end());
            all.push_back(attachment);
        });
    }

    /// Adds layer `name` as a view of layer `foreign_layer` of `foreign` (another dataset): the
    /// same properties and mags, each mag folder a relative symbolic link to the foreign one, so
    /// a dataset can build on another one's layers without copying them (and the pair can move
    /// together). Attachments are not carried over: those added here are this dataset's own.
    void add_layer_link(const std::string& name, const Dataset& foreign, const std::string& foreign_layer) {
        namespace fs = std::filesystem;
        LayerInfo l = foreign.layer(foreign_layer);
        l.name = name;
        l.attachments.clear();
        const fs::path folder = fs::absolute(fs::path(path_) / name);
        std::vector<fs::path> targets;
        for (const Vec3& m : l.mags) {
            targets.push_back(fs::absolute(fs::path(foreign.path()) / foreign_layer / mag_name(m)));
            if (!fs::is_directory(targets.back()))
                throw NotFound("layer '" + foreign_layer + "' of " + foreign.path() + ": mag folder " +
                               targets.back().string() + " is missing");
        }
        add_layer(name, l.category, l.dtype, l.num_channels);
        fs::create_directories(folder);
        for (std::size_t i = 0; i < targets.size(); ++i)
            fs::create_directory_symlink(targets[i].lexically_relative(folder), folder / mag_name(l.mags[i]));
        update([&] { *find_layer(name) = l; });
    }

    /// Sets a segmentation layer's largestSegmentId (nothing: unknown), e.g. after relabelling.
    void set_largest_segment_id(const std::string& layer, std::optional<std::uint64_t> id) {
        update([&] {
            LayerInfo& l = *find_layer(layer);
            if (l.category != "segmentation")
                throw InvalidArgument("layer '" + layer + "' is not a segmentation layer");
            l.largest_segment_id = id;
        });
    }

    /// Writes datasource-properties.json (atomically).
    void save() const {
        const std::string text = to_json().dump(4);
        store_->set(properties_file, Bytes(text.begin(), text.end()));
    }

    json to_json() const {
        json layers = json::array();
        for (const auto& l : layers_) {
            json j = l.extra;
            j["name"] = l.name;
            j["category"] = l.category;
            j["boundingBox"] = {
                {"topLeft", {l.bounding_box.topleft().x, l.bounding_box.topleft().y, l.bounding_box.topleft().z}},
                {"width", l.bounding_box.size().x},
                {"height", l.bounding_box.size().y},
                {"depth", l.bounding_box.size().z}};
            j["dataFormat"] = "zarr3";
            j["elementClass"] = element_class(l.dtype, l.num_channels);
            j["numChannels"] = l.num_channels;
            json mags = json::array();
            for (const Vec3& m : l.mags)
                mags.push_back({{"mag", {m.x, m.y, m.z}},
                                {"path", "./" + l.name + "/" + mag_name(m)},
                                {"axisOrder", {{"c", 0}, {"x", 1}, {"y", 2}, {"z", 3}}}});
            j["mags"] = mags;
            if (l.largest_segment_id) j["largestSegmentId"] = *l.largest_segment_id;
            if (!l.attachments.empty()) {
                json attachments = json::object();
                for (const Attachment& a : l.attachments) {
                    const json entry = {{"name", a.name}, {"path", a.path}, {"dataFormat", a.data_format}};
                    if (attachment_kind_is_list(a.kind)) {
                        attachments[a.kind].push_back(entry);
                    } else {
                        attachments[a.kind] = entry;
                    }
                }
                j["attachments"] = attachments;
            }
            layers.push_back(j);
        }
        json j = extra_;
        j["id"] = {{"name", std::filesystem::path(path_).filename().string()}, {"team", ""}};
        j["scale"] = {{"factor", voxel_size_}, {"unit", unit_}};
        j["dataLayers"] = layers;
        j["version"] = 1;
        return j;
    }

private:
    friend class Mag;
    Dataset(std::string path, std::shared_ptr<FileStore> store) : path_(std::move(path)), store_(std::move(store)) {}

    LayerInfo* find_layer(const std::string& name) {
        for (auto& l : layers_)
            if (l.name == name) return &l;
        throw NotFound("no layer '" + name + "' in " + path_);
    }
    const LayerInfo* find_layer(const std::string& name) const { return const_cast<Dataset*>(this)->find_layer(name); }

    // Array shape (c, x, y, z) covering the layer's bounding box in this mag, in whole shards.
    static Shape array_shape(const LayerInfo& l, Vec3 mag, const Shape& shard) {
        const Vec3 end = ceil_div(l.bounding_box.bottomright(), mag);
        return {l.num_channels, ceil_div(end.x, shard[1]) * shard[1], ceil_div(end.y, shard[2]) * shard[2],
                ceil_div(end.z, shard[3]) * shard[3]};
    }

    void parse(const json& document, const std::string& where) {
        const JsonField j(document, where);
        j.require_object();
        const JsonField scale = j.field("scale");
        if (scale.value().is_array()) {
            voxel_size_ = vec3_of<double>(scale);
            unit_ = "nanometer";
        } else {
            voxel_size_ = vec3_of<double>(scale.field("factor"));
            unit_ = scale.get("unit", "nanometer");
        }
        for (std::size_t d = 0; d < 3; ++d)
            if (!(voxel_size_[d] > 0)) scale.fail("voxel sizes must be positive");
        extra_ = document;
        for (const char* key : {"id", "scale", "dataLayers", "version"}) extra_.erase(key);
        for (const JsonField& lj : j.field("dataLayers").items()) {
            LayerInfo l;
            l.name = lj.field("name").as<std::string>();
            l.category = lj.field("category").as<std::string>();
            const std::string format = lj.get("dataFormat", "");
            if (format != "zarr3")
                throw UnsupportedType(lj.where() + ": dataFormat '" + format + "' (only zarr3 is supported)");
            l.num_channels = lj.get<std::int64_t>("numChannels", 1);
            if (l.num_channels < 1) lj.field("numChannels").fail("must be >= 1");
            const JsonField element_class = lj.field("elementClass");
            l.dtype = dtype_from_element_class(element_class.as<std::string>(), l.num_channels, element_class.where());
            const JsonField bb = lj.field("boundingBox");
            const Vec3 size{bb.field("width").as<std::int64_t>(), bb.field("height").as<std::int64_t>(),
                            bb.field("depth").as<std::int64_t>()};
            if (size.x < 0 || size.y < 0 || size.z < 0) bb.fail("negative width, height or depth");
            const auto tl = vec3_of<std::int64_t>(bb.field("topLeft"));
            l.bounding_box = Box({tl[0], tl[1], tl[2]}, size);
            if (const auto largest = lj.find("largestSegmentId")) l.largest_segment_id = largest->as<std::uint64_t>();
            for (const JsonField& m : lj.field("mags").items()) {
                const auto f = vec3_of<std::int64_t>(m.field("mag"));
                if (f[0] < 1 || f[1] < 1 || f[2] < 1) m.field("mag").fail("mag factors must be >= 1");
                l.mags.push_back({f[0], f[1], f[2]});
            }
            if (const auto attachments = lj.find("attachments"))
                for (const auto& [kind, value] : attachments->require_object().value().items()) {
                    if (value.is_null()) continue;
                    const JsonField entries = attachments->field(kind);
                    auto add = [&, kind = kind](const JsonField& a) {
                        l.attachments.push_back({kind, a.field("name").as<std::string>(),
                                                 a.field("path").as<std::string>(), a.get("dataFormat", "")});
                    };
                    if (value.is_array()) {
                        for (const JsonField& a : entries.items()) add(a);
                    } else {
                        add(entries);
                    }
                }
            l.extra = lj.value();
            for (const char* key : {"name", "category", "boundingBox", "dataFormat", "elementClass", "numChannels",
                                    "mags", "largestSegmentId", "attachments"})
                l.extra.erase(key);
            layers_.push_back(l);
        }
    }

    // A list of three numbers ([x, y, z]).
    template <class T>
    static std::array<T, 3> vec3_of(const JsonField& f) {
        const auto v = f.list<T>();
        if (v.size() != 3) f.fail("expected three numbers [x, y, z], got " + std::to_string(v.size()));
        return {v[0], v[1], v[2]};
    }

    // Changes the properties as stored now: under the properties file's lock, the file is
    // re-read (keeping what other processes added), `change` edits layers_, and it is saved.
    template <class F>
    void update(F&& change) {
        const std::lock_guard<std::mutex> lock(mutex_);
        const auto guard = store_->lock(properties_file);
        if (const auto raw = store_->get(properties_file)) {
            const std::string where = store_->describe(properties_file);
            std::vector<LayerInfo> before;
            before.swap(layers_);
            try {
                parse(parse_json(raw->begin(), raw->end(), where), where);
            } catch (...) {
                layers_.swap(before);  // keep the last good state
                throw;
            }
        }
        change();
        save();
    }

    // After a write through a Mag: grows the layer's bounding box to include `box` (mag 1) and
    // raises its largest segment id to `largest_written`, saving only if either changes.
    void grow(const std::string& layer, const Box& box, std::optional<std::uint64_t> largest_written) {
        auto needed = [&] {
            const LayerInfo& l = *find_layer(layer);
            return !l.bounding_box.contains(box) ||
                   (largest_written && l.largest_segment_id && *largest_written > *l.largest_segment_id);
        };
        {
            const std::lock_guard<std::mutex> lock(mutex_);
            if (!needed()) return;
        }
        update([&] {
            LayerInfo& l = *find_layer(layer);
            l.bounding_box = l.bounding_box.union_with(box);
            if (largest_written && l.largest_segment_id)
                l.largest_segment_id = std::max(*l.largest_segment_id, *largest_written);
        });
    }

    std::string path_;
    std::shared_ptr<FileStore> store_;
    std::array<double, 3> voxel_size_{1, 1, 1};
    std::string unit_ = "nanometer";
    std::vector<LayerInfo> layers_;
    json extra_ = json::object();
    mutable std::mutex mutex_;  // guards layers_ against writes from other threads
};

inline Box Mag::to_mag(const Box& mag1, const char* what) const {
    if (!mag1.is_aligned(factor_))
        throw InvalidArgument(std::string(what) + ": " + mag1.to_string() + " is not aligned to mag " +
                              mag_name(factor_));
    return Box(floor_div(mag1.topleft(), factor_), floor_div(mag1.size(), factor_));
}

inline void Mag::read(const Box& box, std::uint8_t* out, ThreadPool& pool) const {
    const Box b = to_mag(box, "read");
    const std::int64_t c = array_->metadata().shape[0];
    array_->read({0, b.topleft().x, b.topleft().y, b.topleft().z}, {c, b.size().x, b.size().y, b.size().z}, out, pool);
}

inline void Mag::write(Vec3 offset, Vec3 size, const std::uint8_t* data, ThreadPool& pool, bool grow_bounding_box) {
    const Box mag1(offset, size * factor_);
    const Box b = to_mag(mag1, "write");
    Shape shape = array_->metadata().shape;
    const Shape& shard = array_->metadata().chunk_shape;
    bool grow = false;
    for (std::size_t d = 1; d < 4; ++d) {
        const std::int64_t end = b.bottomright()[d - 1];
        if (end > shape[d]) {
            shape[d] = ceil_div(end, shard[d]) * shard[d];
            grow = true;
        }
    }
    if (grow) array_->grow_to(shape);
    array_->write({0, b.topleft().x, b.topleft().y, b.topleft().z}, {shape[0], b.size().x, b.size().y, b.size().z},
                  data, pool);
    if (!grow_bounding_box) return;
    std::optional<std::uint64_t> largest;
    if (segmentation_) largest = largest_value(array_->metadata().dtype, data, shape[0] * b.volume(), pool);
    dataset_->grow(layer_, mag1, largest);
}

}  // namespace vx::io

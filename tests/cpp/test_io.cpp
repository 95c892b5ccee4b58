#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>

#include "catch.hpp"
#include "voxelytics/io/chunk_cache.hpp"
#include "voxelytics/io/crc32c.hpp"
#include "voxelytics/io/dataset.hpp"
#include "voxelytics/io/downsampling.hpp"
#include "voxelytics/io/json_field.hpp"
#include "voxelytics/io/store.hpp"
#include "voxelytics/io/zarr_array.hpp"

namespace fs = std::filesystem;
using vx::io::Bytes;
using vx::io::Shape;

namespace {

// A fresh directory under the system temp dir, removed when the test ends.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("voxelytics-test-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
};

Bytes bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

vx::io::ArrayMetadata metadata(Shape shape, Shape chunk, vx::io::json codecs, vx::DType dtype = vx::DType::uint16) {
    vx::io::json j = {{"zarr_format", 3},
                      {"node_type", "array"},
                      {"shape", shape},
                      {"data_type", vx::dtype_name(dtype)},
                      {"chunk_grid", {{"name", "regular"}, {"configuration", {{"chunk_shape", chunk}}}}},
                      {"chunk_key_encoding", {{"name", "default"}}},
                      {"fill_value", 7},
                      {"codecs", codecs}};
    return vx::io::ArrayMetadata::from_json(j, "test zarr.json");
}

const vx::io::json webknossos_codecs = vx::io::json::parse(R"([{"name": "sharding_indexed", "configuration": {
    "chunk_shape": [2, 4, 4], "codecs": [{"name": "transpose", "configuration": {"order": [2, 1, 0]}},
    {"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 3, "checksum": true}}],
    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]}}])");

}  // namespace

TEST_CASE("crc32c matches the standard check value") {
    const std::string check = "123456789";
    CHECK(vx::io::crc32c(reinterpret_cast<const std::uint8_t*>(check.data()), check.size()) == 0xE3069283u);
    CHECK(vx::io::crc32c(nullptr, 0) == 0u);
    // Continuing a CRC over a split buffer gives the CRC of the whole.
    const auto* p = reinterpret_cast<const std::uint8_t*>(check.data());
    CHECK(vx::io::crc32c(p + 4, 5, vx::io::crc32c(p, 4)) == 0xE3069283u);
}

TEST_CASE("FileStore gets, ranges, lists and erases; writes leave no temporary files") {
    TempDir dir;
    vx::io::FileStore store(dir.path);
    CHECK_FALSE(store.get("a/b").has_value());
    store.set("a/b", bytes("hello world"));
    store.set("c", bytes("x"));
    CHECK(*store.get("a/b") == bytes("hello world"));
    CHECK(*store.get_range("a/b", 6, 5) == bytes("world"));
    CHECK(*store.get_range("a/b", -5, 5) == bytes("world"));
    REQUIRE_THROWS_AS(store.get_range("a/b", 8, 10), vx::CorruptData);
    auto keys = store.list();
    std::sort(keys.begin(), keys.end());
    CHECK(keys == std::vector<std::string>{"a/b", "c"});
    CHECK(store.list("a") == std::vector<std::string>{"a/b"});
    CHECK(store.erase("c"));
    CHECK_FALSE(store.erase("c"));
    std::size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(dir.path)) files += e.is_regular_file();
    CHECK(files == 1);
}

TEST_CASE("Zarr arrays round-trip boxes, with and without sharding") {
    const vx::io::json plain = vx::io::json::parse(R"([{"name": "bytes", "configuration": {"endian": "big"}},
        {"name": "gzip", "configuration": {"level": 1}}, {"name": "crc32c"}])");
    for (const auto& codecs : {plain, webknossos_codecs}) {
        TempDir dir;
        auto store = std::make_shared<vx::io::FileStore>(dir.path);
        const Shape shape{5, 9, 13}, chunk = codecs == plain ? Shape{2, 4, 4} : Shape{4, 8, 8};
        auto array = vx::io::ZarrArray::create(store, "arr", metadata(shape, chunk, codecs));
        vx::ThreadPool pool(3);

        // Write two overlapping boxes, the second partly over the first.
        std::vector<std::uint16_t> a(3 * 5 * 7), b(2 * 6 * 4);
        std::iota(a.begin(), a.end(), 100);
        std::iota(b.begin(), b.end(), 1000);
        array.write({1, 2, 3}, {3, 5, 7}, reinterpret_cast<const std::uint8_t*>(a.data()), pool);
        array.write({2, 3, 8}, {2, 6, 4}, reinterpret_cast<const std::uint8_t*>(b.data()), pool);

        // The expected volume, built voxel by voxel (Fortran order).
        std::vector<std::uint16_t> expected(5 * 9 * 13, 7);
        auto at = [](std::int64_t x, std::int64_t y, std::int64_t z) {
            return static_cast<std::size_t>(x + 5 * (y + 9 * z));
        };
        for (int z = 0; z < 7; ++z)
            for (int y = 0; y < 5; ++y)
                for (int x = 0; x < 3; ++x)
                    expected[at(1 + x, 2 + y, 3 + z)] = a[static_cast<std::size_t>(x + 3 * (y + 5 * z))];
        for (int z = 0; z < 4; ++z)
            for (int y = 0; y < 6; ++y)
                for (int x = 0; x < 2; ++x)
                    expected[at(2 + x, 3 + y, 8 + z)] = b[static_cast<std::size_t>(x + 2 * (y + 6 * z))];

        auto reopened = vx::io::ZarrArray::open(store, "arr");
        std::vector<std::uint16_t> all(expected.size());
        reopened.read({0, 0, 0}, shape, reinterpret_cast<std::uint8_t*>(all.data()), pool);
        for (std::size_t i = 0; i < all.size(); ++i)
            if (all[i] != expected[i]) {
                INFO("first difference at " << i << ": " << all[i] << " vs " << expected[i]);
                CHECK(all == expected);
                break;
            }

        // A box reaching past the shape reads the fill value there.
        std::vector<std::uint16_t> edge(2 * 2 * 2);
        reopened.read({4, 8, 12}, {2, 2, 2}, reinterpret_cast<std::uint8_t*>(edge.data()), pool);
        CHECK(edge[0] == expected[at(4, 8, 12)]);
        CHECK(edge[7] == 7);

        // Chunks holding only the fill value are not stored.
        CHECK_FALSE(store->get(array.chunk_key(codecs == plain ? Shape{2, 2, 0} : Shape{1, 1, 0})).has_value());
        CHECK(store->get(array.chunk_key({0, 0, 0})).has_value());
    }
}

TEST_CASE("corrupt chunks and shard indices are reported with their file") {
    TempDir dir;
    auto store = std::make_shared<vx::io::FileStore>(dir.path);
    auto array = vx::io::ZarrArray::create(store, "", metadata({8, 8, 4}, {8, 8, 4}, webknossos_codecs));
    vx::ThreadPool pool(1);
    std::vector<std::uint16_t> data(8 * 8 * 4, 3);
    array.write({0, 0, 0}, {8, 8, 4}, reinterpret_cast<const std::uint8_t*>(data.data()), pool);
    const std::string key = array.chunk_key({0, 0, 0});
    Bytes shard = *store->get(key);

    Bytes flipped = shard;
    flipped[flipped.size() - 10] ^= 0x40;  // inside the index: its crc32c must catch it
    store->set(key, flipped);
    try {
        array.read({0, 0, 0}, {8, 8, 4}, reinterpret_cast<std::uint8_t*>(data.data()), pool);
        FAIL("expected CorruptData");
    } catch (const vx::CorruptData& e) {
        CHECK(std::string(e.what()).find("crc32c") != std::string::npos);
        CHECK(std::string(e.what()).find(key) != std::string::npos);
    }
    store->set(key, Bytes(shard.begin(), shard.begin() + 10));  // truncated
    REQUIRE_THROWS_AS(array.read({0, 0, 0}, {8, 8, 4}, reinterpret_cast<std::uint8_t*>(data.data()), pool),
                      vx::CorruptData);
}

TEST_CASE("bad metadata is refused with the place at fault") {
    REQUIRE_THROWS_AS(metadata({4}, {4}, vx::io::json::parse(R"([{"name": "blosc"}])")), vx::UnsupportedType);
    REQUIRE_THROWS_AS(metadata({4}, {4}, vx::io::json::parse(R"([{"name": "zstd"}])")), vx::CorruptData);
    REQUIRE_THROWS_AS(metadata({4}, {0}, vx::io::json::parse(R"([{"name": "bytes"}])")), vx::CorruptData);
    try {
        metadata({4, 4}, {4, 4}, vx::io::json::parse(R"([{"name": "transpose", "configuration": {"order": [0, 0]}},
                                                          {"name": "bytes"}])"));
        FAIL("expected CorruptData");
    } catch (const vx::CorruptData& e) {
        CHECK(std::string(e.what()) ==
              "test zarr.json: codecs[0].configuration.order: is not a permutation of the axes");
    }
    try {  // a value of the wrong JSON type: named with its key path, not nlohmann's type_error
        metadata({4}, {4}, vx::io::json::parse(R"([{"name": "bytes", "configuration": "little"}])"));
        FAIL("expected CorruptData");
    } catch (const vx::CorruptData& e) {
        CHECK(std::string(e.what()) == "test zarr.json: codecs[0].configuration: expected an object, got a string");
    }
    TempDir dir;
    REQUIRE_THROWS_AS(vx::io::ZarrArray::open(std::make_shared<vx::io::FileStore>(dir.path), "missing"), vx::NotFound);
}

TEST_CASE("downsampling by mean and by mode") {
    // One channel, 4 x 2 x 2 -> factor (2, 2, 2) -> 2 x 1 x 1.
    const std::vector<std::uint8_t> in{1, 2, 9, 9, 3, 4, 9, 9, 5, 6, 9, 8, 7, 8, 8, 8};
    std::vector<std::uint8_t> out(2);
    vx::ThreadPool pool(2);
    vx::io::downsample(in.data(), 1, {4, 2, 2}, {2, 2, 2}, vx::io::Downsampling::mean, out.data(), pool);
    CHECK(out == std::vector<std::uint8_t>{5, 9});  // (1+2+3+4+5+6+7+8)/8 = 4.5 -> 5; (9*5+8*3)/8 = 8.6 -> 9
    vx::io::downsample(in.data(), 1, {4, 2, 2}, {2, 2, 2}, vx::io::Downsampling::mode, out.data(), pool);
    CHECK(out == std::vector<std::uint8_t>{1, 9});  // all distinct: the smallest; 9 five times
    REQUIRE_THROWS_AS(
        vx::io::downsample(in.data(), 1, {4, 2, 2}, {3, 1, 1}, vx::io::Downsampling::mean, out.data(), pool),
        vx::InvalidArgument);
}

TEST_CASE("next_mag halves the finer axes first") {
    const double anisotropic[3] = {11.24, 11.24, 25};
    CHECK(vx::io::next_mag({1, 1, 1}, anisotropic) == vx::Vec3{2, 2, 1});
    CHECK(vx::io::next_mag({2, 2, 1}, anisotropic) == vx::Vec3{4, 4, 2});
    CHECK(vx::io::next_mag({4, 4, 2}, anisotropic) == vx::Vec3{8, 8, 4});
    const double isotropic[3] = {8, 8, 8};
    CHECK(vx::io::next_mag({1, 1, 1}, isotropic) == vx::Vec3{2, 2, 2});
}

TEST_CASE("ChunkCache keeps the most recently used entries within its capacity") {
    vx::io::ChunkCache cache(300);
    auto value = [](std::size_t n) { return std::make_shared<const Bytes>(n, std::uint8_t{1}); };
    cache.put<std::uint8_t>("a", "v1", value(100));
    cache.put<std::uint8_t>("b", "v1", value(100));
    cache.put<std::uint8_t>("c", "v1", value(100));
    CHECK(cache.get<std::uint8_t>("a", "v1"));  // a is now the most recent; b the least
    cache.put<std::uint8_t>("d", "v1", value(100));
    CHECK(cache.stats().size == 300);
    CHECK_FALSE(cache.get<std::uint8_t>("b", "v1"));
    CHECK(cache.get<std::uint8_t>("c", "v1"));
    CHECK_FALSE(cache.get<std::uint8_t>("d", "v2"));  // another version of d's value: dropped
    CHECK_FALSE(cache.get<std::uint8_t>("d", "v1"));
    cache.put<std::uint8_t>("huge", "v1", value(301));  // larger than the whole cache: not kept
    CHECK_FALSE(cache.get<std::uint8_t>("huge", "v1"));
    cache.erase_prefix("a");
    CHECK(cache.stats().entries == 1);
    cache.set_capacity(50);
    CHECK(cache.stats().entries == 0);
    CHECK(cache.stats().size == 0);
}

TEST_CASE("small reads go through the chunk cache, which never serves a replaced shard") {
    TempDir dir;
    auto store = std::make_shared<vx::io::FileStore>(dir.path);
    auto array = vx::io::ZarrArray::create(store, "", metadata({16, 16, 8}, {16, 16, 8}, webknossos_codecs));
    auto cache = std::make_shared<vx::io::ChunkCache>(1 << 20);
    array.set_cache(cache);
    vx::ThreadPool pool(2);
    std::vector<std::uint16_t> data(16 * 16 * 8);
    std::iota(data.begin(), data.end(), 0);
    array.write({0, 0, 0}, {16, 16, 8}, reinterpret_cast<const std::uint8_t*>(data.data()), pool);
    const Bytes first_version = *store->get(array.chunk_key({0, 0, 0}));

    std::uint16_t voxel = 0;
    auto read_voxel = [&](std::int64_t x, std::int64_t y, std::int64_t z) {
        array.read({x, y, z}, {1, 1, 1}, reinterpret_cast<std::uint8_t*>(&voxel), pool);
        return voxel;
    };
    CHECK(read_voxel(3, 5, 1) == 3 + 16 * (5 + 16 * 1));
    const auto after_first = cache->stats();
    CHECK(after_first.entries == 2);                      // the shard index and one inner chunk
    CHECK(read_voxel(2, 6, 1) == 2 + 16 * (6 + 16 * 1));  // same inner chunk: served from the cache
    CHECK(cache->stats().hits == after_first.hits + 2);
    CHECK(cache->stats().misses == after_first.misses);

    // Our own write drops the shard's entries.
    std::fill(data.begin(), data.end(), std::uint16_t{9});
    array.write({0, 0, 0}, {16, 16, 8}, reinterpret_cast<const std::uint8_t*>(data.data()), pool);
    CHECK(read_voxel(3, 5, 1) == 9);
    // Another writer (here: the store directly) replacing the shard is noticed by its version.
    store->set(array.chunk_key({0, 0, 0}), first_version);
    CHECK(read_voxel(3, 5, 1) == 3 + 16 * (5 + 16 * 1));
    store->erase(array.chunk_key({0, 0, 0}));
    CHECK(read_voxel(3, 5, 1) == 7);  // the fill value

    // Without a cache, the same reads give the same values.
    array.set_cache(nullptr);
    store->set(array.chunk_key({0, 0, 0}), first_version);
    CHECK(read_voxel(2, 6, 1) == 2 + 16 * (6 + 16 * 1));
}

TEST_CASE("JsonField reads typed values and names the file and key path of bad ones") {
    const auto doc = vx::io::json::parse(R"({"a": {"b": [1, -2, "x"], "n": null}, "big": 300, "s": "t"})");
    const vx::io::JsonField root(doc, "f.json");
    CHECK(root.field("a").field("b").item(1).as<std::int64_t>() == -2);
    CHECK(root.get<int>("missing", 5) == 5);
    CHECK(!root.field("a").has("n"));  // null counts as absent
    CHECK(root.get("s", "") == "t");
    auto message = [](auto&& fn) {
        try {
            fn();
        } catch (const vx::CorruptData& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(message([&] { root.field("a").field("b").list<std::int64_t>(); }) ==
          "f.json: a.b[2]: expected an integer, got a string");
    CHECK(message([&] { root.field("a").field("b").item(1).as<std::uint32_t>(); }) ==
          "f.json: a.b[1]: expected a non-negative integer, got -2");
    CHECK(message([&] { root.field("big").as<std::uint8_t>(); }) == "f.json: big: integer out of range");
    CHECK(message([&] { root.field("s").field("x"); }) == "f.json: s: expected an object, got a string");
    CHECK(message([&] { root.field("nope"); }) == "f.json: missing \"nope\"");
    CHECK(message([&] { root.field("a").item(0); }) == "f.json: a: expected a list, got an object");
}

TEST_CASE("strided_copy drops unit axes and merges contiguous ones without changing the result") {
    // A (1, 5, 4, 3) box out of a (1, 8, 6, 5) Fortran array, into a dense Fortran buffer, and a
    // transposing copy of the same box: compared with an element-by-element reference.
    const Shape big{1, 8, 6, 5}, box{1, 5, 4, 3};
    std::vector<std::uint16_t> src(static_cast<std::size_t>(vx::io::product(big)));
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::uint16_t>(i * 7 + 1);
    const Shape src_strides = vx::io::fortran_strides(big);
    const std::int64_t start = 2 * src_strides[1] + 1 * src_strides[2] + 1 * src_strides[3];
    for (const Shape& dst_strides : {vx::io::fortran_strides(box), Shape{60, 12, 3, 1}}) {
        std::vector<std::uint16_t> dst(60, 0), expected(60, 0);
        for (std::int64_t x = 0; x < 5; ++x)
            for (std::int64_t y = 0; y < 4; ++y)
                for (std::int64_t z = 0; z < 3; ++z)
                    expected[static_cast<std::size_t>(x * dst_strides[1] + y * dst_strides[2] + z * dst_strides[3])] =
                        src[static_cast<std::size_t>(start + x * src_strides[1] + y * src_strides[2] +
                                                     z * src_strides[3])];
        vx::io::strided_copy(reinterpret_cast<const std::uint8_t*>(src.data() + start), src_strides,
                             reinterpret_cast<std::uint8_t*>(dst.data()), dst_strides, box, 2);
        CHECK(dst == expected);
    }
}

TEST_CASE("a linked layer reads another dataset's mags; its new mags are its own; the pair can move") {
    TempDir dir;
    vx::ThreadPool pool(2);
    std::vector<std::uint32_t> data(8 * 8 * 4);
    std::iota(data.begin(), data.end(), 1u);
    {
        auto source = vx::io::Dataset::create((dir.path / "work" / "a").string(), {4, 4, 8});
        source->add_layer("cells", "segmentation", vx::DType::uint32);
        source->add_mag("cells", {1, 1, 1}, {4, 4, 4}, {8, 8, 4})
            .write({8, 0, 0}, {8, 8, 4}, reinterpret_cast<const std::uint8_t*>(data.data()), pool);
        auto view = vx::io::Dataset::create((dir.path / "work" / "b").string(), {4, 4, 8});
        view->add_layer_link("linked", *source, "cells");
        const vx::io::LayerInfo info = view->layer("linked");
        CHECK(info.bounding_box == vx::Box({8, 0, 0}, {8, 8, 4}));
        CHECK(info.largest_segment_id == std::optional<std::uint64_t>(256));
        CHECK(info.dtype == vx::DType::uint32);
        const fs::path link = dir.path / "work" / "b" / "linked" / "1";
        REQUIRE(fs::is_symlink(link));
        CHECK(fs::read_symlink(link) == fs::path("../../a/cells/1"));  // relative: the pair can move
        view->downsample("linked", {1, 1, 1}, {2, 2, 1}, vx::io::Downsampling::mode, pool);
        CHECK(!fs::is_symlink(dir.path / "work" / "b" / "linked" / "2-2-1"));
        CHECK(!fs::exists(dir.path / "work" / "a" / "cells" / "2-2-1"));
        REQUIRE_THROWS_AS(view->add_layer_link("linked", *source, "cells"), vx::InvalidArgument);
        REQUIRE_THROWS_AS(view->add_layer_link("other", *source, "absent"), vx::NotFound);
    }
    fs::rename(dir.path / "work", dir.path / "moved");
    auto moved = vx::io::Dataset::open((dir.path / "moved" / "b").string());
    std::vector<std::uint32_t> back(data.size());
    moved->get_mag("linked", {1, 1, 1})
        .read(vx::Box({8, 0, 0}, {8, 8, 4}), reinterpret_cast<std::uint8_t*>(back.data()), pool);
    CHECK(back == data);
}

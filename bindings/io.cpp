// vx::io -> voxelytics._core.io: Zarr v3 arrays on the file system. Metadata crosses as JSON
// text; boxes as (offset, shape) tuples; data as numpy arrays in Fortran order.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <zstd.h>

#include "detail/numpy.hpp"
#include "detail/vec3_caster.hpp"
#include "voxelytics/io/dataset.hpp"
#include "voxelytics/io/zarr_array.hpp"

namespace py = pybind11;
using namespace vx::bindings;

namespace {

struct PyZarrArray {
    std::string path;
    vx::io::ZarrArray array;
};

PyZarrArray open_array(const std::string& path) {
    auto store = std::make_shared<vx::io::FileStore>(path);
    return {path, vx::io::ZarrArray::open(store, "")};
}

PyZarrArray create_array(const std::string& path, const std::string& metadata_json) {
    auto store = std::make_shared<vx::io::FileStore>(path);
    vx::io::json j;
    try {
        j = vx::io::json::parse(metadata_json);
    } catch (const vx::io::json::exception& e) {
        throw vx::InvalidArgument(std::string("metadata is not valid JSON: ") + e.what());
    }
    return {path, vx::io::ZarrArray::create(store, "", vx::io::ArrayMetadata::from_json(j, path + "/zarr.json"))};
}

py::array read_box(const PyZarrArray& self, const vx::io::Shape& offset, const vx::io::Shape& shape,
                   std::size_t threads) {
    py::array out =
        new_fortran_array(self.array.metadata().dtype, std::vector<py::ssize_t>(shape.begin(), shape.end()));
    auto* data = static_cast<std::uint8_t*>(out.mutable_data());
    {
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        self.array.read(offset, shape, data, pool);
    }
    return out;
}

void write_box(PyZarrArray& self, const py::array& data_obj, const vx::io::Shape& offset, std::size_t threads) {
    const auto& meta = self.array.metadata();
    require_dtype(data_obj, meta.dtype, self.path);
    if (static_cast<std::size_t>(data_obj.ndim()) != meta.shape.size())
        throw vx::InvalidArgument("data has " + std::to_string(data_obj.ndim()) + " axes but " + self.path + " has " +
                                  std::to_string(meta.shape.size()));
    const py::array data = py::array::ensure(data_obj, py::array::f_style);  // copies only if not Fortran-ordered
    vx::io::Shape shape(data.shape(), data.shape() + data.ndim());
    const auto* bytes = static_cast<const std::uint8_t*>(data.data());
    const py::gil_scoped_release nogil;
    vx::ThreadPool pool(threads);
    self.array.write(offset, shape, bytes, pool);
}

py::array read_mag(const vx::io::Mag& mag, vx::Vec3 topleft, vx::Vec3 size, std::size_t threads) {
    const auto& meta = mag.array().metadata();
    const vx::Box box(topleft, size);
    const vx::Vec3 n = vx::floor_div(size, mag.factor());
    py::array out = new_fortran_array(meta.dtype, {meta.shape[0], n.x, n.y, n.z});
    auto* data = static_cast<std::uint8_t*>(out.mutable_data());
    const py::gil_scoped_release nogil;
    vx::ThreadPool pool(threads);
    mag.read(box, data, pool);
    return out;
}

void write_mag(vx::io::Mag& mag, const py::array& data_obj, vx::Vec3 offset, std::size_t threads) {
    const auto& meta = mag.array().metadata();
    require_dtype(data_obj, meta.dtype, "the layer");
    if (data_obj.ndim() != 4 || data_obj.shape(0) != meta.shape[0])
        throw vx::InvalidArgument("data must be shaped (c, x, y, z) with c = " + std::to_string(meta.shape[0]));
    const py::array data = py::array::ensure(data_obj, py::array::f_style);
    const auto* bytes = static_cast<const std::uint8_t*>(data.data());
    const vx::Vec3 size{data.shape(1), data.shape(2), data.shape(3)};
    const py::gil_scoped_release nogil;
    vx::ThreadPool pool(threads);
    mag.write(offset, size, bytes, pool);
}

py::dict layer_info(const vx::io::Dataset& ds, const std::string& name) {
    const vx::io::LayerInfo l = ds.layer(name);
    py::dict d;
    d["name"] = l.name;
    d["category"] = l.category;
    d["dtype"] = vx::dtype_name(l.dtype);
    d["num_channels"] = l.num_channels;
    d["bounding_box"] = l.bounding_box;
    d["largest_segment_id"] = l.largest_segment_id ? py::cast(*l.largest_segment_id) : py::none();
    d["mags"] = l.mags;
    py::list attachments;
    for (const auto& a : l.attachments) {
        py::dict entry;
        entry["kind"] = a.kind;
        entry["name"] = a.name;
        entry["path"] = a.path;
        entry["data_format"] = a.data_format;
        attachments.append(entry);
    }
    d["attachments"] = attachments;
    return d;
}

}  // namespace

void export_io(py::module_& parent) {
    py::module_ m = parent.def_submodule("io", "Zarr v3 arrays (see voxelytics.io).");
    py::class_<PyZarrArray>(m, "ZarrArray")
        .def_property_readonly("path", [](const PyZarrArray& a) { return a.path; })
        .def_property_readonly("shape", [](const PyZarrArray& a) { return a.array.metadata().shape; })
        .def_property_readonly("chunk_shape", [](const PyZarrArray& a) { return a.array.metadata().chunk_shape; })
        .def_property_readonly("dtype", [](const PyZarrArray& a) { return vx::dtype_name(a.array.metadata().dtype); })
        .def_property_readonly("metadata_json",
                               [](const PyZarrArray& a) { return a.array.metadata().to_json().dump(); })
        .def("read", &read_box, py::arg("offset"), py::arg("shape"), py::arg("threads"))
        .def("write", &write_box, py::arg("data"), py::arg("offset"), py::arg("threads"))
        .def("resize", [](PyZarrArray& a, const vx::io::Shape& shape) { a.array.resize(shape); }, py::arg("shape"));
    m.def("open_array", &open_array, py::arg("path"));
    m.def(
        "default_codecs",
        [](std::size_t ndim, const std::optional<vx::io::Shape>& inner_chunk_shape, int compression_level) {
            return vx::io::default_codecs(ndim, inner_chunk_shape, compression_level).dump();
        },
        py::arg("ndim"), py::arg("inner_chunk_shape"), py::arg("compression_level"));

    py::class_<vx::io::Mag>(m, "Mag")
        .def_property_readonly("factor", &vx::io::Mag::factor)
        .def_property_readonly("shape", [](const vx::io::Mag& mag) { return mag.array().metadata().shape; })
        .def("read", &read_mag, py::arg("topleft"), py::arg("size"), py::arg("threads"))
        .def("write", &write_mag, py::arg("data"), py::arg("offset"), py::arg("threads"));

    py::class_<vx::io::Dataset>(m, "Dataset")
        .def_static("create", &vx::io::Dataset::create, py::arg("path"), py::arg("voxel_size"), py::arg("unit"))
        .def_static("open", &vx::io::Dataset::open, py::arg("path"))
        .def_property_readonly("path", &vx::io::Dataset::path)
        .def_property_readonly("voxel_size", &vx::io::Dataset::voxel_size)
        .def_property_readonly("unit", &vx::io::Dataset::unit)
        .def("layer_names", &vx::io::Dataset::layer_names)
        .def("layer_info", &layer_info, py::arg("name"))
        .def(
            "add_layer",
            [](vx::io::Dataset& ds, const std::string& name, const std::string& category, const std::string& dtype,
               std::int64_t num_channels) {
                ds.add_layer(name, category, vx::io::dtype_from_zarr(dtype, "dtype"), num_channels);
            },
            py::arg("name"), py::arg("category"), py::arg("dtype"), py::arg("num_channels"))
        .def("add_mag", &vx::io::Dataset::add_mag, py::arg("layer"), py::arg("mag"), py::arg("chunk_shape"),
             py::arg("shard_shape"), py::arg("compression_level"), py::keep_alive<0, 1>())
        .def(
            "add_attachment",
            [](vx::io::Dataset& ds, const std::string& layer, const std::string& kind, const std::string& name,
               const std::string& path,
               const std::string& data_format) { ds.add_attachment(layer, {kind, name, path, data_format}); },
            py::arg("layer"), py::arg("kind"), py::arg("name"), py::arg("path"), py::arg("data_format"))
        .def("add_layer_link", &vx::io::Dataset::add_layer_link, py::arg("name"), py::arg("foreign"),
             py::arg("foreign_layer"))
        .def("set_largest_segment_id", &vx::io::Dataset::set_largest_segment_id, py::arg("layer"), py::arg("id"))
        .def("get_mag", &vx::io::Dataset::get_mag, py::arg("layer"), py::arg("mag"), py::keep_alive<0, 1>())
        .def(
            "downsample",
            [](vx::io::Dataset& ds, const std::string& layer, vx::Vec3 from, vx::Vec3 to, const std::string& method,
               std::size_t threads) {
                if (method != "mean" && method != "mode")
                    throw vx::InvalidArgument("downsampling method must be 'mean' or 'mode', got '" + method + "'");
                const py::gil_scoped_release nogil;
                vx::ThreadPool pool(threads);
                return ds.downsample(layer, from, to,
                                     method == "mean" ? vx::io::Downsampling::mean : vx::io::Downsampling::mode, pool);
            },
            py::arg("layer"), py::arg("from_mag"), py::arg("to_mag"), py::arg("method"), py::arg("threads"),
            py::keep_alive<0, 1>());
    m.def(
        "next_mag",
        [](vx::Vec3 mag, std::array<double, 3> voxel_size) { return vx::io::next_mag(mag, voxel_size.data()); },
        py::arg("mag"), py::arg("voxel_size"));
    m.def("create_array", &create_array, py::arg("path"), py::arg("metadata_json"));

    m.def("chunk_cache_stats", [] {
        const auto s = vx::io::ChunkCache::shared()->stats();
        py::dict d;
        d["capacity"] = s.capacity;
        d["size"] = s.size;
        d["entries"] = s.entries;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        return d;
    });
    m.def(
        "set_chunk_cache_capacity",
        [](std::size_t capacity_bytes) { vx::io::ChunkCache::shared()->set_capacity(capacity_bytes); },
        py::arg("capacity_bytes"));
    m.def("zstd_version", [] { return std::string(ZSTD_versionString()); });
    m.def("clear_chunk_cache", [] { vx::io::ChunkCache::shared()->clear(); });
}

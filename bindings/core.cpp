// vx core -> voxelytics._core.core: Box and BlockGrid geometry.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "detail/vec3_caster.hpp"
#include "voxelytics/core/blocking.hpp"
#include "voxelytics/core/box.hpp"

namespace py = pybind11;

void export_core(py::module_& parent) {
    py::module_ m = parent.def_submodule("core", "Geometry: boxes and block grids (x, y, z voxels).");

    py::class_<vx::Box>(m, "Box", "Axis-aligned box of voxels: (topleft, size), both (x, y, z).")
        .def(py::init<vx::Vec3, vx::Vec3>(), py::arg("topleft"), py::arg("size"))
        .def_static("from_corners", &vx::Box::from_corners, py::arg("topleft"), py::arg("bottomright"))
        .def_property_readonly("topleft", &vx::Box::topleft)
        .def_property_readonly("size", &vx::Box::size)
        .def_property_readonly("bottomright", &vx::Box::bottomright, "One past the last voxel on each axis.")
        .def_property_readonly("volume", &vx::Box::volume)
        .def("is_empty", &vx::Box::empty)
        .def("contains", py::overload_cast<vx::Vec3>(&vx::Box::contains, py::const_), py::arg("point"))
        .def("contains_box", py::overload_cast<const vx::Box&>(&vx::Box::contains, py::const_), py::arg("other"))
        .def("intersection", &vx::Box::intersection, py::arg("other"))
        .def("union", &vx::Box::union_with, py::arg("other"))
        .def("translated", &vx::Box::translated, py::arg("by"))
        .def("padded", &vx::Box::padded, py::arg("margin"))
        .def("aligned_outward", &vx::Box::aligned_outward, py::arg("grid"))
        .def("aligned_inward", &vx::Box::aligned_inward, py::arg("grid"))
        .def("is_aligned", &vx::Box::is_aligned, py::arg("grid"))
        .def(py::self == py::self)
        .def(py::self != py::self)
        .def("__hash__",
             [](const vx::Box& b) {
                 // All empty boxes are equal, so they must hash alike.
                 return b.empty() ? py::hash(py::make_tuple()) : py::hash(py::make_tuple(b.topleft(), b.size()));
             })
        .def("__repr__", &vx::Box::to_string)
        .def(py::pickle([](const vx::Box& b) { return py::make_tuple(b.topleft(), b.size()); },
                        [](const py::tuple& t) { return vx::Box(t[0].cast<vx::Vec3>(), t[1].cast<vx::Vec3>()); }));

    py::class_<vx::Block>(m, "Block", "One block of a BlockGrid: `core` owned voxels, `outer` with halo.")
        .def_readonly("index", &vx::Block::index)
        .def_readonly("grid_position", &vx::Block::grid_position)
        .def_readonly("core", &vx::Block::core)
        .def_readonly("outer", &vx::Block::outer)
        .def("__repr__", [](const vx::Block& b) {
            return "Block(index=" + std::to_string(b.index) + ", core=" + b.core.to_string() +
                   ", outer=" + b.outer.to_string() + ")";
        });

    py::class_<vx::BlockGrid>(m, "BlockGrid", "Blocks on the absolute grid of block_shape, clipped to a volume.")
        .def(py::init<const vx::Box&, vx::Vec3, vx::Vec3>(), py::arg("volume"), py::arg("block_shape"),
             py::arg("halo") = vx::Vec3{})
        .def_property_readonly("volume", &vx::BlockGrid::volume)
        .def_property_readonly("block_shape", &vx::BlockGrid::block_shape)
        .def_property_readonly("halo", &vx::BlockGrid::halo)
        .def_property_readonly("shape", &vx::BlockGrid::shape, "Number of blocks along x, y, z.")
        .def("__len__", &vx::BlockGrid::size)
        .def("__getitem__",
             [](const vx::BlockGrid& g, std::int64_t i) {
                 if (i < 0) i += g.size();
                 if (i < 0 || i >= g.size()) throw py::index_error("block index out of range");
                 return g[i];
             })
        .def("block_at", &vx::BlockGrid::block_at, py::arg("grid_position"))
        .def("blocks_overlapping", &vx::BlockGrid::blocks_overlapping, py::arg("box"));
}

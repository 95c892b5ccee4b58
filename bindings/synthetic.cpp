// vx::synthetic -> voxelytics._core.synthetic. The Python side builds the scene (presets, neurite
// growth, synapses) as numpy tables; `Scene` takes them once, `render` voxelises any box of it.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "detail/numpy.hpp"
#include "detail/vec3_caster.hpp"
#include "voxelytics/synthetic/render.hpp"

namespace py = pybind11;
namespace syn = vx::synthetic;

namespace {

using Table = py::array_t<double, py::array::c_style | py::array::forcecast>;
template <class T>
using Column = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A float table of `columns` columns; its rows must match `ids` (the owning cells).
template <class T>
std::size_t rows(const Table& t, py::ssize_t columns, const Column<T>& ids, const char* name) {
    if (t.ndim() != 2 || t.shape(1) != columns)
        throw vx::InvalidArgument(std::string("synthetic scene: ") + name + " must be shaped (n, " +
                                  std::to_string(columns) + ")");
    if (ids.ndim() != 1 || ids.shape(0) != t.shape(0))
        throw vx::InvalidArgument(std::string("synthetic scene: ") + name + " and its cell ids differ in length");
    return static_cast<std::size_t>(t.shape(0));
}

syn::Point point(const Table& t, py::ssize_t i, py::ssize_t c) { return {t.at(i, c), t.at(i, c + 1), t.at(i, c + 2)}; }

syn::Scene make_scene(const Table& segments, const Column<std::uint64_t>& segment_cells,
                      const Column<std::uint8_t>& segment_compartments, const Table& glia,
                      const Column<std::uint64_t>& glia_cells, const Table& mitochondria,
                      const Column<std::uint64_t>& mitochondrion_cells, const Column<std::uint64_t>& mitochondrion_ids,
                      const Table& vesicles, const Column<std::uint64_t>& vesicle_cells, const Table& densities,
                      const Column<std::uint64_t>& density_cells, const Table& nuclei,
                      const Column<std::uint64_t>& nucleus_cells, const Column<std::uint8_t>& defects,
                      const Column<std::int64_t>& shifts, double fill_length, double glia_gap,
                      const syn::Imaging& imaging) {
    syn::Scene s;
    const std::size_t n = rows(segments, 8, segment_cells, "segments");
    if (segment_compartments.ndim() != 1 || static_cast<std::size_t>(segment_compartments.shape(0)) != n)
        throw vx::InvalidArgument("synthetic scene: segments and their compartments differ in length");
    for (std::size_t k = 0; k < n; ++k) {
        const auto i = static_cast<py::ssize_t>(k);
        const auto c = segment_compartments.at(i);
        if (c < 1 || c >= syn::num_compartment_codes)
            throw vx::InvalidArgument("synthetic scene: segment " + std::to_string(k) + " has compartment code " +
                                      std::to_string(c));
        s.segments.push_back({point(segments, i, 0), point(segments, i, 3), segments.at(i, 6), segments.at(i, 7),
                              segment_cells.at(i), static_cast<syn::Compartment>(c)});
    }
    for (std::size_t k = 0, m = rows(glia, 3, glia_cells, "glia"); k < m; ++k)
        s.glia.push_back({point(glia, static_cast<py::ssize_t>(k), 0), glia_cells.at(static_cast<py::ssize_t>(k))});
    if (mitochondrion_ids.ndim() != 1 || mitochondrion_ids.shape(0) != mitochondrion_cells.shape(0))
        throw vx::InvalidArgument("synthetic scene: mitochondria and their ids differ in length");
    for (std::size_t k = 0, m = rows(mitochondria, 7, mitochondrion_cells, "mitochondria"); k < m; ++k) {
        const auto i = static_cast<py::ssize_t>(k);
        s.mitochondria.push_back({point(mitochondria, i, 0), point(mitochondria, i, 3), mitochondria.at(i, 6),
                                  mitochondrion_cells.at(i), mitochondrion_ids.at(i)});
    }
    for (std::size_t k = 0, m = rows(vesicles, 4, vesicle_cells, "vesicles"); k < m; ++k) {
        const auto i = static_cast<py::ssize_t>(k);
        s.vesicles.push_back({point(vesicles, i, 0), vesicles.at(i, 3), vesicle_cells.at(i)});
    }
    for (std::size_t k = 0, m = rows(densities, 9, density_cells, "densities"); k < m; ++k) {
        const auto i = static_cast<py::ssize_t>(k);
        s.densities.push_back({point(densities, i, 0), point(densities, i, 3), densities.at(i, 6), densities.at(i, 7),
                               densities.at(i, 8), density_cells.at(i)});
    }
    for (std::size_t k = 0, m = rows(nuclei, 4, nucleus_cells, "nuclei"); k < m; ++k) {
        const auto i = static_cast<py::ssize_t>(k);
        s.nuclei.push_back({point(nuclei, i, 0), nuclei.at(i, 3), nucleus_cells.at(i)});
    }
    if (shifts.ndim() != 2 || shifts.shape(1) != 2 || defects.ndim() != 1 || shifts.shape(0) != defects.shape(0))
        throw vx::InvalidArgument("synthetic scene: defects must be (z,) and shifts (z, 2)");
    for (py::ssize_t z = 0; z < defects.shape(0); ++z) {
        if (defects.at(z) > 2)
            throw vx::InvalidArgument("synthetic scene: section " + std::to_string(z) + " has defect code " +
                                      std::to_string(defects.at(z)));
        s.defects.push_back(static_cast<syn::SectionDefect>(defects.at(z)));
        s.shifts.push_back({shifts.at(z, 0), shifts.at(z, 1)});
    }
    s.fill_length = fill_length;
    s.glia_gap = glia_gap;
    s.imaging = imaging;
    vx::synthetic::detail::check_scene(s);
    return s;
}

py::dict render(const syn::Scene& scene, vx::Vec3 offset, vx::Vec3 shape, std::size_t threads, bool cells,
                bool compartments, bool mitochondria, bool image) {
    const vx::Box box(offset, shape);
    auto volume = [&](auto tag, bool want) {
        using T = typename decltype(tag)::type;
        return want ? py::array_t<T, py::array::f_style>({shape.x, shape.y, shape.z})
                    : py::array_t<T, py::array::f_style>();
    };
    auto c = volume(vx::TypeTag<std::uint64_t>{}, cells);
    auto k = volume(vx::TypeTag<std::uint8_t>{}, compartments);
    auto m = volume(vx::TypeTag<std::uint64_t>{}, mitochondria);
    auto im = volume(vx::TypeTag<std::uint8_t>{}, image);
    syn::Outputs out;
    if (cells) out.cells = vx::View<std::uint64_t>(c.mutable_data(), shape);
    if (compartments) out.compartments = vx::View<std::uint8_t>(k.mutable_data(), shape);
    if (mitochondria) out.mitochondria = vx::View<std::uint64_t>(m.mutable_data(), shape);
    if (image) out.image = vx::View<std::uint8_t>(im.mutable_data(), shape);
    {
        const py::gil_scoped_release nogil;
        vx::ThreadPool pool(threads);
        syn::render(scene, box, out, pool);
    }
    py::dict d;
    if (cells) d["cells"] = c;
    if (compartments) d["compartments"] = k;
    if (mitochondria) d["mitochondria"] = m;
    if (image) d["image"] = im;
    return d;
}

py::tuple labels_at(const syn::Scene& scene, const Table& points) {
    if (points.ndim() != 2 || points.shape(1) != 3) throw vx::InvalidArgument("points must be shaped (n, 3), in nm");
    std::vector<syn::Point> p;
    for (py::ssize_t i = 0; i < points.shape(0); ++i) p.push_back(point(points, i, 0));
    std::vector<syn::detail::Label> labels;
    {
        const py::gil_scoped_release nogil;
        labels = syn::labels_at(scene, p);
    }
    py::array_t<std::uint64_t> cells(static_cast<py::ssize_t>(labels.size()));
    py::array_t<std::uint8_t> compartments(static_cast<py::ssize_t>(labels.size()));
    for (std::size_t i = 0; i < labels.size(); ++i) {
        cells.mutable_at(static_cast<py::ssize_t>(i)) = labels[i].cell;
        compartments.mutable_at(static_cast<py::ssize_t>(i)) = static_cast<std::uint8_t>(labels[i].compartment);
    }
    return py::make_tuple(cells, compartments);
}

}  // namespace

void export_synthetic(py::module_& parent) {
    auto m = parent.def_submodule("synthetic", "synthetic EM rendering (vx::synthetic)");
    py::class_<syn::Imaging>(m, "Imaging")
        .def(py::init<>())
        .def_readwrite("voxel_size", &syn::Imaging::voxel_size)
        .def_readwrite("intensity", &syn::Imaging::intensity)
        .def_readwrite("cell_jitter", &syn::Imaging::cell_jitter)
        .def_readwrite("texture", &syn::Imaging::texture)
        .def_readwrite("texture_scale", &syn::Imaging::texture_scale)
        .def_readwrite("membrane_darkness", &syn::Imaging::membrane_darkness)
        .def_readwrite("membrane_width", &syn::Imaging::membrane_width)
        .def_readwrite("mitochondrion_intensity", &syn::Imaging::mitochondrion_intensity)
        .def_readwrite("cristae_period", &syn::Imaging::cristae_period)
        .def_readwrite("vesicle_darkness", &syn::Imaging::vesicle_darkness)
        .def_readwrite("nucleus_texture", &syn::Imaging::nucleus_texture)
        .def_readwrite("blur", &syn::Imaging::blur)
        .def_readwrite("noise", &syn::Imaging::noise)
        .def_readwrite("drift", &syn::Imaging::drift)
        .def_readwrite("drift_period", &syn::Imaging::drift_period)
        .def_readwrite("gradient", &syn::Imaging::gradient)
        .def_readwrite("missing_value", &syn::Imaging::missing_value)
        .def_readwrite("section_samples", &syn::Imaging::section_samples)
        .def_readwrite("seed", &syn::Imaging::seed);
    py::class_<syn::Scene>(m, "Scene")
        .def(py::init(&make_scene), py::arg("segments"), py::arg("segment_cells"), py::arg("segment_compartments"),
             py::arg("glia"), py::arg("glia_cells"), py::arg("mitochondria"), py::arg("mitochondrion_cells"),
             py::arg("mitochondrion_ids"), py::arg("vesicles"), py::arg("vesicle_cells"), py::arg("densities"),
             py::arg("density_cells"), py::arg("nuclei"), py::arg("nucleus_cells"), py::arg("defects"),
             py::arg("shifts"), py::arg("fill_length"), py::arg("glia_gap"), py::arg("imaging"))
        .def_property_readonly("num_segments", [](const syn::Scene& s) { return s.segments.size(); });
    m.def("render", &render, py::arg("scene"), py::arg("offset"), py::arg("shape"), py::arg("threads"),
          py::arg("cells") = true, py::arg("compartments") = true, py::arg("mitochondria") = true,
          py::arg("image") = true);
    m.def("labels_at", &labels_at, py::arg("scene"), py::arg("points"));
}

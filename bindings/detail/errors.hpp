// Maps the C++ exception hierarchy (voxelytics/core/errors.hpp) to Python exceptions.
#pragma once

#include <pybind11/pybind11.h>

#include "voxelytics/core/errors.hpp"

namespace vx::bindings {

namespace py = pybind11;

inline void register_errors(py::module_& m) {
    // Created once and kept alive for the life of the interpreter, like the module itself.
    static PyObject* corrupt_data = PyErr_NewExceptionWithDoc(
        "voxelytics.CorruptDataError", "Stored data that cannot be decoded or fails an integrity check.",
        PyExc_ValueError, nullptr);
    m.attr("CorruptDataError") = py::reinterpret_borrow<py::object>(corrupt_data);
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const vx::InvalidArgument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        } catch (const vx::UnsupportedType& e) {
            PyErr_SetString(PyExc_TypeError, e.what());
        } catch (const vx::KeyNotFound& e) {
            PyErr_SetString(PyExc_KeyError, e.what());
        } catch (const vx::NotFound& e) {
            PyErr_SetString(PyExc_FileNotFoundError, e.what());
        } catch (const vx::CorruptData& e) {
            PyErr_SetString(corrupt_data, e.what());
        } catch (const vx::IOError& e) {
            PyErr_SetString(PyExc_OSError, e.what());
        }
    });
}

}  // namespace vx::bindings

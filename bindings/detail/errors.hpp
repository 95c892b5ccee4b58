// Maps the C++ exception hierarchy (voxelytics/core/errors.hpp) to Python exceptions.
#pragma once

#include <pybind11/pybind11.h>

#include <cstring>

#include "voxelytics/core/errors.hpp"

namespace vx::bindings {

namespace py = pybind11;

// Sets a Python exception from a C++ message. Messages can quote bytes of a broken file (JSON
// parse errors do), which need not be UTF-8: those are shown as \xNN instead of the message being
// replaced by a UnicodeDecodeError.
inline void set_error(PyObject* type, const char* message) {
    PyObject* text = PyUnicode_DecodeUTF8(message, static_cast<Py_ssize_t>(std::strlen(message)), "backslashreplace");
    if (!text) return;  // MemoryError is set
    PyErr_SetObject(type, text);
    Py_DECREF(text);
}

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
            set_error(PyExc_ValueError, e.what());
        } catch (const vx::UnsupportedType& e) {
            set_error(PyExc_TypeError, e.what());
        } catch (const vx::KeyNotFound& e) {
            set_error(PyExc_KeyError, e.what());
        } catch (const vx::NotFound& e) {
            set_error(PyExc_FileNotFoundError, e.what());
        } catch (const vx::CorruptData& e) {
            set_error(corrupt_data, e.what());
        } catch (const vx::IOError& e) {
            set_error(PyExc_OSError, e.what());
        }
    });
}

}  // namespace vx::bindings

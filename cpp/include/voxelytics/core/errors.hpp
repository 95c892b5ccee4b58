// The one small exception hierarchy of voxelytics. The Python bindings map each type to a Python
// exception (see bindings/detail/errors.hpp), so a message must name the file, chunk, key or
// argument at fault: it is all the user sees.
#pragma once

#include <stdexcept>
#include <string>

namespace vx {

/// Base of every error voxelytics throws on purpose.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A caller passed a bad value (shape, range, option). Python: ValueError.
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// A type (usually an array dtype) that the operation does not support. Python: TypeError.
class UnsupportedType : public Error {
public:
    using Error::Error;
};

/// A key looked up in a mapping is absent. Python: KeyError.
class KeyNotFound : public Error {
public:
    using Error::Error;
};

/// A file or store key that should exist does not. Python: FileNotFoundError.
class NotFound : public Error {
public:
    using Error::Error;
};

/// Stored data that cannot be decoded or fails a check. Python: voxelytics.CorruptDataError.
class CorruptData : public Error {
public:
    using Error::Error;
};

/// An operating-system I/O failure. Python: OSError.
class IOError : public Error {
public:
    using Error::Error;
};

}  // namespace vx

// JsonField: a value inside a metadata file (zarr.json, datasource-properties.json), read with
// type checks whose errors name the file and the key path ("codecs[0].configuration.order").
//
// nlohmann's own accessors throw type_error.302/306 naming neither; a user's broken file must
// instead give CorruptData saying where to look, e.g.
//   ".../zarr.json: chunk_grid.configuration.chunk_shape[1]: expected an integer, got a string".
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "voxelytics/core/errors.hpp"

namespace vx::io {

class JsonField {
public:
    using json = nlohmann::json;

    /// The whole document `value` of `file`; its fields are reached with field() and item().
    JsonField(const json& value, std::string file) : value_(&value), file_(std::move(file)) {}

    const json& value() const { return *value_; }
    const std::string& file() const { return file_; }
    const std::string& path() const { return path_; }
    /// "file: path" (just the file at the top level), for messages.
    std::string where() const { return path_.empty() ? file_ : file_ + ": " + path_; }
    [[noreturn]] void fail(const std::string& problem) const { throw CorruptData(where() + ": " + problem); }

    bool is_null() const { return value_->is_null(); }
    /// Whether this object has `key` with a value that is not null (checks it is an object).
    bool has(const std::string& key) const {
        require_object();
        const auto it = value_->find(key);
        return it != value_->end() && !it->is_null();
    }
    /// The field `key` of this object; CorruptData if it is missing.
    JsonField field(const std::string& key) const {
        require_object();
        const auto it = value_->find(key);
        if (it == value_->end()) fail("missing \"" + key + "\"");
        return JsonField(*it, file_, path_.empty() ? key : path_ + "." + key);
    }
    /// The field `key` if present and not null.
    std::optional<JsonField> find(const std::string& key) const {
        if (!has(key)) return std::nullopt;
        return field(key);
    }
    /// Element `i` of this list.
    JsonField item(std::size_t i) const {
        require_list();
        if (i >= value_->size()) fail("has no element " + std::to_string(i));
        return JsonField((*value_)[i], file_, path_ + "[" + std::to_string(i) + "]");
    }
    /// The elements of this list.
    std::vector<JsonField> items() const {
        require_list();
        std::vector<JsonField> out;
        for (std::size_t i = 0; i < value_->size(); ++i) out.push_back(item(i));
        return out;
    }
    std::size_t size() const {
        require_list();
        return value_->size();
    }

    const JsonField& require_object() const {
        if (!value_->is_object()) fail("expected an object, got " + kind());
        return *this;
    }
    const JsonField& require_list() const {
        if (!value_->is_array()) fail("expected a list, got " + kind());
        return *this;
    }

    /// This value as a string, bool, integer (range-checked) or floating-point number.
    template <class T>
    T as() const {
        if constexpr (std::is_same_v<T, std::string>) {
            if (!value_->is_string()) fail("expected a string, got " + kind());
            return value_->get<std::string>();
        } else if constexpr (std::is_same_v<T, bool>) {
            if (!value_->is_boolean()) fail("expected true or false, got " + kind());
            return value_->get<bool>();
        } else if constexpr (std::is_integral_v<T>) {
            if (!value_->is_number_integer()) fail("expected an integer, got " + kind());
            if (value_->is_number_unsigned()) {
                const auto v = value_->get<std::uint64_t>();
                if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) fail("integer out of range");
                return static_cast<T>(v);
            }
            const auto v = value_->get<std::int64_t>();
            if (std::is_unsigned_v<T> && v < 0) fail("expected a non-negative integer, got " + std::to_string(v));
            if constexpr (std::is_signed_v<T>)
                if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                    v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                    fail("integer out of range");
            return static_cast<T>(v);
        } else {
            static_assert(std::is_floating_point_v<T>, "JsonField::as: unsupported type");
            if (!value_->is_number()) fail("expected a number, got " + kind());
            return value_->get<T>();
        }
    }
    /// This list's elements, each as<T>().
    template <class T>
    std::vector<T> list() const {
        std::vector<T> out;
        for (const JsonField& f : items()) out.push_back(f.as<T>());
        return out;
    }
    /// The field `key` as<T>(), or `fallback` if it is absent or null.
    template <class T>
    T get(const std::string& key, T fallback) const {
        if (const auto f = find(key)) return f->as<T>();
        return fallback;
    }
    std::string get(const std::string& key, const char* fallback) const { return get<std::string>(key, fallback); }

    /// "a string", "a list", ...: the JSON type of this value, for messages.
    std::string kind() const {
        switch (value_->type()) {
            case json::value_t::null: return "null";
            case json::value_t::object: return "an object";
            case json::value_t::array: return "a list";
            case json::value_t::string: return "a string";
            case json::value_t::boolean: return "a boolean";
            case json::value_t::number_float: return "a floating-point number";
            case json::value_t::number_integer:
            case json::value_t::number_unsigned: return "an integer";
            default: return "a value of another kind";
        }
    }

private:
    JsonField(const json& value, std::string file, std::string path)
        : value_(&value), file_(std::move(file)), path_(std::move(path)) {}

    const json* value_;
    std::string file_;
    std::string path_;
};

/// Parses `text` as JSON; CorruptData naming `file` if it is not valid JSON.
template <class It>
nlohmann::json parse_json(It begin, It end, const std::string& file) {
    try {
        return nlohmann::json::parse(begin, end);
    } catch (const nlohmann::json::exception& e) {
        throw CorruptData(file + ": invalid JSON (" + e.what() + ")");
    }
}

}  // namespace vx::io

// CRC-32C (Castagnoli), as the Zarr v3 `crc32c` codec and the shard index use it: reflected
// polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF. Table-driven, 8 bytes a step.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace vx::io {

namespace detail {
inline const std::array<std::array<std::uint32_t, 256>, 8>& crc32c_tables() {
    static const auto tables = [] {
        std::array<std::array<std::uint32_t, 256>, 8> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
            t[0][i] = c;
        }
        for (std::size_t i = 0; i < 256; ++i)
            for (std::size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
        return t;
    }();
    return tables;
}
}  // namespace detail

/// CRC-32C of `n` bytes; pass a previous result as `crc` to continue it.
inline std::uint32_t crc32c(const std::uint8_t* data, std::size_t n, std::uint32_t crc = 0) {
    const auto& t = detail::crc32c_tables();
    crc = ~crc;
    for (; n >= 8; n -= 8, data += 8) {
        const std::uint32_t lo = crc ^ (std::uint32_t{data[0]} | std::uint32_t{data[1]} << 8 |
                                        std::uint32_t{data[2]} << 16 | std::uint32_t{data[3]} << 24);
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][data[4]] ^
              t[2][data[5]] ^ t[1][data[6]] ^ t[0][data[7]];
    }
    for (; n > 0; --n, ++data) crc = (crc >> 8) ^ t[0][(crc ^ *data) & 0xFF];
    return ~crc;
}

}  // namespace vx::io

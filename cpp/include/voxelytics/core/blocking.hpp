// BlockGrid: splits a volume into blocks for block-wise processing. Blocks sit on the absolute
// grid of multiples of `block_shape` (so they line up with chunks and shards on disk) and are
// clipped to the volume: the first and last block on an axis may be smaller. Each block has a
// `core` (the voxels it owns; the cores tile the volume exactly once) and an `outer` box (the core
// grown by the halo, clipped at the volume border) to read when an algorithm needs context.
// Blocks are numbered x-fastest, like voxels.
#pragma once

#include <cstdint>
#include <sstream>
#include <vector>

#include "voxelytics/core/box.hpp"
#include "voxelytics/core/errors.hpp"

namespace vx {

struct Block {
    std::int64_t index = 0;  // x-fastest position in the grid
    Vec3 grid_position;      // which block on each axis (0-based within the volume)
    Box core;                // owned voxels
    Box outer;               // core + halo, clipped to the volume
};

class BlockGrid {
public:
    BlockGrid(const Box& volume, Vec3 block_shape, Vec3 halo = {})
        : volume_(volume), block_shape_(block_shape), halo_(halo) {
        if (block_shape.x <= 0 || block_shape.y <= 0 || block_shape.z <= 0) {
            std::ostringstream msg;
            msg << "block_shape must be positive on every axis, got " << block_shape;
            throw InvalidArgument(msg.str());
        }
        if (halo.x < 0 || halo.y < 0 || halo.z < 0) {
            std::ostringstream msg;
            msg << "halo must be non-negative, got " << halo;
            throw InvalidArgument(msg.str());
        }
        if (volume.empty()) {
            first_ = Vec3{};
            shape_ = Vec3{};
        } else {
            const Box aligned = volume.aligned_outward(block_shape);
            first_ = floor_div(aligned.topleft(), block_shape);
            shape_ = floor_div(aligned.size(), block_shape);
        }
    }

    const Box& volume() const { return volume_; }
    Vec3 block_shape() const { return block_shape_; }
    Vec3 halo() const { return halo_; }
    /// Number of blocks along each axis.
    Vec3 shape() const { return shape_; }
    std::int64_t size() const { return shape_.prod(); }

    Block block_at(Vec3 grid_position) const {
        if (!(all_le(Vec3{}, grid_position) && grid_position.x < shape_.x && grid_position.y < shape_.y &&
              grid_position.z < shape_.z)) {
            std::ostringstream msg;
            msg << "block grid position " << grid_position << " outside the grid of shape " << shape_;
            throw InvalidArgument(msg.str());
        }
        Block b;
        b.grid_position = grid_position;
        b.index = grid_position.x + shape_.x * (grid_position.y + shape_.y * grid_position.z);
        b.core = Box((first_ + grid_position) * block_shape_, block_shape_).intersection(volume_);
        b.outer = b.core.padded(halo_).intersection(volume_);
        return b;
    }

    Block operator[](std::int64_t index) const {
        if (index < 0 || index >= size()) {
            std::ostringstream msg;
            msg << "block index " << index << " out of range for a grid of " << size() << " blocks";
            throw InvalidArgument(msg.str());
        }
        const std::int64_t x = index % shape_.x;
        const std::int64_t y = (index / shape_.x) % shape_.y;
        const std::int64_t z = index / (shape_.x * shape_.y);
        return block_at({x, y, z});
    }

    /// All blocks whose core overlaps `box`, in index order.
    std::vector<Block> blocks_overlapping(const Box& box) const {
        std::vector<Block> out;
        const Box clipped = box.intersection(volume_);
        if (clipped.empty()) return out;
        const Vec3 lo = floor_div(clipped.topleft(), block_shape_) - first_;
        const Vec3 hi = ceil_div(clipped.bottomright(), block_shape_) - first_;
        for (std::int64_t z = lo.z; z < hi.z; ++z)
            for (std::int64_t y = lo.y; y < hi.y; ++y)
                for (std::int64_t x = lo.x; x < hi.x; ++x) out.push_back(block_at({x, y, z}));
        return out;
    }

private:
    Box volume_;
    Vec3 block_shape_;
    Vec3 halo_;
    Vec3 first_;  // grid coordinates of the first block
    Vec3 shape_;
};

}  // namespace vx

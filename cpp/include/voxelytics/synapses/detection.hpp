// Synapse detection: the connected components of a synapse channel at or above a threshold,
// found block by block and joined across block borders, with what partner assignment and typing
// read later: per synapse its size, score, centroid, second moments, box and first voxel; per
// (synapse, fragment) the voxels they share and their centroid; and sums of any number of feature
// channels over both.
//
// Block independence: a block needs no halo. Each block labels the components of its core and
// reports the component voxels on the core's outer shell; `Detector::finish` joins pieces whose
// shell voxels are neighbours (under the same connectivity) across a block border. All sums are
// integers (voxel coordinates; scores and features in fixed point), so a synapse's numbers are
// exactly the same whatever the block shape, the block order or the thread count, and synapses
// are numbered 1..n by their first voxel in x-fastest scan order.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "voxelytics/core/errors.hpp"
#include "voxelytics/core/thread_pool.hpp"
#include "voxelytics/core/view.hpp"
#include "voxelytics/graph/union_find.hpp"
#include "voxelytics/segmentation/connected_components.hpp"

namespace vx::synapses {

using segmentation::Connectivity;

/// Scores and features are summed as integers with this many fractional bits (about 1e-6):
/// integer sums do not depend on their order.
inline constexpr int fixed_point_bits = 20;
inline std::int64_t to_fixed(double v) { return std::llround(std::ldexp(v, fixed_point_bits)); }
inline double from_fixed(std::int64_t v) { return std::ldexp(static_cast<double>(v), -fixed_point_bits); }

/// Sums over a set of voxels (coordinates relative to the volume's first voxel).
struct Moments {
    std::uint64_t voxels = 0;
    std::array<std::int64_t, 3> sum{};   // x, y, z
    std::array<std::int64_t, 6> sum2{};  // xx, yy, zz, xy, xz, yz

    void add(std::int64_t x, std::int64_t y, std::int64_t z) {
        ++voxels;
        sum[0] += x, sum[1] += y, sum[2] += z;
        sum2[0] += x * x, sum2[1] += y * y, sum2[2] += z * z;
        sum2[3] += x * y, sum2[4] += x * z, sum2[5] += y * z;
    }
    void merge(const Moments& o) {
        voxels += o.voxels;
        for (std::size_t i = 0; i < 3; ++i) sum[i] += o.sum[i];
        for (std::size_t i = 0; i < 6; ++i) sum2[i] += o.sum2[i];
    }
};

/// A synapse, or the piece of one inside a block.
struct Synapse {
    Moments moments;
    std::int64_t score_sum = 0;                                         // fixed point
    std::int64_t score_max = std::numeric_limits<std::int64_t>::min();  // fixed point
    Vec3 lo = Vec3::full(std::numeric_limits<std::int64_t>::max());     // bounding box, inclusive corners
    Vec3 hi = Vec3::full(std::numeric_limits<std::int64_t>::min());
    std::int64_t first = std::numeric_limits<std::int64_t>::max();  // linear index of the first voxel

    void merge(const Synapse& o) {
        moments.merge(o.moments);
        score_sum += o.score_sum;
        score_max = std::max(score_max, o.score_max);
        lo = min(lo, o.lo), hi = max(hi, o.hi);
        first = std::min(first, o.first);
    }
};

/// The voxels a synapse shares with one fragment of a segmentation (fragment 0 not recorded).
struct Contact {
    std::uint64_t synapse = 0;  // index into the synapses (block-local piece index in a block)
    std::uint64_t fragment = 0;
    Moments moments;
};

/// What one block reports: its pieces (local index k = component id k + 1), their features
/// (pieces x features, row-major, fixed point), contacts (sorted by piece, then fragment) and
/// their features, and the shell voxels: (linear index in the volume, piece index).
struct BlockPieces {
    Vec3 topleft;
    std::size_t num_features = 0;
    std::vector<Synapse> pieces;
    std::vector<std::int64_t> features;
    std::vector<Contact> contacts;
    std::vector<std::int64_t> contact_features;
    std::vector<std::pair<std::int64_t, std::uint32_t>> shell;
};

namespace detail {

struct PairHash {
    std::size_t operator()(const std::pair<std::uint64_t, std::uint64_t>& p) const {
        return std::hash<std::uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^ p.second);
    }
};

// The neighbour offsets of a connectivity (all of them: 6, 18 or 26).
inline std::vector<Vec3> neighbour_offsets(Connectivity c) {
    std::vector<Vec3> out;
    for (std::int64_t dz = -1; dz <= 1; ++dz)
        for (std::int64_t dy = -1; dy <= 1; ++dy)
            for (std::int64_t dx = -1; dx <= 1; ++dx) {
                const int nonzero = (dx != 0) + (dy != 0) + (dz != 0);
                if (nonzero == 0) continue;
                if (nonzero <= 1 || (nonzero == 2 && c != Connectivity::faces) || c == Connectivity::vertices)
                    out.push_back({dx, dy, dz});
            }
    return out;
}

inline std::int64_t linear(Vec3 p, Vec3 shape) { return p.x + shape.x * (p.y + shape.y * p.z); }

}  // namespace detail

/// Labels the components of `score >= threshold` in one block and sums their statistics (scores
/// times `score_scale`, e.g. 1/255 for quantised probabilities). `score`, `fragments` (empty: no
/// contacts) and every feature cover the block's core, whose first voxel is `topleft` in a volume
/// of `volume_shape`.
template <class Score, class Fragment>
BlockPieces block_pieces(View<const Score> score, Score threshold, double score_scale, View<const Fragment> fragments,
                         const std::vector<View<const float>>& features, Vec3 topleft, Vec3 volume_shape,
                         Connectivity connectivity, ThreadPool& pool) {
    const Vec3 shape = score.shape();
    const bool with_fragments = fragments.size() > 0;
    if (with_fragments) require_same_shape(score, fragments, "detect_synapses(score, fragments)");
    for (const auto& f : features) require_same_shape(score, f, "detect_synapses(score, feature)");
    if (!all_le(Vec3{}, topleft) || !all_le(topleft + shape, volume_shape))
        throw InvalidArgument("detect_synapses: the block does not lie inside the volume");
    const std::size_t num_features = features.size();

    Volume<std::uint8_t> mask = Volume<std::uint8_t>::from_shape(
        {static_cast<std::size_t>(shape.x), static_cast<std::size_t>(shape.y), static_cast<std::size_t>(shape.z)});
    const View<std::uint8_t> mask_view(mask);
    parallel_for(pool, 0, shape.z, [&](std::int64_t z) {
        const std::int64_t begin = shape.x * shape.y * z, end = begin + shape.x * shape.y;
        for (std::int64_t i = begin; i < end; ++i) mask_view[i] = score[i] >= threshold;
    });
    const segmentation::Components<std::uint8_t> components(View<const std::uint8_t>(mask_view), connectivity, pool,
                                                            segmentation::Foreground::binary);
    if (components.count() > std::numeric_limits<std::uint32_t>::max())
        throw InvalidArgument("detect_synapses: more than 2^32 components in one block; use smaller blocks");
    const auto n = static_cast<std::size_t>(components.count());
    Volume<std::uint32_t> labels = Volume<std::uint32_t>::from_shape(mask.shape());
    const View<std::uint32_t> label_view(labels);
    components.write(label_view, pool);

    // Each thread sums a range of z planes into its own tables; merged afterwards (integers, so
    // the merge order does not matter).
    struct Partial {
        std::vector<Synapse> pieces;
        std::vector<std::int64_t> features;
        std::unordered_map<std::pair<std::uint64_t, std::uint64_t>, std::size_t, detail::PairHash> contact_index;
        std::vector<Contact> contacts;
        std::vector<std::int64_t> contact_features;
        std::vector<std::pair<std::int64_t, std::uint32_t>> shell;
    };
    const auto num_parts =
        static_cast<std::int64_t>(std::min<std::size_t>(pool.size(), std::max<std::int64_t>(shape.z, 1)));
    std::vector<Partial> parts(static_cast<std::size_t>(num_parts));
    const Vec3 last = shape - Vec3::full(1);
    parallel_for(
        pool, 0, num_parts,
        [&](std::int64_t part) {
            Partial& p = parts[static_cast<std::size_t>(part)];
            p.pieces.resize(n);
            p.features.assign(n * num_features, 0);
            const std::int64_t z0 = shape.z * part / num_parts, z1 = shape.z * (part + 1) / num_parts;
            for (std::int64_t z = z0; z < z1; ++z)
                for (std::int64_t y = 0; y < shape.y; ++y) {
                    const std::int64_t row = shape.x * (y + shape.y * z);
                    for (std::int64_t x = 0; x < shape.x; ++x) {
                        const std::uint32_t label = label_view[row + x];
                        if (label == 0) continue;
                        const std::size_t k = label - 1;
                        const Vec3 v{x, y, z}, g = topleft + v;
                        const std::int64_t index = detail::linear(g, volume_shape);
                        Synapse& s = p.pieces[k];
                        s.moments.add(g.x, g.y, g.z);
                        const std::int64_t value = to_fixed(score_scale * static_cast<double>(score[row + x]));
                        s.score_sum += value;
                        s.score_max = std::max(s.score_max, value);
                        s.lo = min(s.lo, g), s.hi = max(s.hi, g);
                        s.first = std::min(s.first, index);
                        for (std::size_t f = 0; f < num_features; ++f)
                            p.features[k * num_features + f] += to_fixed(features[f][row + x]);
                        if (with_fragments) {
                            const auto fragment = static_cast<std::uint64_t>(fragments[row + x]);
                            if (fragment != 0) {
                                auto [it, added] = p.contact_index.try_emplace({k, fragment}, p.contacts.size());
                                if (added) {
                                    p.contacts.push_back({k, fragment, {}});
                                    p.contact_features.resize(p.contact_features.size() + num_features, 0);
                                }
                                p.contacts[it->second].moments.add(g.x, g.y, g.z);
                                for (std::size_t f = 0; f < num_features; ++f)
                                    p.contact_features[it->second * num_features + f] += to_fixed(features[f][row + x]);
                            }
                        }
                        if (x == 0 || y == 0 || z == 0 || x == last.x || y == last.y || z == last.z)
                            p.shell.emplace_back(index, static_cast<std::uint32_t>(k));
                    }
                }
        },
        num_parts);

    BlockPieces out;
    out.topleft = topleft;
    out.num_features = num_features;
    out.pieces.resize(n);
    out.features.assign(n * num_features, 0);
    std::unordered_map<std::pair<std::uint64_t, std::uint64_t>, std::size_t, detail::PairHash> contact_index;
    for (Partial& p : parts) {
        for (std::size_t k = 0; k < n; ++k) out.pieces[k].merge(p.pieces[k]);
        for (std::size_t i = 0; i < p.features.size(); ++i) out.features[i] += p.features[i];
        for (std::size_t c = 0; c < p.contacts.size(); ++c) {
            const Contact& contact = p.contacts[c];
            auto [it, added] = contact_index.try_emplace({contact.synapse, contact.fragment}, out.contacts.size());
            if (added) {
                out.contacts.push_back({contact.synapse, contact.fragment, {}});
                out.contact_features.resize(out.contact_features.size() + num_features, 0);
            }
            out.contacts[it->second].moments.merge(contact.moments);
            for (std::size_t f = 0; f < num_features; ++f)
                out.contact_features[it->second * num_features + f] += p.contact_features[c * num_features + f];
        }
        out.shell.insert(out.shell.end(), p.shell.begin(), p.shell.end());
    }
    return out;
}

/// The detected synapses: sorted by first voxel (synapse i has id i + 1), their features
/// (synapses x features, row-major, fixed point), their contacts sorted by (synapse, fragment)
/// with their features, and the number of components dropped by the size filter.
struct Detection {
    std::size_t num_features = 0;
    std::vector<Synapse> synapses;
    std::vector<std::int64_t> features;
    std::vector<Contact> contacts;
    std::vector<std::int64_t> contact_features;
    std::uint64_t too_small = 0, too_large = 0;
};

/// Collects the blocks of a volume (in any order, each added once) and joins their pieces.
class Detector {
public:
    Detector(Vec3 volume_shape, std::size_t num_features, Connectivity connectivity)
        : shape_(volume_shape), num_features_(num_features), connectivity_(connectivity) {}

    /// Not thread-safe: callers add one block at a time (computing blocks may run in parallel).
    void add(BlockPieces&& block) {
        if (block.num_features != num_features_)
            throw InvalidArgument("detect_synapses: a block has " + std::to_string(block.num_features) +
                                  " features, the detection " + std::to_string(num_features_));
        const auto offset = static_cast<std::uint32_t>(pieces_.size());
        if (pieces_.size() + block.pieces.size() > std::numeric_limits<std::uint32_t>::max())
            throw InvalidArgument("detect_synapses: more than 2^32 pieces; raise the threshold or the block size");
        pieces_.insert(pieces_.end(), block.pieces.begin(), block.pieces.end());
        features_.insert(features_.end(), block.features.begin(), block.features.end());
        for (Contact c : block.contacts) {
            c.synapse += offset;
            contacts_.push_back(c);
        }
        contact_features_.insert(contact_features_.end(), block.contact_features.begin(), block.contact_features.end());
        for (const auto& [index, piece] : block.shell) {
            const bool added = shell_.emplace(index, piece + offset).second;
            if (!added) throw InvalidArgument("detect_synapses: a voxel was reported by two blocks (blocks overlap)");
        }
    }

    /// Joins pieces across block borders, drops synapses outside [min_size, max_size] voxels
    /// and numbers the rest by first voxel.
    Detection finish(std::uint64_t min_size, std::uint64_t max_size) {
        graph::UnionFind<std::uint32_t> sets(pieces_.size());
        const std::vector<Vec3> offsets = detail::neighbour_offsets(connectivity_);
        for (const auto& [index, piece] : shell_) {
            const Vec3 p{index % shape_.x, (index / shape_.x) % shape_.y, index / (shape_.x * shape_.y)};
            for (const Vec3& o : offsets) {
                const Vec3 q = p + o;
                if (!all_le(Vec3{}, q) || !(q.x < shape_.x && q.y < shape_.y && q.z < shape_.z)) continue;
                const auto it = shell_.find(detail::linear(q, shape_));
                if (it != shell_.end()) sets.merge(piece, it->second);
            }
        }
        // Sum the pieces into their sets' roots.
        const std::size_t F = num_features_;
        std::vector<std::uint32_t> root(pieces_.size());
        for (std::size_t i = 0; i < pieces_.size(); ++i) {
            root[i] = sets.find(static_cast<std::uint32_t>(i));
            if (root[i] == i) continue;
            pieces_[root[i]].merge(pieces_[i]);
            for (std::size_t f = 0; f < F; ++f) features_[root[i] * F + f] += features_[i * F + f];
        }
        Detection out;
        out.num_features = F;
        std::vector<std::uint32_t> kept;
        for (std::size_t i = 0; i < pieces_.size(); ++i) {
            if (root[i] != i) continue;
            const std::uint64_t size = pieces_[i].moments.voxels;
            if (size < min_size) {
                ++out.too_small;
            } else if (size > max_size) {
                ++out.too_large;
            } else {
                kept.push_back(static_cast<std::uint32_t>(i));
            }
        }
        std::sort(kept.begin(), kept.end(),
                  [&](std::uint32_t a, std::uint32_t b) { return pieces_[a].first < pieces_[b].first; });
        constexpr auto dropped = std::numeric_limits<std::uint64_t>::max();
        std::vector<std::uint64_t> synapse_of_root(pieces_.size(), dropped);
        for (std::size_t s = 0; s < kept.size(); ++s) {
            synapse_of_root[kept[s]] = s;
            out.synapses.push_back(pieces_[kept[s]]);
            out.features.insert(out.features.end(), features_.begin() + static_cast<std::ptrdiff_t>(kept[s] * F),
                                features_.begin() + static_cast<std::ptrdiff_t>((kept[s] + 1) * F));
        }
        // Contacts: summed per (synapse, fragment), in that order.
        std::vector<std::pair<std::pair<std::uint64_t, std::uint64_t>, std::size_t>> order;
        for (std::size_t c = 0; c < contacts_.size(); ++c) {
            const std::uint64_t s = synapse_of_root[root[contacts_[c].synapse]];
            if (s != dropped) order.push_back({{s, contacts_[c].fragment}, c});
        }
        std::sort(order.begin(), order.end());
        for (std::size_t i = 0; i < order.size(); ++i) {
            const auto& [key, c] = order[i];
            if (i == 0 || key != order[i - 1].first) {
                out.contacts.push_back({key.first, key.second, {}});
                out.contact_features.resize(out.contact_features.size() + F, 0);
            }
            out.contacts.back().moments.merge(contacts_[c].moments);
            for (std::size_t f = 0; f < F; ++f)
                out.contact_features[out.contact_features.size() - F + f] += contact_features_[c * F + f];
        }
        return out;
    }

private:
    Vec3 shape_;
    std::size_t num_features_;
    Connectivity connectivity_;
    std::vector<Synapse> pieces_;
    std::vector<std::int64_t> features_;
    std::vector<Contact> contacts_;
    std::vector<std::int64_t> contact_features_;
    std::unordered_map<std::int64_t, std::uint32_t> shell_;
};

}  // namespace vx::synapses

// Scene: the geometry of a synthetic neuropil volume in physical units (nm), the input of
// vx::synthetic::render. Cells are unions of tapered capsules ("segments": neurite pieces, spines,
// boutons, somata); a voxel belongs to the cell whose surface it is deepest inside, and voxels in
// the gaps between cells go to the nearest cell surface or, farther than `glia_gap` fill lengths
// from every neuron, to the nearest glia cell. So every voxel is labelled and the cells pack
// densely, as in real neuropil. Organelles (mitochondria, vesicles, synaptic densities, nuclei)
// live inside cells and only change the image and the organelle ground truth.
//
// Positions are in nm from the volume's origin; voxel (i, j, k) spans [i, i+1) * voxel_size, so
// its centre lies at (i + 0.5) * voxel_size.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace vx::synthetic {

/// Compartment codes of the compartment ground truth (0 never occurs: every voxel is labelled).
enum class Compartment : std::uint8_t { axon = 1, dendrite = 2, spine = 3, soma = 4, glia = 5, nucleus = 6 };
constexpr int num_compartment_codes = 7;

struct Point {
    double x = 0, y = 0, z = 0;
};

/// A capsule from `a` (radius ra) to `b` (radius rb) whose radius changes linearly along it; a
/// sphere when a == b.
struct Segment {
    Point a, b;
    double ra = 0, rb = 0;
    std::uint64_t cell = 0;
    Compartment compartment = Compartment::axon;
};

struct GliaCell {
    Point centre;
    std::uint64_t cell = 0;
};

struct Mitochondrion {
    Point a, b;
    double radius = 0;
    std::uint64_t cell = 0;  // drawn only inside this cell
    std::uint64_t id = 0;
};

struct Vesicle {
    Point centre;
    double radius = 0;
    std::uint64_t cell = 0;
};

/// A synaptic density: a disc of `radius` on the cell membrane at `centre`, `thickness` deep into
/// the cell along `normal` (unit, pointing into `cell`). Thick on the postsynaptic side of
/// excitatory synapses, thin elsewhere.
struct Density {
    Point centre, normal;
    double radius = 0, thickness = 0, darkness = 0;
    std::uint64_t cell = 0;
};

struct Nucleus {
    Point centre;
    double radius = 0;
    std::uint64_t cell = 0;
};

enum class SectionDefect : std::uint8_t { none = 0, missing = 1, shifted = 2 };

/// How the scene looks under the microscope. Intensities are on the 0..255 scale of the uint8 image.
struct Imaging {
    std::array<double, 3> voxel_size{11.24, 11.24, 30.0};                                  // nm
    std::array<double, num_compartment_codes> intensity{0, 150, 160, 165, 155, 185, 140};  // per Compartment
    double cell_jitter = 12;                                   // per-cell brightness spread (+-)
    double texture = 26, texture_scale = 60;                   // cytoplasm grain amplitude and size (nm)
    double membrane_darkness = 130, membrane_width = 11;       // nm, half width
    double mitochondrion_intensity = 85, cristae_period = 45;  // nm
    double vesicle_darkness = 70;
    double nucleus_texture = 30;
    std::array<double, 3> blur{0.8, 0.8, 0.5};  // Gaussian sigma in voxels
    double noise = 16;                          // Gaussian sigma
    double drift = 10, drift_period = 2500;     // per-section contrast/brightness wander, period in nm of z
    double gradient = 8;                        // slow brightness change across x and y
    double missing_value = 0;                   // intensity of a missing section
    int section_samples = 3;                    // odd; image planes averaged through a section's thickness
    std::uint64_t seed = 0;
};

struct Scene {
    std::vector<Segment> segments;
    std::vector<GliaCell> glia;
    std::vector<Mitochondrion> mitochondria;
    std::vector<Vesicle> vesicles;
    std::vector<Density> densities;
    std::vector<Nucleus> nuclei;
    double fill_length = 100;  // nm: outside every cell, depth is measured in these units
    double glia_gap = 2;       // fill lengths: voxels farther from every neuron are glia
    Imaging imaging;
    /// Defects per section (global z index) and, for shifted ones, the shift in voxels.
    std::vector<SectionDefect> defects;
    std::vector<std::array<std::int64_t, 2>> shifts;
};

}  // namespace vx::synthetic

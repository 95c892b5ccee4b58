// One include for the test files whatever the Catch2 major version.
#pragma once
#ifdef VOXELYTICS_CATCH2_V2
#include <catch2/catch.hpp>
#else
#include <catch2/catch_all.hpp>
using Catch::Approx;  // global in 2.x
#endif

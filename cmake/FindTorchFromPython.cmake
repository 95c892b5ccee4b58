# Finds LibTorch (target `torch`). LibTorch comes from the installed PyTorch package: if CMake
# does not find Torch on its own, ask the Python interpreter where torch keeps its CMake files.
find_package(Torch CONFIG QUIET)
if(NOT Torch_FOUND)
  if(NOT Python_EXECUTABLE)
    find_package(Python 3.9 REQUIRED COMPONENTS Interpreter)
  endif()
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _vx_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_VARIABLE _vx_torch_error RESULT_VARIABLE _vx_torch_result)
  if(NOT _vx_torch_result EQUAL 0)
    message(FATAL_ERROR
      "VOXELYTICS_WITH_TORCH is ON but `import torch` failed in ${Python_EXECUTABLE}:\n${_vx_torch_error}\n"
      "Install the pinned CPU build first (pip install torch==2.13.0) and build without build isolation "
      "(pip install --no-build-isolation .), or configure with -DVOXELYTICS_WITH_TORCH=OFF.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_vx_torch_prefix}")
  find_package(Torch CONFIG REQUIRED)
endif()
message(STATUS "voxelytics: LibTorch ${Torch_VERSION} from ${Torch_DIR}")

# Finds srlm's dependencies. Torch comes from the project's .venv (deploy/setup.sh) unless the user
# passes Torch_DIR or a CMAKE_PREFIX_PATH that holds another libtorch (>= 2.1), e.g. a cluster's CUDA
# build. CUDA and NCCL code paths are compiled when that libtorch has CUDA and nccl.h is found.
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)            # module mode: Debian ships no protobuf CMake config
find_package(gRPC CONFIG REQUIRED)         # gRPC::grpc++, gRPC::grpc_cpp_plugin
find_package(absl CONFIG REQUIRED)
find_package(yaml-cpp REQUIRED)            # target: yaml-cpp
find_package(nlohmann_json 3 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(GTest REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(PkgConfig REQUIRED)
find_package(OpenSSL REQUIRED)           # libssl-dev: SHA-256 of checkpoint files (worker/model/checksums.h)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)  # libre2-dev: the judge score parser
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)

set(SRLM_VENV_PYTHON "${CMAKE_SOURCE_DIR}/.venv/bin/python" CACHE FILEPATH
    "Python of the project's virtual environment (tests use its transformers as a reference)")

# --- libtorch -------------------------------------------------------------------------------
if(NOT Torch_DIR AND EXISTS "${SRLM_VENV_PYTHON}")
  execute_process(
    COMMAND "${SRLM_VENV_PYTHON}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE SRLM_VENV_TORCH_PREFIX OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _srlm_torch_rc ERROR_QUIET)
  if(_srlm_torch_rc EQUAL 0 AND SRLM_VENV_TORCH_PREFIX)
    list(APPEND CMAKE_PREFIX_PATH "${SRLM_VENV_TORCH_PREFIX}")
  endif()
endif()
find_package(Torch REQUIRED)
if(Torch_VERSION AND Torch_VERSION VERSION_LESS 2.1)
  message(FATAL_ERROR "srlm needs libtorch >= 2.1; found ${Torch_VERSION} (Torch_DIR=${Torch_DIR})")
endif()
# libtorch ships an old copy of protobuf's headers in <prefix>/include/google. A translation unit
# that includes both torch and our gRPC/protobuf headers (the worker's run loop) must see the
# system protobuf, so torch's targets get their headers through a folder of links to everything
# in <prefix>/include but that copy.
set(_srlm_torch_include "")
foreach(_dir IN LISTS TORCH_INCLUDE_DIRS)
  if(EXISTS "${_dir}/google/protobuf" AND EXISTS "${_dir}/torch")
    set(_srlm_torch_include "${_dir}")
  endif()
endforeach()
if(_srlm_torch_include)
  set(_shim "${CMAKE_BINARY_DIR}/torch-include")
  file(MAKE_DIRECTORY "${_shim}")
  file(GLOB _entries RELATIVE "${_srlm_torch_include}" "${_srlm_torch_include}/*")
  foreach(_entry IN LISTS _entries)
    if(NOT _entry STREQUAL "google" AND NOT EXISTS "${_shim}/${_entry}")
      file(CREATE_LINK "${_srlm_torch_include}/${_entry}" "${_shim}/${_entry}" SYMBOLIC)
    endif()
  endforeach()
  foreach(_target torch torch_library torch_cpu torch_cpu_library torch_cuda torch_cuda_library c10 c10_cuda)
    if(TARGET ${_target})
      get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(_dirs)
        # Only the prefix folder itself: "<prefix>/include" followed by ";" or the end.
        string(REGEX REPLACE "${_srlm_torch_include}(;|$)" "${_shim}\\1" _dirs "${_dirs}")
        set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dirs}")
      endif()
    endif()
  endforeach()
endif()

# TORCH_LIBRARIES carries torch's own compile flags (ABI); keep them off the torch-free targets.
add_library(srlm_torch INTERFACE)
target_link_libraries(srlm_torch INTERFACE ${TORCH_LIBRARIES})
get_filename_component(SRLM_TORCH_LIB_DIR "${TORCH_LIBRARY}" DIRECTORY)

set(SRLM_WITH_CUDA OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES)
  set(SRLM_WITH_CUDA ON)
endif()

# NCCL: prefer the copy libtorch loads (the nvidia-nccl wheel beside torch), then the CUDA toolkit.
set(SRLM_WITH_NCCL OFF)
if(SRLM_WITH_CUDA)
  get_filename_component(_srlm_site "${SRLM_TORCH_LIB_DIR}/../.." ABSOLUTE)
  find_path(NCCL_INCLUDE_DIR nccl.h
            HINTS "${_srlm_site}/nvidia/nccl/include" ENV NCCL_HOME /usr/local/cuda/include
            PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY NAMES libnccl.so.2 nccl NAMES_PER_DIR
               HINTS "${_srlm_site}/nvidia/nccl/lib" ENV NCCL_HOME /usr/local/cuda/lib64
               PATH_SUFFIXES lib lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(SRLM_WITH_NCCL ON)
    add_library(srlm_nccl INTERFACE)
    target_include_directories(srlm_nccl SYSTEM INTERFACE "${NCCL_INCLUDE_DIR}")
    target_link_libraries(srlm_nccl INTERFACE "${NCCL_LIBRARY}")
    target_compile_definitions(srlm_nccl INTERFACE SRLM_WITH_NCCL=1)
  endif()
endif()
message(STATUS "srlm: torch ${Torch_VERSION} at ${Torch_DIR}; CUDA ${SRLM_WITH_CUDA}; "
               "NCCL ${SRLM_WITH_NCCL} (${NCCL_INCLUDE_DIR}, ${NCCL_LIBRARY})")

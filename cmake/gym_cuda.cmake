# CUDA for the ops' kernels (src/ops/kernels/*.cu), included after find_package(Torch).
#   GYM_CUDA=AUTO (default): on when the LibTorch found has CUDA (c10_cuda / torch_cuda);
#   GYM_CUDA=ON: required (configure fails without a CUDA LibTorch and nvcc); GYM_CUDA=OFF: never.
# With CUDA on, the .cu files build through CMake's CUDA language into gym_kernels, gym_lib links it
# and defines GYM_WITH_CUDA. In every configuration the CTest test OpsCudaCompile compiles each .cu
# alone with nvcc (scripts/check_cuda_kernels.sh), so a CPU-only build still catches CUDA compile
# errors; without nvcc that test reports itself skipped.
set(GYM_CUDA AUTO CACHE STRING "CUDA kernels: AUTO (when LibTorch has CUDA), ON or OFF")
set_property(CACHE GYM_CUDA PROPERTY STRINGS AUTO ON OFF)
set(GYM_CUDA_ARCHITECTURES "80;90" CACHE STRING "CUDA architectures of the kernels (CMAKE_CUDA_ARCHITECTURES form)")
# The former option's name still works: -DGYM_CUDA_KERNELS=ON means GYM_CUDA=ON.
if(GYM_CUDA_KERNELS)
  message(DEPRECATION "GYM_CUDA_KERNELS is now GYM_CUDA=AUTO|ON|OFF; treating it as GYM_CUDA=ON")
  set(GYM_CUDA ON CACHE STRING "" FORCE)
endif()
string(TOUPPER "${GYM_CUDA}" _gym_cuda)
if(NOT _gym_cuda MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "GYM_CUDA must be AUTO, ON or OFF, got '${GYM_CUDA}'")
endif()

set(GYM_TORCH_HAS_CUDA OFF)
if(TARGET c10_cuda OR TARGET torch_cuda OR "${TORCH_LIBRARIES}" MATCHES "c10_cuda|torch_cuda")
  set(GYM_TORCH_HAS_CUDA ON)
endif()

file(GLOB GYM_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/ops/kernels/*.cu)

set(GYM_WITH_CUDA OFF)
if(_gym_cuda STREQUAL "ON" AND NOT GYM_TORCH_HAS_CUDA)
  message(FATAL_ERROR "GYM_CUDA=ON but the LibTorch found (${Torch_DIR}) has no CUDA: point CMAKE_PREFIX_PATH at a "
                      "CUDA LibTorch, e.g. $(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')")
endif()
if(GYM_TORCH_HAS_CUDA AND NOT _gym_cuda STREQUAL "OFF")
  set(GYM_WITH_CUDA ON)
endif()

if(GYM_WITH_CUDA)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES ${GYM_CUDA_ARCHITECTURES})
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  add_library(gym_kernels STATIC ${GYM_CUDA_SOURCES})
  target_include_directories(gym_kernels PRIVATE ${CMAKE_SOURCE_DIR}/include ${CMAKE_SOURCE_DIR}/src)
  set_target_properties(gym_kernels PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(gym_kernels PUBLIC CUDA::cudart)
  message(STATUS "gym: CUDA kernels ON (architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "gym: CUDA kernels OFF (GYM_CUDA=${GYM_CUDA}, LibTorch with CUDA: ${GYM_TORCH_HAS_CUDA}); "
                 "OpsCudaCompile still compiles them when nvcc exists")
endif()

# Links the kernels into a target that holds the ATen glue (call after it is defined).
function(gym_link_cuda target)
  if(GYM_WITH_CUDA)
    target_link_libraries(${target} PUBLIC gym_kernels CUDA::cudart)
    target_compile_definitions(${target} PUBLIC GYM_WITH_CUDA=1)
  endif()
endfunction()

# The compile check: a CTest test and a target, both running scripts/check_cuda_kernels.sh.
function(gym_cuda_compile_check)
  string(REPLACE ";" "," _archs "${GYM_CUDA_ARCHITECTURES}")
  add_custom_target(gym_cuda_check
    COMMAND ${CMAKE_COMMAND} -E env GYM_CUDA_ARCHS=${_archs} bash ${CMAKE_SOURCE_DIR}/scripts/check_cuda_kernels.sh
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} USES_TERMINAL)
  if(GYM_BUILD_TESTS)
    add_test(NAME OpsCudaCompile COMMAND ${CMAKE_COMMAND} -E env GYM_CUDA_ARCHS=${_archs}
             bash ${CMAKE_SOURCE_DIR}/scripts/check_cuda_kernels.sh)
    set_tests_properties(OpsCudaCompile PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "unit;cuda")
    # The NCCL path of the c10d communicator, compiled against the LibTorch headers found.
    list(GET TORCH_INCLUDE_DIRS 0 _torch_inc0)
    add_test(NAME DistNcclCompile COMMAND ${CMAKE_COMMAND} -E env TORCH_INCLUDE=${_torch_inc0} CXX=${CMAKE_CXX_COMPILER}
             bash ${CMAKE_SOURCE_DIR}/scripts/check_nccl_compile.sh)
    set_tests_properties(DistNcclCompile PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600 LABELS "unit;cuda")
  endif()
endfunction()

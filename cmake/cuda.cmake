# The optional CUDA backend: finds nvcc, cudart, cuBLASLt, NVRTC and cuDNN (in the toolkit, the
# system paths, CUDNN_ROOT or NVIDIA's pip wheels), then adds src/backend/cuda to tensorc_obj.
# Included by the top-level CMakeLists.txt right after tensorc_obj exists; sets TENSORC_HAVE_CUDA and TENSORC_CUDA_LIBS.

set(TENSORC_CUDA_ARCHS "90" CACHE STRING
    "CUDA architectures for the kernels (CMake CUDA_ARCHITECTURES syntax, e.g. \"80;89;90\")")
set(CUDNN_ROOT "$ENV{CUDNN_ROOT}" CACHE PATH
    "cuDNN install prefix (holding include/cudnn.h and lib/libcudnn.so*); empty: search")

set(TENSORC_HAVE_CUDA OFF)
set(TENSORC_CUDA_LIBS "")
set(TENSORC_CUDA_LIBRARY_FILES "")

string(TOUPPER "${TENSORC_CUDA}" _tc_mode)
if(NOT _tc_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "TENSORC_CUDA must be AUTO, ON or OFF (got '${TENSORC_CUDA}')")
endif()
if(_tc_mode STREQUAL "OFF")
  message(STATUS "tensorc CUDA backend: off (TENSORC_CUDA=OFF)")
  return()
endif()

set(_tc_missing "")
macro(_tc_report what text)
  message(STATUS "tensorc CUDA: ${what} ${text}")
endmacro()

# ---- toolkit (cudart and whatever else it ships) --------------------------------------------
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND AND TARGET CUDA::cudart)
  get_target_property(_tc_cudart_loc CUDA::cudart IMPORTED_LOCATION)
  _tc_report("cudart  " "${_tc_cudart_loc} (toolkit ${CUDAToolkit_VERSION}, ${CUDAToolkit_INCLUDE_DIRS})")
  set(_tc_cuda_major "${CUDAToolkit_VERSION_MAJOR}")
else()
  list(APPEND _tc_missing "CUDA toolkit / cudart (set CUDAToolkit_ROOT)")
  _tc_report("cudart  " "NOT FOUND")
  set(_tc_cuda_major "")
endif()

# ---- nvcc ------------------------------------------------------------------------------------
# check_language looks on PATH (and at CUDACXX); a toolkit in a standard place such as
# /usr/local/cuda whose bin/ is not on PATH is taken too.
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER AND CUDAToolkit_NVCC_EXECUTABLE AND EXISTS "${CUDAToolkit_NVCC_EXECUTABLE}")
  set(CMAKE_CUDA_COMPILER "${CUDAToolkit_NVCC_EXECUTABLE}" CACHE FILEPATH "CUDA compiler" FORCE)
endif()
if(CMAKE_CUDA_COMPILER)
  _tc_report("nvcc    " "${CMAKE_CUDA_COMPILER}")
else()
  list(APPEND _tc_missing "nvcc (put it on PATH or set CMAKE_CUDA_COMPILER / CUDACXX)")
  _tc_report("nvcc    " "NOT FOUND")
endif()

# ---- NVIDIA pip wheels, as seen by the configured Python ------------------------------------
# Wheels for CUDA 12 put each library under nvidia/<lib>/{include,lib}; CUDA 13 wheels put the
# toolkit libraries together under nvidia/cu13/. nvidia.* are namespace packages, whose __path__
# is a list-like, so every entry is printed.
set(_tc_pip_roots_cudnn "")
set(_tc_pip_roots_cuda "")
set(_tc_python "")
if(Python3_EXECUTABLE)
  set(_tc_python "${Python3_EXECUTABLE}")
elseif(Python_EXECUTABLE)
  set(_tc_python "${Python_EXECUTABLE}")
else()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    set(_tc_python "${Python3_EXECUTABLE}")
  endif()
endif()
if(_tc_python)
  set(_tc_py [=[
import importlib, os
for mod in ("cudnn", "cu13", "cu12", "cublas", "cuda_nvrtc", "cuda_runtime"):
    try:
        m = importlib.import_module("nvidia." + mod)
    except Exception:
        continue
    for p in list(getattr(m, "__path__", None) or []):
        if os.path.isdir(p):
            print(mod + "=" + os.path.abspath(p))
]=])
  execute_process(COMMAND "${_tc_python}" -c "${_tc_py}"
                  OUTPUT_VARIABLE _tc_py_out RESULT_VARIABLE _tc_py_rc ERROR_QUIET
                  OUTPUT_STRIP_TRAILING_WHITESPACE TIMEOUT 60)
  if(_tc_py_rc EQUAL 0 AND _tc_py_out)
    string(REPLACE "\n" ";" _tc_py_lines "${_tc_py_out}")
    foreach(_line IN LISTS _tc_py_lines)
      if(_line MATCHES "^([a-z0-9_]+)=(.+)$")
        if(CMAKE_MATCH_1 STREQUAL "cudnn")
          list(APPEND _tc_pip_roots_cudnn "${CMAKE_MATCH_2}")
        else()
          list(APPEND _tc_pip_roots_cuda "${CMAKE_MATCH_2}")
        endif()
      endif()
    endforeach()
  endif()
  _tc_report("python  " "${_tc_python}: nvidia.cudnn [${_tc_pip_roots_cudnn}] nvidia CUDA wheels [${_tc_pip_roots_cuda}]")
endif()

# Finds header `header` and a library named one of `names` below `roots` (each root holding
# include/ and lib/), in order, preferring the library that sits beside the found header.
# Results go to the cache variables TENSORC_<var>_INCLUDE_DIR and TENSORC_<var>_LIBRARY so that a
# user can override either with -D.
function(_tc_find var header roots names)
  set(_inc_hints "")
  foreach(r IN LISTS roots)
    list(APPEND _inc_hints "${r}/include")
  endforeach()
  find_path(TENSORC_${var}_INCLUDE_DIR ${header} HINTS ${_inc_hints})
  set(_lib_hints "")
  if(TENSORC_${var}_INCLUDE_DIR)
    get_filename_component(_r "${TENSORC_${var}_INCLUDE_DIR}" DIRECTORY)
    list(APPEND _lib_hints "${_r}")
  endif()
  list(APPEND _lib_hints ${roots})
  find_library(TENSORC_${var}_LIBRARY NAMES ${names} HINTS ${_lib_hints}
               PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu)
endfunction()

# Wraps a found library in an imported target carrying its include directory. Linking an
# imported library by full path lets a wheel's libcudnn.so.9 be used although the wheel has no
# unversioned libcudnn.so, and makes CMake put its directory in the build RPATH.
function(_tc_import target var)
  add_library(${target} SHARED IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES
    IMPORTED_LOCATION "${TENSORC_${var}_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${TENSORC_${var}_INCLUDE_DIR}")
endfunction()

set(_tc_tk_roots "")
if(CUDAToolkit_FOUND)
  get_filename_component(_tc_tk_root "${CUDAToolkit_LIBRARY_DIR}" DIRECTORY)
  list(APPEND _tc_tk_roots "${CUDAToolkit_LIBRARY_ROOT}" "${_tc_tk_root}")
  foreach(_d IN LISTS CUDAToolkit_INCLUDE_DIRS)
    get_filename_component(_r "${_d}" DIRECTORY)
    list(APPEND _tc_tk_roots "${_r}")
  endforeach()
  list(REMOVE_DUPLICATES _tc_tk_roots)
endif()

# Versioned names first: the wheels ship only libX.so.N, and a library of another CUDA major
# version than the toolkit's would not work with its cudart.
set(_tc_vnames "")
if(_tc_cuda_major)
  set(_tc_vnames "libcublasLt.so.${_tc_cuda_major}")
endif()

# ---- cuBLASLt: toolkit, else pip -------------------------------------------------------------
set(_tc_lt_from_toolkit OFF)
if(CUDAToolkit_FOUND AND TARGET CUDA::cublasLt)
  set(_tc_lt_from_toolkit ON)
  get_target_property(TENSORC_CUBLASLT_LIBRARY CUDA::cublasLt IMPORTED_LOCATION)
  find_path(TENSORC_CUBLASLT_INCLUDE_DIR cublasLt.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
else()
  _tc_find(CUBLASLT cublasLt.h "${_tc_tk_roots};${_tc_pip_roots_cuda}"
           "cublasLt;${_tc_vnames}")
endif()
if(TENSORC_CUBLASLT_LIBRARY AND TENSORC_CUBLASLT_INCLUDE_DIR)
  _tc_report("cuBLASLt" "${TENSORC_CUBLASLT_LIBRARY} (headers ${TENSORC_CUBLASLT_INCLUDE_DIR})")
else()
  list(APPEND _tc_missing "cuBLASLt (cublasLt.h + libcublasLt: CUDA toolkit or pip nvidia-cublas)")
  _tc_report("cuBLASLt" "NOT FOUND")
endif()

# ---- NVRTC: toolkit, else pip ----------------------------------------------------------------
set(_tc_vnames "")
if(_tc_cuda_major)
  set(_tc_vnames "libnvrtc.so.${_tc_cuda_major}")
endif()
if(CUDAToolkit_FOUND AND TARGET CUDA::nvrtc)
  get_target_property(TENSORC_NVRTC_LIBRARY CUDA::nvrtc IMPORTED_LOCATION)
  find_path(TENSORC_NVRTC_INCLUDE_DIR nvrtc.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
else()
  _tc_find(NVRTC nvrtc.h "${_tc_tk_roots};${_tc_pip_roots_cuda}" "nvrtc;${_tc_vnames}")
endif()
if(TENSORC_NVRTC_LIBRARY AND TENSORC_NVRTC_INCLUDE_DIR)
  _tc_report("NVRTC   " "${TENSORC_NVRTC_LIBRARY} (headers ${TENSORC_NVRTC_INCLUDE_DIR})")
else()
  list(APPEND _tc_missing "NVRTC (nvrtc.h + libnvrtc: CUDA toolkit or pip nvidia-cuda-nvrtc)")
  _tc_report("NVRTC   " "NOT FOUND")
endif()

# ---- cuDNN 9: CUDNN_ROOT, pip wheel, toolkit, system paths ------------------------------------
# The wheel comes before the toolkit and system copies: a process that also imports PyTorch loads
# the wheel's libcudnn.so.9 (same soname), and headers of another release beside that library
# give engine configurations the loaded library rejects (seen: CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH).
set(_tc_cudnn_hints "")
if(CUDNN_ROOT)
  list(APPEND _tc_cudnn_hints "${CUDNN_ROOT}/include")
endif()
foreach(r IN LISTS _tc_pip_roots_cudnn)
  list(APPEND _tc_cudnn_hints "${r}/include")
endforeach()
foreach(r IN LISTS _tc_tk_roots)
  list(APPEND _tc_cudnn_hints "${r}/include")
endforeach()
set(_tc_cudnn_paths "")
find_path(TENSORC_CUDNN_INCLUDE_DIR cudnn_version.h HINTS ${_tc_cudnn_hints} PATHS ${_tc_cudnn_paths})
set(_tc_cudnn_version "")
if(TENSORC_CUDNN_INCLUDE_DIR)
  file(STRINGS "${TENSORC_CUDNN_INCLUDE_DIR}/cudnn_version.h" _tc_cudnn_defs
       REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
  foreach(_part MAJOR MINOR PATCHLEVEL)
    string(REGEX MATCH "CUDNN_${_part} +([0-9]+)" _m "${_tc_cudnn_defs}")
    set(_tc_cudnn_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  set(_tc_cudnn_version "${_tc_cudnn_MAJOR}.${_tc_cudnn_MINOR}.${_tc_cudnn_PATCHLEVEL}")
  get_filename_component(_tc_cudnn_root "${TENSORC_CUDNN_INCLUDE_DIR}" DIRECTORY)
  # Only the library beside the header: a header and a library from two installs would disagree.
  find_library(TENSORC_CUDNN_LIBRARY NAMES cudnn libcudnn.so.${_tc_cudnn_MAJOR} NAMES_PER_DIR
               HINTS "${_tc_cudnn_root}"
               PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu NO_DEFAULT_PATH)
  if(NOT TENSORC_CUDNN_LIBRARY) # a system install keeps headers and libraries in separate trees
    find_library(TENSORC_CUDNN_LIBRARY NAMES cudnn libcudnn.so.${_tc_cudnn_MAJOR} NAMES_PER_DIR)
  endif()
endif()
if(TENSORC_CUDNN_INCLUDE_DIR AND TENSORC_CUDNN_LIBRARY AND _tc_cudnn_MAJOR GREATER_EQUAL 9)
  _tc_report("cuDNN   " "${_tc_cudnn_version}: ${TENSORC_CUDNN_LIBRARY} (headers ${TENSORC_CUDNN_INCLUDE_DIR})")
elseif(TENSORC_CUDNN_INCLUDE_DIR AND TENSORC_CUDNN_LIBRARY)
  list(APPEND _tc_missing "cuDNN >= 9 (found ${_tc_cudnn_version} in ${TENSORC_CUDNN_INCLUDE_DIR})")
  _tc_report("cuDNN   " "version ${_tc_cudnn_version} is too old (need 9)")
else()
  list(APPEND _tc_missing
       "cuDNN 9 (cudnn_version.h + libcudnn: set CUDNN_ROOT, install it in the toolkit or system, or pip install nvidia-cudnn-cu${_tc_cuda_major})")
  _tc_report("cuDNN   " "NOT FOUND (header: '${TENSORC_CUDNN_INCLUDE_DIR}', library: '${TENSORC_CUDNN_LIBRARY}')")
endif()

# ---- decide ----------------------------------------------------------------------------------
if(_tc_missing)
  string(REPLACE ";" "\n    " _tc_missing_text "${_tc_missing}")
  if(_tc_mode STREQUAL "ON")
    message(FATAL_ERROR "TENSORC_CUDA=ON but the CUDA backend cannot be built; missing:\n    ${_tc_missing_text}\n"
                        "Install what is missing, point CMake at it, or configure with -DTENSORC_CUDA=OFF.")
  endif()
  string(REPLACE ";" "; " _tc_missing_line "${_tc_missing}")
  message(STATUS "tensorc CUDA backend: off (TENSORC_CUDA=AUTO; missing: ${_tc_missing_line})")
  return()
endif()

if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "${TENSORC_CUDA_ARCHS}")
endif()
# cudart is linked explicitly below (one shared copy, the one the RPATH finds): CMake adds none
# itself. A static copy in tensorc next to the shared one that PyTorch loads would be a second
# runtime with its own state.
set(CMAKE_CUDA_RUNTIME_LIBRARY None)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
enable_language(CUDA)

# cudart comes from the toolkit, unless cuBLASLt came from a wheel directory that also holds a
# cudart of the same major version: that directory is in the RPATH, so at run time its cudart is
# the one found first anyway (and the one PyTorch loads); linking it says so.
get_target_property(TENSORC_CUDART_LIBRARY CUDA::cudart IMPORTED_LOCATION)
get_filename_component(_tc_lt_dir "${TENSORC_CUBLASLT_LIBRARY}" DIRECTORY)
if(_tc_cuda_major AND NOT _tc_lt_from_toolkit AND EXISTS "${_tc_lt_dir}/libcudart.so.${_tc_cuda_major}")
  set(TENSORC_CUDART_LIBRARY "${_tc_lt_dir}/libcudart.so.${_tc_cuda_major}")
  _tc_report("cudart  " "using ${TENSORC_CUDART_LIBRARY}, beside cuBLASLt")
endif()
set(TENSORC_CUDART_INCLUDE_DIR "${CUDAToolkit_INCLUDE_DIRS}")
_tc_import(tensorc_cudart CUDART)
_tc_import(tensorc_cublaslt CUBLASLT)
_tc_import(tensorc_nvrtc NVRTC)
_tc_import(tensorc_cudnn CUDNN)

# Everything a consumer of tensorc needs, in one interface target. The definition and include
# directories travel with it to tensorc, tensorc_static and everything that links them (the tests
# link tensorc_static, not tensorc_obj). cudart comes first so that the toolkit's cuda_runtime.h
# wins over the copy in a wheel's include directory.
#
# libcuda is deliberately not linked: a binary with libcuda.so.1 in DT_NEEDED does not even start
# on a machine without the NVIDIA driver (CI), so tests could not report "no GPU" and skip. Code
# that needs the driver API gets its entry points at run time through the runtime
# (cudaGetDriverEntryPointByVersion), which loads the driver itself.
add_library(tensorc_cuda_deps INTERFACE)
target_compile_definitions(tensorc_cuda_deps INTERFACE TC_HAVE_CUDA=1)
target_link_libraries(tensorc_cuda_deps INTERFACE
  tensorc_cudart tensorc_cublaslt tensorc_nvrtc tensorc_cudnn ${CMAKE_DL_LIBS})

file(GLOB _tc_cuda_sources CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_LIST_DIR}/../src/backend/cuda/*.c
  ${CMAKE_CURRENT_LIST_DIR}/../src/backend/cuda/kernels/*.cu)
target_sources(tensorc_obj PRIVATE ${_tc_cuda_sources})
target_link_libraries(tensorc_obj PUBLIC tensorc_cuda_deps)
target_compile_definitions(tensorc_obj PUBLIC TC_HAVE_CUDA=1)
set_target_properties(tensorc_obj PROPERTIES
  CUDA_ARCHITECTURES "${TENSORC_CUDA_ARCHS}"
  CUDA_RUNTIME_LIBRARY None
  CUDA_STANDARD 17)

# The directory's host flags (-Wall, -fsanitize=...) also reach nvcc; CMake passes
# -forward-unknown-to-host-compiler, so nvcc hands them to gcc for the host side of .cu files.
target_compile_options(tensorc_obj PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xptxas=-warn-spills>)

# Binaries find the wheel libraries through their RPATH. The build RPATH gets the directories of
# the imported libraries automatically; an installed binary keeps the same (absolute) ones.
# It must be DT_RPATH, not the newer DT_RUNPATH: libraries that dlopen their own parts (NVRTC
# loads libnvrtc-builtins, cuDNN its engine libraries) and carry no search path of their own are
# only helped by the RPATH of the objects that loaded them, which glibc consults for DT_RPATH
# alone. With RUNPATH, NVRTC from a wheel fails with "failed to open libnvrtc-builtins.so.13.0",
# and under ASan (whose dlopen interceptor hides the real caller) cuDNN cannot find its parts.
# The cost: LD_LIBRARY_PATH cannot override these directories.
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
target_link_options(tensorc_cuda_deps INTERFACE "LINKER:--disable-new-dtags")

foreach(_t tensorc_cudart tensorc_cublaslt tensorc_nvrtc tensorc_cudnn)
  get_target_property(_loc ${_t} IMPORTED_LOCATION)
  list(APPEND TENSORC_CUDA_LIBRARY_FILES "${_loc}")
endforeach()
set(TENSORC_CUDA_LIBS tensorc_cuda_deps)
set(TENSORC_HAVE_CUDA ON)
message(STATUS "tensorc CUDA backend: on (architectures ${TENSORC_CUDA_ARCHS}, cuDNN ${_tc_cudnn_version})")

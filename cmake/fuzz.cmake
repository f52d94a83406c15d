# Fuzz targets for the file readers (tests/fuzz/fuzz_<name>.c). Always builds fuzz_<name>_replay,
# which runs the target over its seed corpus tests/fuzz/corpus/<name> as the ctest fuzz_<name>_seeds;
# with TENSORC_FUZZ=ON and clang, also builds the libFuzzer binary fuzz_<name>.
# A new target: add its name to TENSORC_FUZZ_TARGETS and give it a corpus folder.

set(TENSORC_FUZZ_TARGETS zip json npy pt2 engine timing_cache)

set(_tc_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
                   -fno-omit-frame-pointer -g)
set(_tc_fuzz_libfuzzer OFF)
if(TENSORC_FUZZ)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(_tc_fuzz_libfuzzer ON)
    # The library compiled once more, instrumented: tensorc_static has no coverage feedback for
    # libFuzzer. CPU-only (no TC_HAVE_CUDA), which covers every file reader.
    add_library(tensorc_fuzz_obj OBJECT ${TENSORC_SOURCES})
    target_include_directories(tensorc_fuzz_obj PRIVATE include src)
    target_compile_definitions(tensorc_fuzz_obj PRIVATE TC_BUILDING_LIBRARY)
    target_compile_options(tensorc_fuzz_obj PRIVATE -fsanitize=fuzzer-no-link,address,undefined
                           -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
  else()
    message(WARNING "TENSORC_FUZZ needs clang (configure with CC=clang); building only the "
                    "fuzz_*_replay executables with ${CMAKE_C_COMPILER_ID}")
  endif()
endif()

foreach(name IN LISTS TENSORC_FUZZ_TARGETS)
  set(_tc_fuzz_src ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/fuzz_${name}.c)

  add_executable(fuzz_${name}_replay ${_tc_fuzz_src} tests/fuzz/standalone_main.c)
  target_include_directories(fuzz_${name}_replay PRIVATE src)
  target_link_libraries(fuzz_${name}_replay PRIVATE tensorc_static)
  if(TENSORC_BUILD_TESTS)
    add_test(NAME fuzz_${name}_seeds
             COMMAND fuzz_${name}_replay ${CMAKE_CURRENT_SOURCE_DIR}/tests/fuzz/corpus/${name}
             WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
  endif()

  if(_tc_fuzz_libfuzzer)
    add_executable(fuzz_${name} ${_tc_fuzz_src} $<TARGET_OBJECTS:tensorc_fuzz_obj>)
    target_include_directories(fuzz_${name} PRIVATE include src)
    target_compile_options(fuzz_${name} PRIVATE ${_tc_fuzz_flags})
    target_link_options(fuzz_${name} PRIVATE ${_tc_fuzz_flags})
    target_link_libraries(fuzz_${name} PRIVATE Threads::Threads m)
  endif()
endforeach()

# rowguard_gtest_suites(<target> <label> <timeout seconds> [RUN_SERIAL]): one ctest entry per gtest suite of
# <target>, named <label>.<Suite> (e.g. unit.PolicyTest, e2e.LoadE2e), labelled <label> (so
# `ctest -L e2e` runs the whole tier), each with TIMEOUT <timeout seconds>. Each entry runs the
# binary with --gtest_filter=<Suite>.* through run_gtest_suite.sh: a suite that skipped a test is
# reported by ctest as "Skipped", not "Passed".
#
# The suite list is read from the binary after each link (POST_BUILD: --gtest_list_tests), and
# ctest reads it through a TEST_INCLUDE_FILES script written here, so a new suite needs no
# re-configure. A binary not built yet shows as one failing entry <target>_NOT_BUILT.
# RUN_SERIAL: under `ctest -j`, each entry of <target> runs alone (for timing- and memory-bound
# tests: load, faults, backpressure, pgbench).
set(_rowguard_gtest_cmake_dir ${CMAKE_CURRENT_LIST_DIR})

function(rowguard_gtest_suites target label timeout)
  set(_serial FALSE)
  if("RUN_SERIAL" IN_LIST ARGN)
    set(_serial TRUE)
  endif()
  set(_list "${CMAKE_CURRENT_BINARY_DIR}/${target}_suites.txt")
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -D BIN=$<TARGET_FILE:${target}> -D OUT=${_list}
            -P ${_rowguard_gtest_cmake_dir}/list_gtest_suites.cmake
    BYPRODUCTS ${_list}
    VERBATIM)
  file(GENERATE OUTPUT "${CMAKE_CURRENT_BINARY_DIR}/${target}_suites_include.cmake" CONTENT
"if(EXISTS \"${_list}\")
  file(STRINGS \"${_list}\" _suites)
  foreach(_suite IN LISTS _suites)
    add_test(\"${label}.\${_suite}\" /bin/bash \"${_rowguard_gtest_cmake_dir}/run_gtest_suite.sh\"
             \"$<TARGET_FILE:${target}>\" \"--gtest_filter=\${_suite}.*\")
    set_tests_properties(\"${label}.\${_suite}\" PROPERTIES LABELS \"${label}\" TIMEOUT ${timeout}
                         SKIP_RETURN_CODE 77 RUN_SERIAL ${_serial})
  endforeach()
else()
  add_test(${target}_NOT_BUILT /bin/sh -c \"echo '${target} is not built: cmake --build <dir> --target ${target}'; exit 1\")
endif()
")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES
    "${CMAKE_CURRENT_BINARY_DIR}/${target}_suites_include.cmake")
endfunction()

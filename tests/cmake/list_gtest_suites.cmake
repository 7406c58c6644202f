# Run at build time (POST_BUILD of a gtest binary, see tests/cmake/gtest_suites.cmake):
#   cmake -D BIN=<test binary> -D OUT=<suite list file> -P list_gtest_suites.cmake
# Writes the binary's test suite names (one a line, e.g. "PolicyTest", "Modes/PgbenchAsTenant")
# to OUT, rewriting it only when the list changed.
execute_process(COMMAND "${BIN}" --gtest_list_tests
  OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${BIN} --gtest_list_tests failed (${_rc}):\n${_out}\n${_err}")
endif()
string(REPLACE "\n" ";" _lines "${_out}")
set(_suites "")
foreach(_line IN LISTS _lines)
  # Suite lines start in column 0 and end with '.', optionally followed by "  # TypeParam = ...".
  if(_line MATCHES "^([A-Za-z0-9_/]+)\\.(  #.*)?$")
    string(APPEND _suites "${CMAKE_MATCH_1}\n")
  endif()
endforeach()
if(_suites STREQUAL "")
  message(FATAL_ERROR "${BIN} --gtest_list_tests listed no test suite:\n${_out}")
endif()
set(_old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" _old)
endif()
if(NOT _old STREQUAL _suites)
  file(WRITE "${OUT}" "${_suites}")
endif()

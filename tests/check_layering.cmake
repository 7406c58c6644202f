# The modules' include direction, proxy -> sqlrewrite -> policy -> auth (pg/: PostgreSQL's
# vocabulary, allowed everywhere). Run by ctest as `layering`:
#   cmake -DROOT=<source dir> -P tests/check_layering.cmake
# Every #include "..." and #include <...> of the files under the checked modules whose first path
# component is a module of this repository must name a module the including one may use; a path
# with ".." fails too (it could reach any module). Prints each offending line; fails when any.
# Includes of a file next to the includer (no module prefix) stay inside the module and pass.
cmake_minimum_required(VERSION 3.25)
if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source dir> -P check_layering.cmake")
endif()

# module -> the modules its files may include (itself included).
set(allowed_pg pg)
set(allowed_auth auth pg)
set(allowed_policy policy auth pg)
set(allowed_sqlrewrite sqlrewrite policy auth pg)
set(checked pg auth policy sqlrewrite)
# Every top-level directory that holds includable project code.
set(modules pg auth policy sqlrewrite proxy tests bench)

set(violations 0)
set(files_checked 0)
foreach(module IN LISTS checked)
  if(NOT IS_DIRECTORY ${ROOT}/${module})
    continue()
  endif()
  file(GLOB_RECURSE sources RELATIVE ${ROOT} ${ROOT}/${module}/*.h ${ROOT}/${module}/*.cc ${ROOT}/${module}/*.inc)
  foreach(source IN LISTS sources)
    math(EXPR files_checked "${files_checked} + 1")
    file(STRINGS ${ROOT}/${source} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[\"<]([^\">]*)[\">].*$" "\\1" path "${line}")
      set(bad "")
      if(path MATCHES "(^|/)\\.\\.(/|$)")
        set(bad "a path with \"..\"")
      else()
        string(REGEX REPLACE "/.*$" "" first "${path}")
        if(path MATCHES "/" AND first IN_LIST modules AND NOT first IN_LIST allowed_${module})
          string(REPLACE ";" "/, " may "${allowed_${module}}/")
          set(bad "${module}/ may include only ${may}")
        endif()
      endif()
      if(bad)
        message("layering: ${source}: ${line}   (${bad})")
        math(EXPR violations "${violations} + 1")
      endif()
    endforeach()
  endforeach()
endforeach()

if(files_checked EQUAL 0)
  message(FATAL_ERROR "layering: no files found under ${ROOT} (wrong ROOT?)")
endif()
if(violations GREATER 0)
  message(FATAL_ERROR "layering: ${violations} include(s) against the direction proxy -> sqlrewrite -> policy -> auth")
endif()
message("layering: ${files_checked} files of pg/ auth/ policy/ sqlrewrite/ include only downwards")

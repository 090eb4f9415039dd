# hotswap_module(NAME DEPS ...): a static library from every .cc in the calling folder.
# Engine folders are modules in data-path order. engine/src is a PRIVATE include path: a
# module's headers reach only modules that link it, engine/include (the public API) is
# PUBLIC, and DEPS must name exactly the modules whose headers the module includes
# (scripts/check_walls.cmake fails the build otherwise; see engine/README.md "Walls").
function(hotswap_module name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR}/engine/src ${CMAKE_CURRENT_SOURCE_DIR})
  hotswap_declare_walls(${folder} ${ARG_DEPS})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/engine/include PRIVATE ${PROJECT_SOURCE_DIR}/engine/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE hotswap_warnings hotswap_cpu_flags)
endfunction()

# hotswap_declare_walls(FOLDERS DEPS...): records that the engine/src folders FOLDERS (a
# ;-list: one module) may include the folders of DEPS (engine modules; other targets are
# ignored) for the walls check.
function(hotswap_declare_walls folders)
  string(REPLACE ";" " " folder "${folders}")
  set(allowed "")
  foreach(dep ${ARGN})
    if(dep MATCHES "^hs_(.+)$")
      list(APPEND allowed ${CMAKE_MATCH_1})
    endif()
  endforeach()
  string(REPLACE ";" " " allowed "${allowed}")
  set_property(GLOBAL APPEND PROPERTY HOTSWAP_WALLS "${folder}: ${allowed}")
endfunction()

# Writes the declarations to FILE (one "folder: module module ..." line each), read by
# scripts/check_walls.cmake.
function(hotswap_write_walls file)
  get_property(walls GLOBAL PROPERTY HOTSWAP_WALLS)
  set(text "")
  foreach(entry ${walls})
    string(APPEND text "${entry}\n")
  endforeach()
  file(GENERATE OUTPUT ${file} CONTENT "${text}")
endfunction()

# hotswap_test(NAME SOURCES ... DEPS ...): one gtest binary registered with CTest. Tests may
# include engine internals (hotswap_engine_internals).
function(hotswap_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} hotswap_engine_internals GTest::gtest GTest::gtest_main GTest::gmock
                        hotswap_warnings)
  target_compile_definitions(${name} PRIVATE HOTSWAP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             HOTSWAP_BINARY_DIR="${PROJECT_BINARY_DIR}")
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()

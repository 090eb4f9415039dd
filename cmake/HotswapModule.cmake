# hotswap_module(NAME DEPS ...): a static library from every .cc in the calling folder.
# Engine folders are modules in data-path order; each lists only what it needs.
function(hotswap_module name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  if(NOT sources)  # a module whose code has not landed yet: headers only
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR}/engine/src ${PROJECT_SOURCE_DIR}/engine/include)
    target_link_libraries(${name} INTERFACE ${ARG_DEPS})
    return()
  endif()
  add_library(${name} STATIC ${sources})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/engine/src ${PROJECT_SOURCE_DIR}/engine/include)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE hotswap_warnings hotswap_cpu_flags)
endfunction()

# hotswap_test(NAME SOURCES ... DEPS ...): one gtest binary registered with CTest.
function(hotswap_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main GTest::gmock hotswap_warnings)
  target_compile_definitions(${name} PRIVATE HOTSWAP_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             HOTSWAP_BINARY_DIR="${PROJECT_BINARY_DIR}")
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "${ARG_LABELS}")
endfunction()

# The walls between the engine's modules and between the engine and the server, checked from
# the code's own #include lines (run by the build before `hotswap` links, and as the CTest
# test include_walls):
#   cmake -DSOURCE_DIR=<repo> -DWALLS=<declarations> [-DSTAMP=<file>] -P scripts/check_walls.cmake
#
# WALLS has one line per engine/src folder, "folder: module module ...", written at configure
# time from each hotswap_module(... DEPS ...) (cmake/HotswapModule.cmake). The rules:
#  1. A file of engine/src/<folder> includes headers of its own folder, of the folders its
#     module declares, and of engine/include only; a declared module it never includes is an
#     error too (declarations say exactly what is used). Every engine/src folder is declared.
#  2. engine/include (the public API) includes only engine/include.
#  3. server/ includes no header of engine/src: it sees the engine through engine/include.
# Tests, benchmarks and tools/ may include internals (they link hotswap_engine_internals).
cmake_minimum_required(VERSION 3.25)

set(engine_src "${SOURCE_DIR}/engine/src")
set(errors "")

# folder -> its module's declaration (a module may span folders: the facade is engine.cc + api/).
file(STRINGS "${WALLS}" declarations)
set(declared_folders "")
set(modules "")
foreach(line ${declarations})
  string(REGEX MATCH "^([^:]+):(.*)$" _ "${line}")
  string(REPLACE " " ";" folders "${CMAKE_MATCH_1}")
  string(STRIP "${CMAKE_MATCH_2}" allowed)
  string(REPLACE " " ";" allowed "${allowed}")
  list(GET folders 0 module)
  list(APPEND modules ${module})
  set(allowed_${module} ${allowed})
  set(used_${module} "")
  foreach(folder ${folders})
    list(APPEND declared_folders ${folder})
    set(module_of_${folder} ${module})
  endforeach()
endforeach()

# The top folders of engine/src: the module names an include can reach.
file(GLOB entries RELATIVE "${engine_src}" "${engine_src}/*")
set(module_folders "")
foreach(entry ${entries})
  if(IS_DIRECTORY "${engine_src}/${entry}")
    list(APPEND module_folders ${entry})
  endif()
endforeach()

# The quoted includes of FILE, as paths.
function(quoted_includes file out)
  file(STRINGS "${file}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  set(paths "")
  foreach(line ${lines})
    string(REGEX MATCH "\"([^\"]+)\"" _ "${line}")
    list(APPEND paths "${CMAKE_MATCH_1}")
  endforeach()
  set(${out} ${paths} PARENT_SCOPE)
endfunction()

# Rule 1: the modules.
file(GLOB_RECURSE engine_files RELATIVE "${engine_src}" "${engine_src}/*.h" "${engine_src}/*.cc" "${engine_src}/*.inc")
foreach(rel ${engine_files})
  string(REGEX MATCH "^[^/]+" folder "${rel}")
  if(NOT folder IN_LIST declared_folders)
    string(APPEND errors "engine/src/${rel}: its folder '${folder}' is not a declared module (hotswap_module in a CMakeLists.txt)\n")
    continue()
  endif()
  set(module ${module_of_${folder}})
  quoted_includes("${engine_src}/${rel}" includes)
  foreach(inc ${includes})
    string(REGEX MATCH "^[^/]+" target "${inc}")
    if(NOT target IN_LIST module_folders OR NOT EXISTS "${engine_src}/${inc}" OR module_of_${target} STREQUAL module)
      continue()
    endif()
    if(target IN_LIST allowed_${module})
      list(APPEND used_${module} ${target})
    else()
      string(APPEND errors "engine/src/${rel} includes \"${inc}\", but module '${module}' does not declare hs_${target}\n")
    endif()
  endforeach()
endforeach()
foreach(module ${modules})
  foreach(dep ${allowed_${module}})
    if(NOT dep IN_LIST used_${module})
      string(APPEND errors "module '${module}' declares hs_${dep} but includes none of its headers\n")
    endif()
  endforeach()
endforeach()

# Rule 2: the public API.
file(GLOB_RECURSE public_files RELATIVE "${SOURCE_DIR}/engine/include" "${SOURCE_DIR}/engine/include/*.h")
foreach(rel ${public_files})
  quoted_includes("${SOURCE_DIR}/engine/include/${rel}" includes)
  foreach(inc ${includes})
    if(NOT EXISTS "${SOURCE_DIR}/engine/include/${inc}")
      string(APPEND errors "engine/include/${rel} includes \"${inc}\", which is not a public header (engine/include)\n")
    endif()
  endforeach()
endforeach()

# Rule 3: the server.
file(GLOB_RECURSE server_files RELATIVE "${SOURCE_DIR}/server" "${SOURCE_DIR}/server/*.h" "${SOURCE_DIR}/server/*.cc")
foreach(rel ${server_files})
  quoted_includes("${SOURCE_DIR}/server/${rel}" includes)
  foreach(inc ${includes})
    if(EXISTS "${engine_src}/${inc}" AND NOT EXISTS "${SOURCE_DIR}/server/${inc}")
      string(APPEND errors "server/${rel} includes engine-internal \"${inc}\": the server sees only engine/include\n")
    endif()
  endforeach()
endforeach()

if(errors)
  # One breach a line, unwrapped (message() would wrap them), then the failure.
  string(REGEX REPLACE "\n$" "" errors "${errors}")
  string(REPLACE "\n" ";" lines "${errors}")
  list(LENGTH lines count)
  foreach(line ${lines})
    execute_process(COMMAND ${CMAKE_COMMAND} -E echo "walls: ${line}")
  endforeach()
  message(FATAL_ERROR "${count} breach(es) of the include walls (listed above)")
endif()
if(STAMP)
  file(TOUCH "${STAMP}")
endif()

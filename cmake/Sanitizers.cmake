if(HOTSWAP_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# ThreadSanitizer (scripts/tsan.sh builds ./build-tsan with it and runs the unit and
# integration suites). Exclusive with HOTSWAP_SANITIZE: TSan cannot be combined with ASan.
# OpenMP: libgomp is not instrumented, so TSan cannot see its barriers; run with
# OMP_NUM_THREADS=1 (and scripts/tsan.supp for the tests that force more threads).
option(HOTSWAP_TSAN "Build with ThreadSanitizer (not with HOTSWAP_SANITIZE)" OFF)
if(HOTSWAP_TSAN)
  if(HOTSWAP_SANITIZE)
    message(FATAL_ERROR "HOTSWAP_TSAN and HOTSWAP_SANITIZE cannot be combined (TSan excludes ASan)")
  endif()
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

#include "kernels/isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace hotswap::kernels {
namespace {

// CPUID.1:ECX.F16C. Asked directly: clang's __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

Isa detect_isa() {
  __builtin_cpu_init();
  // libgcc also checks XGETBV, so these are false when the OS does not save the registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && cpu_has_f16c())
    return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
    return Isa::kAvx2;
  return Isa::kScalar;
}

Isa isa_from_env(Isa best) {
  const char* env = std::getenv("HOTSWAP_ISA");
  if (env == nullptr || *env == '\0') return best;
  Isa wanted = best;
  if (std::strcmp(env, "scalar") == 0) {
    wanted = Isa::kScalar;
  } else if (std::strcmp(env, "avx2") == 0) {
    wanted = Isa::kAvx2;
  } else if (std::strcmp(env, "avx512") == 0) {
    wanted = Isa::kAvx512;
  } else {
    std::fprintf(stderr, "hotswap: ignoring HOTSWAP_ISA=%s (valid: scalar, avx2, avx512)\n", env);
  }
  return wanted < best ? wanted : best;
}

// Relaxed is enough: the value is written before kernels run (see isa.h).
std::atomic<Isa>& active_slot() {
  static std::atomic<Isa> slot{isa_from_env(best_supported_isa())};
  return slot;
}

}  // namespace

Isa best_supported_isa() {
  static const Isa best = detect_isa();
  return best;
}

Isa active_isa() {
  return active_slot().load(std::memory_order_relaxed);
}

Isa set_active_isa(Isa isa) {
  const Isa best = best_supported_isa();
  const Isa chosen = isa < best ? isa : best;
  active_slot().store(chosen, std::memory_order_relaxed);
  return chosen;
}

bool cpu_has_avx512_bf16() {
  static const bool has = best_supported_isa() == Isa::kAvx512 && __builtin_cpu_supports("avx512bf16");
  return has;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return "scalar";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

}  // namespace hotswap::kernels

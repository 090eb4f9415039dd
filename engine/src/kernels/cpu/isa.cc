#include "kernels/isa.h"

#include "kernels/cpu/bf16_pairs.h"

#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

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

// CPUID.(7,0):EDX bits 24 (AMX-TILE) and 22 (AMX-BF16), then Linux's permission for the
// 8 KiB tile state, which a process must ask for before its first tile instruction (the
// kernel refuses where the hypervisor or the OS does not save that state).
bool detect_amx_bf16() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
  if ((edx & (1u << 24)) == 0 || (edx & (1u << 22)) == 0) return false;
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

bool amx_from_env() {
  const char* env = std::getenv("HOTSWAP_AMX");
  if (env == nullptr || *env == '\0' || std::strcmp(env, "on") == 0) return true;
  if (std::strcmp(env, "off") != 0)
    std::fprintf(stderr, "hotswap: ignoring HOTSWAP_AMX=%s (valid: on, off)\n", env);
  return std::strcmp(env, "off") != 0;
}

std::atomic<bool>& amx_slot() {
  static std::atomic<bool> slot{amx_from_env()};
  return slot;
}

// HOTSWAP_BF16_GEMM=dot|fma, else the measured form (only where there is a bf16 form to run).
Bf16GemmForm bf16_form_from_env() {
  const char* env = std::getenv("HOTSWAP_BF16_GEMM");
  if (env != nullptr && std::strcmp(env, "dot") == 0) return Bf16GemmForm::kDot;
  if (env != nullptr && std::strcmp(env, "fma") == 0) return Bf16GemmForm::kFma;
  if (env != nullptr && *env != '\0' && std::strcmp(env, "auto") != 0)
    std::fprintf(stderr, "hotswap: ignoring HOTSWAP_BF16_GEMM=%s (valid: dot, fma, auto)\n", env);
  if (!cpu_has_avx512_bf16()) return Bf16GemmForm::kDot;
  return detail::avx512_bf16_dot_is_slow() ? Bf16GemmForm::kFma : Bf16GemmForm::kDot;
}

std::atomic<Bf16GemmForm>& bf16_form_slot() {
  static std::atomic<Bf16GemmForm> slot{bf16_form_from_env()};
  return slot;
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

bool cpu_has_amx_bf16() {
  static const bool has = cpu_has_avx512_bf16() && detect_amx_bf16();
  return has;
}

bool amx_enabled() {
  return amx_slot().load(std::memory_order_relaxed) && cpu_has_amx_bf16() && active_isa() == Isa::kAvx512;
}

bool set_amx_enabled(bool enabled) {
  amx_slot().store(enabled, std::memory_order_relaxed);
  return amx_enabled();
}

Bf16GemmForm bf16_gemm_form() {
  return bf16_form_slot().load(std::memory_order_relaxed);
}

void set_bf16_gemm_form(Bf16GemmForm form) {
  bf16_form_slot().store(form, std::memory_order_relaxed);
}

const char* bf16_gemm_form_name(Bf16GemmForm form) {
  return form == Bf16GemmForm::kFma ? "fma" : "dot";
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

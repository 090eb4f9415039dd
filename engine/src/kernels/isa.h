// CPU instruction-set selection for the kernels in this folder. The build may target any
// x86-64; the ISA-specific code is compiled with per-function target options and chosen
// here, once, at run time from CPUID.
//
// The active ISA is the best one this CPU supports, lowered by the environment variable
// HOTSWAP_ISA=scalar|avx2|avx512 (read on first use) or by set_active_isa(). Asking for an
// ISA the CPU lacks selects the best supported one instead. Changing it while kernels run
// on other threads is a race: tests and benchmarks set it between calls only.
#pragma once

#include <cstdint>

namespace hotswap::kernels {

enum class Isa : uint8_t {
  kScalar,  // portable C++; the compiler's baseline flags only
  kAvx2,    // AVX2 + FMA + F16C
  kAvx512,  // AVX-512 F/BW/VL (+ BF16 dot products where the CPU has them)
};

Isa best_supported_isa();
Isa active_isa();
// Returns the ISA actually selected: min(isa, best_supported_isa()).
Isa set_active_isa(Isa isa);
// True if the CPU has AVX512_BF16 (vdpbf16ps); see LinearPrecision::kBf16Dot.
bool cpu_has_avx512_bf16();
const char* isa_name(Isa isa);  // "scalar", "avx2", "avx512"

// How LinearPrecision::kBf16Dot's blocked form (from kBf16DotMinRows rows, without AMX)
// multiplies: with vdpbf16ps (kDot) or with two float32 FMAs per pair in vdpbf16ps's own order
// (kFma), which gives the same bits. kFma is chosen where vdpbf16ps takes longer than two FMAs
// (measured once, ~3 ms, on first use); HOTSWAP_BF16_GEMM=dot|fma (read then) forces one.
enum class Bf16GemmForm : uint8_t { kDot, kFma };
Bf16GemmForm bf16_gemm_form();
// Tests and benchmarks switch it between calls only, as set_active_isa().
void set_bf16_gemm_form(Bf16GemmForm form);
const char* bf16_gemm_form_name(Bf16GemmForm form);  // "dot", "fma"

// AMX (tile registers with bf16 dot products, tdpbf16ps): orthogonal to the ISA level, used
// by LinearPrecision::kBf16Dot from kBf16DotMinRows rows. True if CPUID has AMX-TILE and
// AMX-BF16, the active ISA is AVX-512 with AVX512_BF16, the OS granted this process the tile
// state (Linux's arch_prctl, asked once), and it is not disabled by HOTSWAP_AMX=off (read on
// first use) or set_amx_enabled(false).
bool cpu_has_amx_bf16();
bool amx_enabled();
// Returns the setting actually in force: enabling needs cpu_has_amx_bf16(). Tests and
// benchmarks switch it between calls only, as set_active_isa().
bool set_amx_enabled(bool enabled);

}  // namespace hotswap::kernels

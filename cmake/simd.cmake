# APILAKE_HASWELL: compile simdjson's on-demand hot paths (record selection, schema validation) for
# haswell (AVX2, BMI1, PCLMUL, LZCNT).
# Why: simdjson's DOM parser lives in libsimdjson.so and picks its kernel at run time, but the
# on-demand API is inlined into our code and uses the "builtin" implementation that the compile
# flags allow: Debian's default x86-64 target means the westmere (SSE4.2) kernel. The curator reads
# every page on demand, so those flags decide its parsing speed (docs/performance.md).
# Default: ON when the machine running CMake has those instructions (CPUID, checked by running a
# small program), because CI builds and runs on the same machine; a binary built with it ON needs
# such a CPU. Turn it OFF (-DAPILAKE_HASWELL=OFF) to build a binary for any x86-64.
include(CheckCXXSourceRuns)
set(APILAKE_HASWELL_FLAGS -mavx2 -mbmi -mpclmul -mlzcnt)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_source_runs([[
    #include <cpuid.h>
    int main() {
      unsigned a, b, c, d;
      if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("bmi")) return 1;  // also checks OS support
      if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_PCLMUL)) return 1;
      if (!__get_cpuid(0x80000001, &a, &b, &c, &d) || !(c & bit_LZCNT)) return 1;
      return 0;
    }]] APILAKE_CPU_HAS_HASWELL)
  unset(CMAKE_REQUIRED_QUIET)
endif()
if(APILAKE_CPU_HAS_HASWELL)
  set(_apilake_haswell_default ON)
else()
  set(_apilake_haswell_default OFF)
endif()
option(APILAKE_HASWELL "Compile the on-demand JSON hot paths for haswell (AVX2/BMI/PCLMUL/LZCNT)"
       ${_apilake_haswell_default})
if(APILAKE_HASWELL AND NOT APILAKE_CPU_HAS_HASWELL)
  message(WARNING "APILAKE_HASWELL is ON but this machine lacks AVX2/BMI/PCLMUL/LZCNT: the binary will not run here")
endif()
message(STATUS "apilake: on-demand JSON compiled for haswell: ${APILAKE_HASWELL}")

# Adds the flags to the given targets (the ones whose code runs simdjson on demand).
function(apilake_haswell)
  if(APILAKE_HASWELL)
    foreach(t ${ARGN})
      if(TARGET ${t})
        target_compile_options(${t} PRIVATE ${APILAKE_HASWELL_FLAGS})
      endif()
    endforeach()
  endif()
endfunction()

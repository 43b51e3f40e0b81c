/* kernels/cpu/simd.h — how the CPU kernels ask for vector code; internal to kernels/cpu, not
 * part of the module's interface (kernels_cpu.h).
 *  - KC_CLONES on a function: GCC compiles it for AVX-512, AVX2 and the baseline and picks one
 *    at load time (target_clones). The kernels using it keep every sum in a fixed order and
 *    rely on -ffp-contract=off (C11 mode: no FMA contraction), so all clones give the same
 *    bits. -DKC_CLONES= builds one version for whatever -march says: tests/cli/flash_clones.sh
 *    checks the clones' agreement that way.
 *  - KC_SIMD before a loop: GCC 12 at -O2 vectorises a loop only when its trip count is a
 *    multiple of the vector width, unless asked (omp simd, honoured with -fopenmp). Not for
 *    clang, which turns a refused request into an error under -Werror.
 *  - KC_RANGES(n, min, call): call with size_t i0, i1 in scope, over [0, n) on one thread when
 *    n <= min, else one contiguous range per OpenMP thread (the cloned range functions are
 *    called from here: an OpenMP region's own body is never cloned). */
#ifndef SW_KERNELS_CPU_SIMD_H
#define SW_KERNELS_CPU_SIMD_H

#include <omp.h>
#include <stddef.h>

#ifndef KC_CLONES
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KC_CLONES
#endif
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define KC_SIMD _Pragma("omp simd")
#else
#define KC_SIMD
#endif

#define KC_RANGES(n, min, call)                                                                   \
    do {                                                                                          \
        if ((n) <= (min)) {                                                                       \
            size_t i0 = 0, i1 = (n);                                                              \
            call;                                                                                 \
        } else {                                                                                  \
            _Pragma("omp parallel")                                                               \
            {                                                                                     \
                size_t nt_ = (size_t)omp_get_num_threads(), t_ = (size_t)omp_get_thread_num();  \
                size_t i0 = (n) * t_ / nt_, i1 = (n) * (t_ + 1) / nt_;                            \
                call;                                                                             \
            }                                                                                     \
        }                                                                                         \
    } while (0)

#endif

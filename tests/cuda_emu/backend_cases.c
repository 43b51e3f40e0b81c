/* The cuBLASLt matmul cases of the GPU test tests/gpu/test_cuda_backend.c (forward, input,
 * weight and bias gradients for fp32/TF32, bf16 and fp16 against the CPU kernels, accumulating
 * into random initial gradients, unaligned pointers, the bias gradient's determinism, fp16
 * overflow, the bf16-activation entries), run under the CUDA emulation: this file includes that
 * test unchanged (its main renamed, never called) and runs its matmul_case, a16_case and
 * test_f16_overflow on the backend table tests/cuda_emu/test_cuda_emu.cpp builds from the
 * emulated kcuda_* entries (matmul.cu on the cuBLASLt fake). Their tolerances are the GPU
 * test's (see its file comment). The shapes are chosen for the emulation: small, plus the widths
 * that make matmul.cu cut its 16-bit operands into chunks (the GPU test's shapes never do, see
 * emu_backend_matmul_cases). C, as the GPU test is; the harness counters of this translation
 * unit are handed back to the caller. */
#define main test_cuda_backend_gpu_main
#include "tests/gpu/test_cuda_backend.c"
#undef main

void emu_backend_matmul_cases(const struct backend *b, int *passed, int *failed);

/* Runs the cases on b; *passed and *failed get this file's check counts. The comments give each
 * shape's role: kcuda_matmul_bf16_scratch_bytes(N) holds max(2 Mi, N·64 Ki) 16-bit elements, so
 * an entry cuts its rows into chunks only when its 16-bit operand is wider than 64 Ki elements
 * (2 Mi / N for N < 32). The GPU test's own shapes never do (its 64x64x50304 case fits 83 rows
 * of the 50304-wide dout in one GEMM). OC 96 and 50304 take the fused GELU epilogue; 51, 7 and
 * 70001 are not multiples of 8, so the GELU runs after the GEMM. Each matmul_case also runs the
 * bf16-activation entries (a16_checks): their forward reads bf16 inp whole (no chunks), their
 * backward cuts only dout (chunks of 64 Ki / OC · N rows: OC 70001 gives 37 + 3). */
void emu_backend_matmul_cases(const struct backend *b, int *passed, int *failed)
{
    be = b;
    harness_current = "matmul_case (tests/gpu/test_cuda_backend.c)";
    matmul_case(64, 128, 96, 0);
    matmul_case(37, 75, 51, 1);   /* odd sizes, 4-byte aligned pointers */
    matmul_case(6, 64, 50304, 0); /* GPT-2's head width at decode-like N (one chunk) */
    /* C = 69757: the forward's 16-bit inp is cut into 31 + 2 rows; the weight gradient's
     * dout + inp copies (69764 wide) fit 31 rows, but the 16-byte alignment of the inp copy
     * pushes 31 past the scratch, so matmul.cu drops to 23 rows (chunks of 23 + 10). */
    matmul_case(33, 69757, 7, 0);
    /* OC = 70001, unaligned: the input gradient's 16-bit dout is cut into 37 + 3 rows. */
    matmul_case(40, 3, 70001, 1);
    /* No algorithm takes an epilogue (the fake's refusal hook), on a shape of its own so its
     * plans are built now: the bf16 output's bias is written into D before a beta-1 GEMM, and
     * kcuda_gelu_forward_a16 follows the GEMM (OC 24 would take the fused GELU otherwise). */
    harness_current = "a16_case, no epilogue (tests/gpu/test_cuda_backend.c)";
    setenv("SCALEWISE_EMU_CUBLASLT_NO_ALGO", "epilogue", 1);
    a16_case(21, 40, 24, 1);
    unsetenv("SCALEWISE_EMU_CUBLASLT_NO_ALGO");
    /* The head's backward from a bf16 dout: small odd shapes, unaligned and aligned, and the
     * empty ones. */
    harness_current = "d16_case (tests/gpu/test_cuda_backend.c)";
    d16_case(5, 33, 17, 1);
    d16_case(16, 64, 96, 0);
    d16_case(3, 7, 1, 1);
    d16_empty();
    harness_current = "test_f16_overflow (tests/gpu/test_cuda_backend.c)";
    test_f16_overflow();
    harness_current = "test_optim_segments (tests/gpu/test_cuda_backend.c)";
    test_optim_segments();
    *passed = harness_passed;
    *failed = harness_failed;
}

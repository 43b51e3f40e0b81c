/* kernels/cpu — the CPU numerical kernels behind the executor's backend table: matmuls through
 * OpenBLAS's CBLAS (a plain OpenMP loop when the build has no OpenBLAS), and our own OpenMP loops
 * for embeddings, LayerNorm/RMSNorm, GELU, SwiGLU, RoPE, residuals, causal self-attention
 * (materialised and streaming/flash-style, both with GQA), KV-cache decode, fused softmax +
 * cross-entropy, the optimizers (AdamW, SGD ± momentum, Lion, Adafactor, 8-bit AdamW), gradient
 * norm and clipping, bf16 conversion and int8 weight-only quantisation.
 *
 * Conventions, true of every function below unless its comment says otherwise:
 *  - Plain functions on caller-owned fp32 buffers, row-major, no allocation, no I/O, no errors:
 *    shapes are the caller's contract and are checked only with SW_ASSERT (programming errors).
 *  - Shape letters: B batch, T tokens (sequence positions), C channels, OC output channels,
 *    NH query heads, NKV key/value heads (NKV divides NH; NKV == NH is plain multi-head),
 *    HS head size, V vocabulary, N a row count (usually B*T), n an element count.
 *  - "(B,T,C)" means a contiguous array of B*T*C floats whose last index varies fastest.
 *  - Backward functions ACCUMULATE (+=) into every gradient they write, so a gradient buffer
 *    shared by two consumers (the residual stream, tied embeddings) sums both; the caller zeroes
 *    gradients once per step. Any gradient pointer documented "may be NULL" is skipped. The two
 *    exceptions (in-place transforms) are kcpu_rope_backward and kcpu_softmax_ce.
 *  - Fused QKV layout: a row of (NH + 2*NKV)*HS floats per token: NH query heads, then NKV key
 *    heads, then NKV value heads, each HS floats. Query head h reads key/value head
 *    h / (NH/NKV) (HF Llama's repeat_kv). Attention scale is 1/sqrt(HS).
 *  - Threads: OpenMP, the same pool OpenBLAS (OpenMP build) uses; small sizes stay serial.
 *    No function here may be called from inside an OpenMP parallel region of the caller.
 * Public names start with kcpu_. */
#ifndef SW_KERNELS_CPU_H
#define SW_KERNELS_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- matmul (matmul.c) */

/* out(N,OC) = inp(N,C) · weight(OC,C)ᵀ + bias(OC), like PyTorch nn.Linear. bias may be NULL.
 * Overwrites out. */
void kcpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC);

/* Backward of kcpu_matmul_forward, given dout(N,OC):
 *   dinp(N,C) += dout · weight;  dweight(OC,C) += doutᵀ · inp;  dbias(OC) += Σ_rows dout.
 * Any of dinp, dweight, dbias may be NULL. */
void kcpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC);

/* True when matmuls go through OpenBLAS, false when they use the built-in OpenMP loop. */
bool kcpu_matmul_uses_blas(void);

/* ---------------------------------------------------------------- bf16 matmul (matmul_bf16.c) */

/* Matmuls that read a bf16 weight (the bf16 copy of mixed precision) and accumulate in fp32.
 * The fp32 activations are rounded to bf16 (nearest even) on the way in, so the result is the
 * exact product of the bf16-rounded operands up to fp32 accumulation error. With AVX512-BF16
 * (kcpu_has_native_bf16()) this is a blocked VDPBF16PS kernel; without it the same function
 * runs a slow scalar loop with the same rounding (correct, meant for tests: the executor then
 * widens the weight to fp32 and calls kcpu_matmul_forward instead).
 * scratch: kcpu_matmul_bf16_scratch_bytes(N) bytes, 64-byte aligned, for any C and OC (the
 * bf16 rows of A for one depth block and one packed block of the weight); unused (may be NULL)
 * without AVX512-BF16. The tile and block sizes below fix that size:
 *   bytes = 2·KC·roundup(N, MR) + 2·KC·NC. */
#define KCPU_BF16_MM_MR 8
#define KCPU_BF16_MM_KC 768
#define KCPU_BF16_MM_NC 768
size_t kcpu_matmul_bf16_scratch_bytes(int N);

/* out(N,OC) = bf16(inp(N,C)) · weight(OC,C)ᵀ + bias(OC); weight is bf16, bias fp32 or NULL.
 * Overwrites out. */
void kcpu_matmul_bf16_forward(float *out, const float *inp, const uint16_t *weight,
                              const float *bias, int N, int C, int OC, void *scratch);

/* dinp(N,C) += bf16(dout(N,OC)) · weight(OC,C), weight bf16: the input gradient of the above. */
void kcpu_matmul_bf16_backward_input(float *dinp, const float *dout, const uint16_t *weight,
                                     int N, int C, int OC, void *scratch);

/* dweight(OC,C) += bf16(dout(N,OC))ᵀ · bf16(inp(N,C)), fp32 accumulation (mixed precision's
 * weight gradient, as autocast and the CUDA backend compute it: both operands rounded, the
 * fp32 master gradient accumulated); dbias(OC) += Σ_rows dout in fp32. Either output may be
 * NULL. The same scratch as the two above (kcpu_matmul_bf16_scratch_bytes(N)). */
void kcpu_matmul_bf16_backward_weight(float *dweight, float *dbias, const float *dout,
                                      const float *inp, int N, int C, int OC, void *scratch);

/* The portable scalar versions of the three above (no scratch), always available; the tests
 * compare them against a double-precision reference. */
void kcpu_matmul_bf16_forward_ref(float *out, const float *inp, const uint16_t *weight,
                                  const float *bias, int N, int C, int OC);
void kcpu_matmul_bf16_backward_input_ref(float *dinp, const float *dout, const uint16_t *weight,
                                         int N, int C, int OC);
void kcpu_matmul_bf16_backward_weight_ref(float *dweight, float *dbias, const float *dout,
                                          const float *inp, int N, int C, int OC);

/* ---------------------------------------------------------------- embedding, residual (embed.c) */

/* out(B,T,C)[b,t,:] = wte(V,C)[tokens[b,t],:] + wpe(maxT,C)[pos_offset + t,:].
 * wpe may be NULL (Llama: no learned positions). Every token must be in [0,V) and
 * pos_offset + T <= maxT (asserted). pos_offset is the position of the first token (KV-cache
 * decode continues at the cached length). */
void kcpu_embedding_forward(float *out, const int *tokens, const float *wte, const float *wpe,
                            int B, int T, int C, int V, int maxT, int pos_offset);

/* Scatter-add backward: dwte[tokens[b,t],:] += dout[b,t,:]; dwpe[pos_offset+t,:] += Σ_b dout.
 * dwpe may be NULL. Deterministic (threads own disjoint channel slices, not tokens). */
void kcpu_embedding_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                             int B, int T, int C, int V, int maxT, int pos_offset);

/* out(n) = a + b (out may alias a or b). */
void kcpu_residual_forward(float *out, const float *a, const float *b, size_t n);

/* da += dout; db += dout. Either may be NULL. */
void kcpu_residual_backward(float *da, float *db, const float *dout, size_t n);

/* ---------------------------------------------------------------- normalisation (norm.c) */

/* LayerNorm over the last axis (Ba et al., 2016), biased variance like PyTorch:
 * out(N,C) = (x - mean)·rstd·weight + bias, rstd = 1/sqrt(var + eps). Saves mean(N) and
 * rstd(N) for backward; either may be NULL at inference. */
void kcpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int N, int C, float eps);

/* dinp(N,C) +=, dweight(C) +=, dbias(C) += from dout(N,C), the forward's inputs and its saved
 * mean/rstd. dweight and dbias may be NULL. */
void kcpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C);

/* RMSNorm (Zhang & Sennrich, 2019; HF LlamaRMSNorm): out = x·rstd·weight,
 * rstd = 1/sqrt(mean(x²) + eps). Saves rstd(N) (may be NULL). */
void kcpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                          int C, float eps);

/* dinp(N,C) +=, dweight(C) += (dweight may be NULL). */
void kcpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C);

/* ---------------------------------------------------------------- activations (activation.c) */

/* GELU, tanh approximation as GPT-2 (Hendrycks & Gimpel, 2016):
 * out = 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))). n elements. */
void kcpu_gelu_forward(float *out, const float *inp, size_t n);

/* dinp += gelu'(inp)·dout. */
void kcpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* SwiGLU (Shazeer, 2020; Llama MLP): out(N,H) = silu(gate)·up, silu(x) = x·sigmoid(x).
 * gate_up(N,2H) holds each row's H gate values then its H up values, which is what one matmul
 * with the stacked weight [W_gate; W_up] (2H×C) produces. */
void kcpu_swiglu_forward(float *out, const float *gate_up, int N, int H);

/* dgate_up(N,2H) += the gradient of both halves, from dout(N,H). */
void kcpu_swiglu_backward(float *dgate_up, const float *dout, const float *gate_up, int N, int H);

/* ---------------------------------------------------------------- RoPE (rope.c) */

/* Rotary tables (Su et al., 2021) in HF Llama's rotate-half convention:
 * inv_freq[i] = theta^(-2i/HS), angle = pos·inv_freq[i], for i < HS/2 and pos < maxT;
 * cos_tab(maxT, HS/2) and sin_tab(maxT, HS/2). Angles are computed in double and rounded
 * once, so they are slightly more exact than HF's fp32 arithmetic at long positions.
 * HS must be even. theta is the base (10000 for Llama 2, 500000 for Llama 3). */
void kcpu_rope_tables(float *cos_tab, float *sin_tab, int maxT, int HS, double theta);

/* In place, for every token (b,t) and each of the first n_heads heads of HS floats in its row
 * of row_stride floats (x is (B,T,row_stride)), with p = pos_offset + t and i < HS/2:
 *   x'[i]      = x[i]·cos[p,i] - x[i+HS/2]·sin[p,i]
 *   x'[i+HS/2] = x[i+HS/2]·cos[p,i] + x[i]·sin[p,i]
 * On the fused QKV buffer: row_stride = (NH+2*NKV)*HS, n_heads = NH+NKV rotates q and k and
 * leaves v. pos_offset + T <= maxT (the tables' length) is asserted. */
void kcpu_rope_forward(float *x, const float *cos_tab, const float *sin_tab, int B, int T,
                       int row_stride, int n_heads, int HS, int maxT, int pos_offset);

/* In place: turns the gradient w.r.t. the rotated values into the gradient w.r.t. the values
 * before rotation (the inverse rotation, since the map is orthogonal). Same arguments as the
 * forward. This overwrites rather than accumulates: apply it to dqkv before anything else adds
 * into the q/k parts, i.e. right after the attention backward wrote them. */
void kcpu_rope_backward(float *dx, const float *cos_tab, const float *sin_tab, int B, int T,
                        int row_stride, int n_heads, int HS, int maxT, int pos_offset);

/* ---------------------------------------------------------------- attention (attention.c) */

/* Causal self-attention, materialised form. qkv(B,T,(NH+2*NKV)*HS) fused; out(B,T,NH*HS);
 * att(B,NH,T,T) receives the softmax probabilities (row t, columns > t are written as 0) and
 * is kept for backward: 4·B·NH·T² bytes. */
void kcpu_attention_forward(float *out, float *att, const float *qkv, int B, int T, int NH,
                            int NKV, int HS);

/* Bytes of scratch kcpu_attention_backward needs: the score gradients, 4·B·NH·T². */
size_t kcpu_attention_backward_scratch_bytes(int B, int T, int NH);

/* dqkv(B,T,(NH+2*NKV)*HS) += gradient w.r.t. q, k and v, from dout(B,T,NH*HS), the forward's
 * qkv and att. scratch: kcpu_attention_backward_scratch_bytes() bytes, float-aligned. */
void kcpu_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                             void *scratch, int B, int T, int NH, int NKV, int HS);

/* Causal self-attention, streaming (FlashAttention-2-style, Dao 2023) form: online softmax over
 * key blocks; never holds a T×T buffer. Same qkv/out layout as above. lse(B,NH,T) receives each
 * query row's natural-log logsumexp of its scaled scores (fp32), the only thing saved besides
 * out; NULL skips it (a prefill keeps nothing for a backward). HS <= KCPU_FLASH_MAX_HS. */
#define KCPU_FLASH_MAX_HS 512
void kcpu_flash_attention_forward(float *out, float *lse, const float *qkv, int B, int T, int NH,
                                  int NKV, int HS);

/* dqkv += gradient, recomputing scores block by block from qkv, out, lse and dout. No scratch:
 * one pass over query blocks writes dq, another over key blocks writes dk and dv, so no two
 * threads write the same element and the result is deterministic. */
void kcpu_flash_attention_backward(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int B, int T, int NH,
                                   int NKV, int HS);

/* KV cache for generation: k_cache and v_cache are (B, cache_T, NKV*HS) each.
 * Copies the k and v heads of the T_new tokens in qkv(B,T_new,(NH+2*NKV)*HS) to cache positions
 * pos..pos+T_new-1 (apply RoPE with pos_offset = pos to qkv first). pos + T_new <= cache_T. */
void kcpu_kv_cache_append(float *k_cache, float *v_cache, const float *qkv, int B, int T_new,
                          int pos, int NH, int NKV, int HS, int cache_T);

/* Attention of T_new new tokens (at positions pos..pos+T_new-1, already appended) over the cache:
 * new token i sees cache positions 0..pos+i. q is read from qkv (the same buffer as above);
 * out(B,T_new,NH*HS). Single pass, online softmax, no scratch. */
void kcpu_attention_decode(float *out, const float *qkv, const float *k_cache,
                           const float *v_cache, int B, int T_new, int pos, int NH, int NKV, int HS,
                           int cache_T);

/* ---------------------------------------------------------------- loss (loss.c) */

/* Fused softmax + cross-entropy over the vocabulary, in place. logits is (N,Vp) with Vp >= V
 * (padded vocabulary: columns V..Vp-1 are ignored and get gradient 0). targets(N): a class in
 * [0,V) or -1 to ignore the row. Returns the mean loss (nats) over the rows with a target, 0 if
 * there are none; *n_valid (may be NULL) receives their count. losses(N) (may be NULL) receives
 * each row's loss, 0 for ignored rows.
 * When want_grad, logits is OVERWRITTEN with grad_scale · d(mean loss)/d(logits) =
 * grad_scale · (softmax - onehot(target)) / n_valid, zero rows for ignored targets, so no second
 * N×Vp buffer exists (strategy reference 3.6, c_V = 4). grad_scale folds in e.g. 1/grad_accum. */
float kcpu_softmax_ce(float *logits, float *losses, int *n_valid, const int *targets, int N, int V,
                      int Vp, bool want_grad, float grad_scale);

/* Greedy decoding's choice per row: out[r] = the index of the largest of x[r·ld + 0 .. V), the
 * lowest index on ties; NaN is never chosen (a row of NaN gives 0). out is host memory on every
 * backend (the CUDA entry copies its rows' results back), so only the indices cross. */
void kcpu_argmax_rows(int *out, const float *x, int rows, int V, int ld);

/* ---------------------------------------------------------------- optimizers (optim.c) */

/* Optimizer state buffers are caller-owned, zeroed before the first step. step is 1-based.
 * All updates are element-wise over n contiguous parameters, except Adafactor (one matrix). */

/* AdamW (Loshchilov & Hutter, 2019; torch.optim.AdamW): m,v(n) fp32,
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  m̂ = m/(1-β1^step);  v̂ = v/(1-β2^step)
 *   p = p·(1 - lr·wd) - lr·m̂/(sqrt(v̂) + eps). */
void kcpu_adamw_step(float *param, const float *grad, float *m, float *v, size_t n, int step,
                     float lr, float beta1, float beta2, float eps, float weight_decay);

/* SGD as torch.optim.SGD: weight decay is L2 (added to the gradient), p -= lr·(g + wd·p). */
void kcpu_sgd_step(float *param, const float *grad, size_t n, float lr, float weight_decay);

/* SGD with momentum (torch.optim.SGD, dampening 0): g' = g + wd·p; buf = μ·buf + g';
 * p -= lr·(nesterov ? g' + μ·buf : buf). buf(n) starts at zero, which makes the first step
 * buf = g' exactly as torch's. */
void kcpu_sgd_momentum_step(float *param, const float *grad, float *buf, size_t n, float lr,
                            float momentum, float weight_decay, bool nesterov);

/* Lion (Chen et al., 2023): c = β1·m + (1-β1)·g; p = p·(1 - lr·wd) - lr·sign(c);
 * m = β2·m + (1-β2)·g. sign(0) = 0. Typical β1 = 0.9, β2 = 0.99. */
void kcpu_lion_step(float *param, const float *grad, float *m, size_t n, float lr, float beta1,
                    float beta2, float weight_decay);

/* Adafactor (Shazeer & Stern, 2018) as HF transformers' Adafactor with relative_step=False,
 * scale_parameter=False, warmup_init=False, lr given:
 *   β2t = 1 - step^decay_rate (decay_rate -0.8);  G2 = g² + eps1 (eps1 1e-30)
 *   factored (rows > 1 and cols > 1): R(rows) = β2t·R + (1-β2t)·mean_cols(G2),
 *       Cc(cols) = β2t·Cc + (1-β2t)·mean_rows(G2), v̂[i,j] = R[i]·Cc[j] / mean(R)
 *   unfactored (a vector): R(rows*cols) = β2t·R + (1-β2t)·G2, v̂ = R
 *   u = g/sqrt(v̂);  u /= max(1, RMS(u)/clip_threshold) (clip_threshold 1.0)
 *   with a first moment (m not NULL): m = β1·m + (1-β1)·u; u = m  (HF beta1)
 *   p = p·(1 - lr·wd) - lr·u.
 * param/grad are (rows,cols). State: row_state holds kcpu_adafactor_row_floats(rows, cols)
 * floats, col_state kcpu_adafactor_col_floats(rows, cols) (0 when unfactored: may be NULL),
 * m rows*cols floats or NULL (the default: no first moment; beta1 is then unused).
 * Strategy reference 3.1: 4·(rows+cols) bytes per matrix, 4 per vector element, +4 per
 * parameter with the first moment. */
size_t kcpu_adafactor_row_floats(int rows, int cols);
size_t kcpu_adafactor_col_floats(int rows, int cols);
void kcpu_adafactor_step(float *param, const float *grad, float *row_state, float *col_state,
                         float *m, int rows, int cols, int step, float lr, float beta1,
                         float decay_rate, float eps1, float clip_threshold, float weight_decay);

/* 8-bit AdamW (Dettmers et al., 2022, "8-bit Optimizers via Block-wise Quantization"): the same
 * update as kcpu_adamw_step, but m and v are stored as 8-bit codes in blocks of
 * KCPU_ADAM8_BLOCK elements, each block with one fp32 absmax scale. The code is bitsandbytes'
 * DYNAMIC (dynamic-exponent, "dynamic tree") quantisation, not linear: m uses the signed map,
 * v the unsigned one (create_dynamic_map with 7 exponent bits), values are encoded to the
 * nearest code of x/absmax. Each step dequantises a block, updates it in fp32 and requantises
 * it with the block's new absmax.
 * Tensors with n < KCPU_ADAM8_MIN_N keep fp32 m and v (the same update as kcpu_adamw_step).
 * State: one buffer of kcpu_adamw8bit_state_bytes(n) bytes, 4-byte aligned, all zero before the
 * first step (an all-zero state decodes to m = v = 0): ≈ 2 + 8/2048 bytes per parameter
 * (strategy reference 3.1). */
#define KCPU_ADAM8_BLOCK 2048
#define KCPU_ADAM8_MIN_N 4096
size_t kcpu_adamw8bit_state_bytes(size_t n);
void kcpu_adamw8bit_step(float *param, const float *grad, void *state, size_t n, int step,
                         float lr, float beta1, float beta2, float eps, float weight_decay);

/* Reads the dequantised m or v (which = 0 or 1) of an 8-bit AdamW state into out(n): for
 * checkpoints and tests. */
void kcpu_adamw8bit_read_state(float *out, const void *state, size_t n, int which);

/* L2 norm of grad(n), accumulated in double. */
double kcpu_grad_norm(const float *grad, size_t n);

/* Gradient clipping as torch.nn.utils.clip_grad_norm_: if norm > max_norm, scales grad(n) by
 * max_norm/(norm + 1e-6). Returns the norm before clipping. max_norm <= 0 only measures. */
double kcpu_clip_grad_norm(float *grad, size_t n, double max_norm);

/* x(n) *= s. */
void kcpu_scale(float *x, size_t n, float s);

/* ---------------------------------------------------------------- bf16, int8 (quant.c) */

/* fp32 -> bf16 with round-to-nearest-even on the dropped 16 bits; NaN stays NaN (quiet),
 * infinities and signed zeros are kept, overflow rounds to infinity as IEEE. */
void kcpu_f32_to_bf16(uint16_t *dst, const float *src, size_t n);

/* bf16 -> fp32, exact. */
void kcpu_bf16_to_f32(float *dst, const uint16_t *src, size_t n);

/* fp32 -> IEEE binary16 with round-to-nearest-even, subnormals kept; |x| >= 65520 becomes
 * infinity, NaN stays NaN (quiet). The fp16-mixed weight mirror. */
void kcpu_f32_to_f16(uint16_t *dst, const float *src, size_t n);

/* IEEE binary16 -> fp32, exact. */
void kcpu_f16_to_f32(float *dst, const uint16_t *src, size_t n);

/* Each fp32 value -> the nearest fp16 value (kcpu_f32_to_f16 then kcpu_f16_to_f32), as fp32:
 * the operands of an emulated fp16 matmul. dst may equal src. */
void kcpu_round_f16(float *dst, const float *src, size_t n);

/* True when this CPU has native bf16 arithmetic (AVX512_BF16); otherwise bf16 compute is
 * emulated through fp32. */
bool kcpu_has_native_bf16(void);

/* Weight-only int8: per output row symmetric, scale[o] = max|w[o,:]|/127 (0 row -> scale 0),
 * wq(OC,C)[o,c] = round(w/scale) in [-127,127]. w(OC,C) fp32. */
void kcpu_quantize_int8_rows(int8_t *wq, float *scale, const float *w, int OC, int C);

/* out(N,OC) = inp(N,C) · (scale ⊙ wq)ᵀ + bias, dequantising wq on the fly (bias may be NULL).
 * Against the fp32 matmul with the original w, the error per element is at most
 * Σ_c |inp[c]|·scale[o]/2 plus fp32 rounding. */
void kcpu_matmul_int8_forward(float *out, const float *inp, const int8_t *wq, const float *scale,
                              const float *bias, int N, int C, int OC);

#endif

/* Parameter counts of a transformer (strategy reference section 2, [exact]): P_layer, P, N_mm,
 * the padded vocabulary V_pad and the largest gatherable unit P_max, for GPT-2 style models
 * (2.1: learned positions, LayerNorm, biases on every linear layer, GeLU, tied head) and Llama
 * style models (2.2: rotary positions, RMSNorm, SwiGLU, GQA, untied head). Also what one
 * tensor-parallel rank holds of a layer (3.2.1) and LoRA adapter sizes (3.4). The counts follow
 * the struct's flags (bias, rms_norm, swiglu, tied_head), not the arch name alone, except two
 * things only the arch says: GPT-2 has a learned position table (max_pos x h), and `bias` on a
 * Llama-style model means the Qwen2 layout, biases on the q, k and v projections only (the one
 * Llama-family model with biases; Qwen2.5-7B then counts 7,615,616,512 as Hugging Face does).
 * Memory and time built on these counts are in memory.c and speed.c. */
#include "advisor/advisor.h"

#include "advisor/advisor_int.h"

/* Head dim, query width q = a*d and KV width h_kv = g*d (section 0 notation). */
static int64_t head_dim_of(const struct model_desc *m)
{
    if (m->head_dim > 0)
        return m->head_dim;
    return m->n_heads > 0 ? m->hidden / m->n_heads : 0;
}

static int64_t kv_heads_of(const struct model_desc *m)
{
    return m->n_kv_heads > 0 ? m->n_kv_heads : m->n_heads;
}

static int64_t ffn_of(const struct model_desc *m)
{
    return m->ffn > 0 ? m->ffn : 4 * (int64_t)m->hidden;
}

static bool learned_positions(const struct model_desc *m)
{
    return m->arch == MODEL_ARCH_GPT2;
}

/* Bias vector elements of one layer, split into the ones tensor parallelism divides (biases of
 * column-parallel matrices: QKV, MLP up/gate) and the replicated ones (row-parallel: O, down). */
static void layer_biases(const struct model_desc *m, int64_t q, int64_t hkv, int64_t f,
                         int64_t *split, int64_t *repl)
{
    *split = *repl = 0;
    if (!m->bias)
        return;
    int64_t h = m->hidden;
    *split = q + 2 * hkv; /* Q, K, V biases (GPT-2 fused c_attn; Qwen2 q/k/v_proj) */
    if (m->arch == MODEL_ARCH_GPT2) {
        *split += m->swiglu ? 2 * f : f; /* MLP up (and gate) */
        *repl = h + h;                   /* attention output and MLP down */
    }
}

void model_count(const struct model_desc *m, int vocab_multiple, struct model_counts *out)
{
    int64_t h = m->hidden, L = m->n_layers, d = head_dim_of(m);
    int64_t q = (int64_t)m->n_heads * d, hkv = kv_heads_of(m) * d, f = ffn_of(m);
    int64_t mult = vocab_multiple > 1 ? vocab_multiple : 1;
    int64_t vpad = (m->vocab + mult - 1) / mult * mult;
    int64_t k_m = m->swiglu ? 3 : 2; /* MLP matrices: gate, up, down / fc, proj */
    int64_t norm_params = m->rms_norm ? h : 2 * h;

    int64_t mat = h * q + 2 * h * hkv + q * h + k_m * h * f; /* Q, K, V, O + MLP */
    int64_t b_split, b_repl;
    layer_biases(m, q, hkv, f, &b_split, &b_repl);
    int64_t layer = mat + b_split + b_repl + 2 * norm_params;

    out->vocab_padded = vpad;
    out->params_layer = layer;
    out->params_split_layer = mat + b_split;
    out->params_embed = vpad * h + (learned_positions(m) ? (int64_t)m->max_pos * h : 0);
    out->params_head = m->tied_head ? 0 : vpad * h;
    out->params_final_norm = norm_params;
    out->params_total = L * layer + out->params_embed + out->params_head + norm_params;
    /* N_mm (section 0): every matmul weight; the head (tied or not) is a V_pad x h matmul. */
    out->params_matmul = L * mat + vpad * h;
    out->params_max_unit = layer > vpad * h ? layer : vpad * h;
}

int model_kv_heads_rank(const struct model_desc *m, int t)
{
    int64_t g = kv_heads_of(m);
    if (t <= 1)
        return (int)g;
    return (int)((g + t - 1) / t); /* 4.2: ceil(g/t); replicated heads when t > g */
}

void model_layer_params_rank(const struct model_desc *m, int t, struct layer_params *out)
{
    if (t < 1)
        t = 1;
    int64_t h = m->hidden, d = head_dim_of(m);
    int64_t q = (int64_t)m->n_heads * d, f = ffn_of(m);
    int64_t kv_rank = (int64_t)model_kv_heads_rank(m, t) * d; /* K or V width on this rank */
    int64_t k_m = m->swiglu ? 3 : 2;
    int64_t norm_params = m->rms_norm ? h : 2 * h;
    int64_t b_split, b_repl;
    /* Split biases: Q part by t, K/V as their heads, MLP part by t. */
    layer_biases(m, q, kv_heads_of(m) * d, f, &b_split, &b_repl);
    double bias_rank = 0;
    if (m->bias) {
        bias_rank = (double)q / t + 2.0 * (double)kv_rank +
                    (double)(b_split - q - 2 * kv_heads_of(m) * d) / t + (double)b_repl;
    }
    out->matrix = ((double)h * q + (double)q * h + (double)k_m * h * f) / t + 2.0 * h * kv_rank;
    out->vector = bias_rank + 2.0 * norm_params;
}

int model_lora_matrices(const struct model_desc *m)
{
    return m->arch == MODEL_ARCH_GPT2 ? 4 : 7; /* c_attn, c_proj, c_fc, mlp c_proj / q,k,v,o,3 */
}

double model_lora_params_layer(const struct model_desc *m, int rank, int t)
{
    if (rank <= 0)
        return 0;
    if (t < 1)
        t = 1;
    double h = m->hidden, d = (double)head_dim_of(m);
    double q = m->n_heads * d, hkv = (double)kv_heads_of(m) * d, f = (double)ffn_of(m);
    /* r*(d_in + d_out) per adapted matrix (3.4). Llama: Q, K, V, O, gate, up, down gives
     * 7h + 2q + 2h_kv + 3f; GPT-2 (fused QKV, O, fc, proj) gives 4h + 2q + 2h_kv + 2f. Adapters
     * split like their base matrix (section 12), so one rank holds about 1/t of them. */
    double sum;
    if (m->arch == MODEL_ARCH_GPT2)
        sum = (h + q + 2 * hkv) + (q + h) + (h + f) + (f + h);
    else if (m->swiglu)
        sum = (h + q) + 2 * (h + hkv) + (q + h) + 3 * (h + f);
    else
        sum = (h + q) + 2 * (h + hkv) + (q + h) + 2 * (h + f);
    return rank * sum / t;
}

/* advisor_int.h — internals shared by the files of the advisor module; nothing outside
 * advisor/ includes it. The YAML reading helpers every loader (hardware, model, plan) uses:
 * they walk a libyaml document and report errors at the node's file:line:column. */
#ifndef SW_ADVISOR_INT_H
#define SW_ADVISOR_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <yaml.h>

#include "advisor/advisor.h"

/* A parsed YAML document and the file name used in errors. */
struct ydoc {
    yaml_document_t doc;
    bool loaded;
    char file[SW_ERR_FILE_MAX];
};

/* Parse `len` bytes of YAML (one document). An empty document is an error ("empty file").
 * Syntax errors carry libyaml's line and column. Release with ydoc_release. */
int ydoc_load(struct ydoc *d, const char *text, size_t len, const char *file,
              struct sw_err *err);
void ydoc_release(struct ydoc *d);
yaml_node_t *ydoc_root(struct ydoc *d);

/* Error at a node's position (1-based line and column). Returns code. */
int ydoc_err(struct ydoc *d, const yaml_node_t *node, int code, struct sw_err *err,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Expect a mapping / sequence / scalar; `what` names it ("section 'strategy'"). */
int ydoc_expect_map(struct ydoc *d, yaml_node_t *n, const char *what, struct sw_err *err);
int ydoc_expect_seq(struct ydoc *d, yaml_node_t *n, const char *what, struct sw_err *err);

/* Every key of `map` must be in `allowed` (NULL-terminated): otherwise an error at the key,
 * "unknown key 'micro_bach' in 'strategy'; did you mean 'micro_batch'?". Duplicate keys are
 * errors too. */
int ydoc_check_keys(struct ydoc *d, yaml_node_t *map, const char *const *allowed,
                    const char *section, struct sw_err *err);

/* The value node of `key` in `map`, or NULL. */
yaml_node_t *ydoc_get(struct ydoc *d, yaml_node_t *map, const char *key);
/* The key node of `key` in `map` (for error positions), or NULL. */
yaml_node_t *ydoc_get_key(struct ydoc *d, yaml_node_t *map, const char *key);

/* Scalar conversions with the error at the node: "expected an integer in [1, 1024] for
 * 'strategy.tp', got 'two'". `what` is the dotted key path. */
int ydoc_int(struct ydoc *d, yaml_node_t *n, int64_t min, int64_t max, const char *what,
             int64_t *out, struct sw_err *err);
int ydoc_double(struct ydoc *d, yaml_node_t *n, double min, double max, const char *what,
                double *out, struct sw_err *err);
int ydoc_bool(struct ydoc *d, yaml_node_t *n, const char *what, bool *out, struct sw_err *err);
/* String into buf (size n); too long is an error. */
int ydoc_str(struct ydoc *d, yaml_node_t *n, const char *what, char *buf, size_t n_buf,
             struct sw_err *err);
/* One of `words` (NULL-terminated); sets *out to the index; "did you mean" on a near miss. */
int ydoc_word(struct ydoc *d, yaml_node_t *n, const char *const *words, const char *what,
              int *out, struct sw_err *err);

/* Convenience: optional keys. If `key` is absent the output is untouched and 0 is returned. */
int ydoc_opt_int(struct ydoc *d, yaml_node_t *map, const char *key, int64_t min, int64_t max,
                 const char *section, int64_t *out, struct sw_err *err);
int ydoc_opt_i32(struct ydoc *d, yaml_node_t *map, const char *key, int min, int max,
                 const char *section, int *out, struct sw_err *err);
int ydoc_opt_double(struct ydoc *d, yaml_node_t *map, const char *key, double min, double max,
                    const char *section, double *out, struct sw_err *err);
int ydoc_opt_bool(struct ydoc *d, yaml_node_t *map, const char *key, const char *section,
                  bool *out, struct sw_err *err);
int ydoc_opt_str(struct ydoc *d, yaml_node_t *map, const char *key, const char *section,
                 char *buf, size_t n_buf, struct sw_err *err);
/* Required variant: absent is an error at the map ("missing key 'layers' in 'model'"). */
yaml_node_t *ydoc_require(struct ydoc *d, yaml_node_t *map, const char *key,
                          const char *section, struct sw_err *err);

/* ---- the probe's parts (probe_cpu.c, probe_gpu.c), tied together by hw_probe() in probe.c */
/* CPU, ISA, caches, NUMA and host memory into hw->cpu / hw->mem; `measure` adds the FMA loop
 * and the triad. Fails only when SCALEWISE_PROCFS_ROOT / SCALEWISE_SYSFS_ROOT name a missing
 * directory (SW_ENOENT). */
int hw_probe_cpu(struct hardware *hw, bool measure, struct sw_err *err);
/* GPUs through NVML and the CUDA driver (dlopen). No driver is not an error: n_gpus = 0 and
 * hw->gpu_status says why. */
void hw_probe_gpus(struct hardware *hw);
/* NCCL and MPI availability and versions (dlopen, never linked). */
void hw_probe_comm_libs(struct hardware *hw);
/* FP32 FLOP per cycle per core for an x86 micro-architecture (strategy reference 9.4); 0 when
 * there is no table entry (measure instead). */
double hw_cpu_fp32_flop_per_cycle(const char *vendor, int family, int model, unsigned isa);

/* ---- the estimator's shared parts (counts.c, hw_device.c, check.c, memory.c, speed.c) */
/* One layer's parameters held by one of `t` tensor-parallel ranks (2.2, 3.2.1): matrices
 * (TP-split, quantisable; K/V keep ceil(g/t) heads when t > g) and vectors (norms, biases). */
struct layer_params {
    double matrix;
    double vector;
};
void model_layer_params_rank(const struct model_desc *m, int t, struct layer_params *out);
int model_kv_heads_rank(const struct model_desc *m, int t);
/* LoRA (3.4): adapter parameters of one layer on one TP rank, every linear layer adapted, and
 * the number of adapted matrices per layer (7 Llama, 4 GPT-2). */
double model_lora_params_layer(const struct model_desc *m, int rank, int t);
int model_lora_matrices(const struct model_desc *m);

/* The device a strategy runs on: the CPU when s->device is cpu (even on a GPU node), else the
 * node's slowest GPU (hw_device_*). */
bool advisor_dev_is_cpu(const struct hardware *hw, const struct strategy *s);
double advisor_dev_capacity_bytes(const struct hardware *hw, const struct strategy *s);
double advisor_dev_peak_flops(const struct hardware *hw, const struct strategy *s,
                              enum hw_dtype dt);
double advisor_dev_mem_bw(const struct hardware *hw, const struct strategy *s);

/* Model constants no calibration replaces yet ([cal], strategy reference 3.6, 3.2, 6.4, 3.7);
 * memory.c and speed.c use them and estimate_emit prints them with source "default". */
#define EST_LOGIT_BYTES 4.0                        /* c_V: fp32 logits, gradient in place */
#define EST_PREFETCH_UNITS 1.0                     /* k_pf: ZeRO-3 units prefetched */
#define EST_DROPOUT 0.0                            /* delta: dropout off */
#define EST_M_SAT_GPU 2048.0                       /* tokens where GEMM eta_f saturates */
#define EST_M_SAT_CPU 64.0
/* A CPU process's baseline [cal], measured on a 2-core AVX2 VM (OpenBLAS 0.3.21, OpenMP):
 * 2.9 MiB peak RSS for `scalewise estimate`; 5.6 MiB once OpenBLAS and the OpenMP pool have
 * started; OpenBLAS's GEMM packing buffers then grow with the head's weight-gradient GEMM
 * (13 MiB at 64 tokens, 50 MiB at 256, 60 MiB from 1024, the same with 1 or 2 threads). A
 * GPT-2 124M `scalewise run` (bf16-mixed, 4 x 256 tokens) peaked at 76 MiB above the bytes the
 * executor accounts for (data shards and batch buffers included). 64 MiB is kept as the
 * default; the 12 MiB it misses was 0.4% of that run. */
#define EST_CPU_PROCESS_BYTES (64.0 * 1024 * 1024)
/* What the built-in executor's CUDA process holds on the GPU beyond its own counters: the CUDA
 * context, cuBLASLt, the plugin's code and the allocator's rounding. Measured 534 to 538 MiB on
 * an H200 (CUDA 13.0, driver 580; GPT-2 124M training at micro-batch 16 and 64, generation at
 * batch 1 and 32: report.yaml's device_used_bytes minus the counters' total), rounded up. */
#define EST_CUDA_EXEC_RUNTIME_BYTES (540.0 * 1024 * 1024)

/* What memory.c and speed.c both derive from a plan (est_geom_init, memory.c): per-rank
 * parameter counts of the first and last pipeline stage, bytes per parameter (3.1, 4.1). */
struct est_geom {
    struct model_counts c; /* V padded to 128*t */
    bool cpu, train, lora, quant, tied;
    int t, p, v, n_dp, m, b, s, L_first, L_last, kv_heads_rank, devices, ranks_per_node;
    struct layer_params layer;            /* one layer, one TP rank */
    double vocab_rank;                    /* V_pad*h/t: embedding (or head) on one rank */
    double embed_rank, head_rank, fnorm;  /* params per rank; head 0 when tied */
    double lora_layer;                    /* adapter params per layer per rank (0: full) */
    double bw, bm, bg, bo;                /* bytes per trainable param (3.1; adapters fp32) */
    double e_act;                         /* activation bytes per element */
    double e_mat, e_kept;                 /* frozen/inference bytes per param: matrices, rest */
    double e_kv;                          /* KV cache bytes per element */
    enum hw_dtype peak_dtype;             /* matmul dtype for the peak (6.3) */
};
void est_geom_init(struct est_geom *g, const struct model_desc *m, const struct hardware *hw,
                   const struct workload *w, const struct strategy *s);
/* Parameters of a pipeline stage on one rank (first: embedding; last: head and final norm;
 * with p == 1 both), and the part that is trained (full: all; LoRA: the adapters). */
double est_stage_params(const struct est_geom *g, bool first);
double est_stage_trainable(const struct est_geom *g, bool first);

/* advisor_estimate_memory, with the built-in executor's CUDA backend modelled for the GPU
 * plans it runs when `builtin_gpu` (advisor_estimate_builtin); false is the public function. */
int est_memory(const struct model_desc *m, const struct hardware *hw, const struct workload *w,
               const struct strategy *s, const struct advisor_calib *cal, bool builtin_gpu,
               struct estimate *out, struct sw_err *err);

/* Pure formulas, exposed for the tests of the worked examples. */
struct act_shape {
    double h, q, h_kv, f, a, s; /* per the full model; t divides inside */
    double e, e_n, dropout, k_f;
    int t;
    bool sp, flash, selective;
};
/* 3.5: bytes saved per token per layer on one TP rank (A_tok). */
double est_act_tok_bytes(const struct act_shape *x);
/* 7.1: ring all-reduce / reduce-scatter / all-gather time, bytes = the full buffer S. */
double est_allreduce_s(double bytes, int n, double bw, double eta, double lat_s);
double est_gather_s(double bytes, int n, double bw, double eta, double lat_s);
/* CPU processes of one node exchanging through shared memory (MPI's shared-memory transport;
 * speed.c's header has the reasoning). [cal] k_shm: bytes of node memory traffic per byte a
 * ring step moves, averaged over a reduce-scatter + all-gather pair: copy into the shared
 * segment (read + write, 2) and out of it (2), plus in the reduce-scatter half the sum (read
 * two inputs, write one, 3): (7 + 4) / 2 = 5.5. Checked against GPT-2 124M fp32 DDP on the
 * 2-core VM (tests/unit/test_speed.c): 0.52 s predicted, 0.53 s measured. */
#define EST_CPU_SHM_TRAFFIC 5.5
/* The ring link bandwidth (bytes/s, per direction, eta already in) each of `ranks_per_node`
 * processes sees when all of them run collectives at once: mem_bw / (k_shm * ranks). So an
 * all-reduce of S bytes on N ranks takes 2 (N-1) k_shm S / mem_bw. 0 when mem_bw is unknown. */
double est_cpu_shm_link_bytes_per_s(double mem_bw, int ranks_per_node);
/* 7.3: bubble time over ideal compute, (p-1)/(v*m). */
double est_bubble_ratio(int p, int m, int v);
/* 6.4: eta_f with the small-GEMM falloff eta_max*min(1, tokens/m_sat). */
double est_eta_flops(double eta_max, double tokens, double m_sat);
/* The matmul dtype of a plan (check.c): the precision's for training; inference computes in
 * its weight format, integer weights dequantising to the precision's 16-bit type. */
enum hw_dtype advisor_compute_dtype(const struct workload *w, const struct strategy *s);
/* Soft conflicts of section 12 (and precondition warnings) as reasons (check.c). */
void advisor_check_soft(const struct model_desc *m, const struct hardware *hw,
                        const struct workload *w, const struct strategy *s, struct estimate *e);

#endif

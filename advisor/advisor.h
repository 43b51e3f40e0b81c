/* advisor — the public surface of the advisor module: hardware (probe, profiles, saved
 * reports), models (profiles, Hugging Face config.json, parameter counts), the strategy and
 * workload a plan describes, the memory and speed model, plan search and ranking with reasons,
 * and plan YAML load/save/validate.
 *
 * Units: bytes (uint64_t or double for intermediate products), seconds, FLOP and FLOP/s, bytes
 * per second. Every name carries its unit. The formulas and rules are those of
 * docs/strategy-reference.md (a copy of the shared strategy reference).
 *
 * The advisor never touches a terminal and never runs kernels. Functions that can fail return
 * 0 or a negative SW_E* code and fill a caller-supplied struct sw_err. */
#ifndef SW_ADVISOR_H
#define SW_ADVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ======================================================================== hardware */

#define HW_MAX_GPUS 16
#define HW_NAME_MAX 96

/* Data types with a peak rate. */
enum hw_dtype {
    HW_DT_FP32,
    HW_DT_TF32,
    HW_DT_BF16,
    HW_DT_FP16,
    HW_DT_FP8,
    HW_DT_INT8,
    HW_DT_COUNT
};
const char *hw_dtype_name(enum hw_dtype d); /* "fp32", "tf32", "bf16", ... */

/* CPU instruction-set flags (bit mask). */
enum hw_isa {
    HW_ISA_SSE42 = 1u << 0,
    HW_ISA_AVX = 1u << 1,
    HW_ISA_AVX2 = 1u << 2,
    HW_ISA_FMA = 1u << 3,
    HW_ISA_F16C = 1u << 4,
    HW_ISA_AVX512F = 1u << 5,
    HW_ISA_AVX512_BF16 = 1u << 6,
    HW_ISA_AVX512_VNNI = 1u << 7,
    HW_ISA_AVX_VNNI = 1u << 8,
    HW_ISA_AMX_TILE = 1u << 9,
    HW_ISA_AMX_BF16 = 1u << 10,
    HW_ISA_AMX_INT8 = 1u << 11,
    HW_ISA_NEON = 1u << 12,
};

/* "Unknown is not zero": each probed field has a bit in `known`; views print "n/a" when clear. */
enum hw_cpu_field {
    HW_CPU_MODEL = 1u << 0,
    HW_CPU_TOPOLOGY = 1u << 1, /* sockets, cores, threads */
    HW_CPU_ISA = 1u << 2,
    HW_CPU_CACHES = 1u << 3,
    HW_CPU_NUMA = 1u << 4,
    HW_CPU_CLOCK = 1u << 5,
    HW_CPU_PEAK = 1u << 6,      /* table peak */
    HW_CPU_MEASURED = 1u << 7,  /* FMA loop */
    HW_CPU_TRIAD = 1u << 8,     /* memory bandwidth measured */
};

struct hw_cpu {
    unsigned known; /* enum hw_cpu_field bits */
    char model[HW_NAME_MAX];
    char vendor[16]; /* "GenuineIntel", "AuthenticAMD", ... */
    int family, model_id;
    int sockets, cores_per_socket, threads_per_core;
    int logical_cpus; /* online */
    int usable_cpus;  /* affinity mask and cgroup quota honoured */
    unsigned isa;     /* enum hw_isa bits */
    uint64_t l1d_bytes, l2_bytes, l3_bytes; /* per core (L1, L2), per socket (L3) */
    int numa_nodes;
    double clock_hz;                  /* effective clock (measured or reported) */
    double fp32_flop_per_cycle;       /* per core, from the micro-architecture table */
    double peak_fp32_flops_per_core;  /* table x clock */
    double peak_fp32_flops;           /* all usable physical cores */
    double peak_bf16_flops;           /* all usable physical cores (= fp32 without native bf16) */
    double measured_fp32_flops;       /* FMA loop, all usable cores */
    double measured_fp32_flops_1core; /* FMA loop, one thread */
    double triad_bytes_per_s;         /* measured, all threads */
};

enum hw_mem_field {
    HW_MEM_TOTAL = 1u << 0,
    HW_MEM_AVAILABLE = 1u << 1,
    HW_MEM_CGROUP = 1u << 2,
};

struct hw_memory {
    unsigned known;
    uint64_t total_bytes;        /* MemTotal */
    uint64_t available_bytes;    /* MemAvailable */
    uint64_t cgroup_limit_bytes; /* 0 when no limit */
    uint64_t usable_bytes;       /* min(available, cgroup limit - usage) */
};

enum hw_gpu_field {
    HW_GPU_NAME = 1u << 0,
    HW_GPU_MEM_TOTAL = 1u << 1,
    HW_GPU_MEM_FREE = 1u << 2,
    HW_GPU_CC = 1u << 3,
    HW_GPU_SMS = 1u << 4,
    HW_GPU_SM_CLOCK = 1u << 5,
    HW_GPU_MEM_CLOCK = 1u << 6,
    HW_GPU_MEM_BW = 1u << 7,
    HW_GPU_PCIE = 1u << 8,
    HW_GPU_NVLINK = 1u << 9,
    HW_GPU_PEAK = 1u << 10,
    HW_GPU_BUS_ID = 1u << 11,
    HW_GPU_POWER = 1u << 12,
    HW_GPU_TEMP = 1u << 13,
};

struct hw_gpu {
    unsigned known; /* enum hw_gpu_field bits */
    char name[HW_NAME_MAX];
    char bus_id[32];
    char uuid[64];
    int cc_major, cc_minor;
    int sm_count;
    int sm_clock_mhz;  /* max SM clock */
    int mem_clock_mhz; /* max memory clock */
    int bus_width_bits;
    uint64_t mem_total_bytes;
    uint64_t mem_free_bytes;
    uint64_t mem_nominal_bytes; /* data-sheet capacity, decimal GB (profiles); 0 = unknown */
    double mem_bw_bytes_per_s;
    int pcie_gen, pcie_width;
    int nvlinks;                 /* active NVLinks of this GPU */
    double nvlink_bytes_per_s;   /* per direction, all links together */
    bool geforce;                /* consumer part: half-rate fp32-accumulate tensor math */
    bool integrated;
    double peak_flops[HW_DT_COUNT]; /* dense; 0 = not supported */
    double power_limit_w;
    double temperature_c;
};

/* Pairwise GPU link classes, best first (strategy reference 9.3). */
enum hw_link {
    HW_LINK_UNKNOWN = 0,
    HW_LINK_SELF,
    HW_LINK_NVSWITCH,
    HW_LINK_NVLINK, /* "NV#": `link_nvlinks` links */
    HW_LINK_PIX,    /* one PCIe switch */
    HW_LINK_PXB,    /* several PCIe switches */
    HW_LINK_PHB,    /* through a host bridge */
    HW_LINK_NODE,   /* across host bridges in a NUMA node */
    HW_LINK_SYS,    /* across sockets */
};
const char *hw_link_name(enum hw_link l); /* "NVSwitch", "NV4", "PIX", ... (NV# uses "NV") */
bool hw_link_is_fast(enum hw_link l);     /* NVLink/NVSwitch */

enum hw_source { HW_SRC_PROBE, HW_SRC_PROFILE, HW_SRC_REPORT };

/* One node type (or the probed machine) plus the cluster shape. A profile, a saved report and
 * the probe all produce this struct; the advisor plans with it. */
struct hardware {
    enum hw_source source;
    char name[HW_NAME_MAX];        /* profile name, or "probed" */
    char description[160];
    struct hw_cpu cpu;
    struct hw_memory mem; /* host memory of one node */
    int n_gpus;           /* GPUs in one node (probe: found; profile: gpus_per_node) */
    struct hw_gpu gpus[HW_MAX_GPUS];
    enum hw_link link[HW_MAX_GPUS][HW_MAX_GPUS];
    int link_nvlinks[HW_MAX_GPUS][HW_MAX_GPUS];
    int nodes;                      /* >= 1 */
    double intra_bytes_per_s;       /* GPU-to-GPU per direction inside a node (slowest pair) */
    double inter_bytes_per_s;       /* per node NIC, per direction; 0 = single node */
    double pcie_bytes_per_s;        /* host<->GPU per direction (offload) */
    double host_mem_bytes_per_s;    /* host memory bandwidth (CPU optimizer step, decode) */
    double nvme_bytes_per_s;        /* 0 = none known */
    char gpu_status[160];  /* probe: "no NVIDIA GPU: driver library not found", or "" */
    bool nccl_available;
    char nccl_version[32];
    bool mpi_available;
    char mpi_version[64];
    char driver_version[32];
};

void hw_init(struct hardware *hw);

/* Probe this machine: CPU (cpuid, /proc, /sys, optional hwloc), memory (meminfo, cgroups), GPUs
 * (NVML and the CUDA driver API through dlopen), NCCL/MPI availability. `measure` runs the short
 * FMA loop and triad (about 0.3 s). No GPU or no driver is a normal result recorded in
 * hw->gpu_status. Environment overrides (for tests): SCALEWISE_PROCFS_ROOT,
 * SCALEWISE_SYSFS_ROOT, SCALEWISE_NVML_LIBRARY, SCALEWISE_CUDA_LIBRARY. */
int hw_probe(struct hardware *hw, bool measure, struct sw_err *err);

/* Peak dense tensor FLOP/s for a GPU from compute capability, SM count and clock
 * (strategy reference 9.2), with the GeForce halving; fills gpu->peak_flops. */
void hw_gpu_fill_peaks(struct hw_gpu *gpu);

/* Hardware YAML (profiles and saved probe reports share one format, docs/plan-format.md):
 * load validates types and ranges and reports file:line:col. save is atomic. */
int hw_load_file(const char *path, struct hardware *hw, struct sw_err *err);
int hw_load_string(const char *yaml, size_t len, const char *name_for_errors,
                   struct hardware *hw, struct sw_err *err);
int hw_save_file(const char *path, const struct hardware *hw, struct sw_err *err);
/* Emit the hardware as a tree (for probe --format yaml|json and for reports). */
void hw_emit(struct sw_emit *e, const char *key, const struct hardware *hw);

/* The device the advisor plans for: the slowest GPU of the node, or the CPU when n_gpus == 0.
 * Usable capacity is free GPU memory (probe) or total (profile), or host usable memory. */
bool hw_is_cpu_only(const struct hardware *hw);
uint64_t hw_device_capacity_bytes(const struct hardware *hw);
double hw_device_peak_flops(const struct hardware *hw, enum hw_dtype dt);
double hw_device_mem_bw(const struct hardware *hw);
/* Devices a plan can use: nodes x GPUs per node, or nodes for CPU-only hardware (nodes < 1 counts
 * as 1). Lowest compute capability of the node's GPUs as major*10+minor (80 for 8.0), 0 with no
 * GPUs. */
int hw_devices(const struct hardware *hw);
int hw_min_cc(const struct hardware *hw);
/* Resize a GPU node to g GPUs (1 <= g <= HW_MAX_GPUS, n_gpus > 0), as --gpus-per-node does: added
 * GPUs copy the first one, and their links the link class between the first two (unknown for a
 * one-GPU node). Never fails. */
void hw_set_gpus_per_node(struct hardware *hw, int g);

/* ======================================================================== model */

enum model_arch { MODEL_ARCH_GPT2, MODEL_ARCH_LLAMA };
const char *model_arch_name(enum model_arch a); /* "gpt2", "llama" */

struct model_desc {
    char name[HW_NAME_MAX];
    enum model_arch arch;
    int n_layers;
    int hidden;
    int n_heads;
    int n_kv_heads; /* = n_heads for MHA */
    int head_dim;   /* usually hidden / n_heads */
    int ffn;        /* MLP inner size */
    int vocab;
    int max_pos;        /* maximum sequence length (GPT-2: position table size) */
    bool tied_head;     /* GPT-2: true */
    bool bias;          /* GPT-2: biases on every linear layer; Llama-style: q/k/v biases (Qwen2) */
    bool rms_norm;      /* Llama: RMSNorm; GPT-2: LayerNorm */
    bool swiglu;        /* Llama: SwiGLU; GPT-2: GELU */
    int sliding_window; /* 0 = none */
    double rope_theta;
    double norm_eps;
    int stored_bytes_per_param; /* checkpoint dtype: 4 fp32, 2 bf16/fp16; 0 unknown */
};

/* Fill the architecture's defaults (tied head, biases, norm, activation, ffn if 0, head_dim,
 * kv heads if 0) for a description where only the sizes were given. */
void model_fill_defaults(struct model_desc *m);

/* Check sizes: positive, heads divide hidden (unless head_dim set), kv heads divide heads. */
int model_validate(const struct model_desc *m, struct sw_err *err);

/* Parameter counts (strategy reference section 2), exact. */
struct model_counts {
    int64_t vocab_padded;   /* V_pad: multiple of 128 */
    int64_t params_layer;   /* P_layer */
    int64_t params_embed;   /* token (+ position) embeddings */
    int64_t params_head;    /* untied head (0 when tied) */
    int64_t params_final_norm;
    int64_t params_total;   /* P (with V_pad) */
    int64_t params_matmul;  /* N_mm */
    int64_t params_max_unit; /* P_max = max(P_layer, V_pad*h) */
    int64_t params_split_layer; /* the part of P_layer that tensor parallelism divides */
};
/* `vocab_multiple` is the padding multiple (128, or 128*t with a vocabulary-split head);
 * pass 1 to count the unpadded vocabulary (what Hugging Face reports). */
void model_count(const struct model_desc *m, int vocab_multiple, struct model_counts *out);

/* Hugging Face config.json (GPT-2, Llama, Mistral, Qwen2 fields) into a model description. */
int model_load_hf_config(const char *path, struct model_desc *m, struct sw_err *err);
/* Model profile YAML. */
int model_load_file(const char *path, struct model_desc *m, struct sw_err *err);
int model_load_string(const char *yaml, size_t len, const char *name_for_errors,
                      struct model_desc *m, struct sw_err *err);
void model_emit(struct sw_emit *e, const char *key, const struct model_desc *m);

/* ======================================================================== profiles */

enum profile_kind { PROFILE_HARDWARE, PROFILE_MODEL, PROFILE_PLAN };

/* The directory profiles are read from: $SCALEWISE_PROFILES, else <executable dir>/profiles,
 * else the build-time SW_PROFILES_DIR. */
int profiles_dir(char *out, size_t n, struct sw_err *err);

/* Names (file stems) of the profiles of one kind, sorted. The caller frees with
 * profiles_free_names(). */
int profiles_list(enum profile_kind kind, char ***names, int *count, struct sw_err *err);
void profiles_free_names(char **names, int count);

/* Load a profile by name ("h100-sxm", "llama-3-8b"); an unknown name is SW_ENOENT with a
 * "did you mean". */
int profile_load_hardware(const char *name, struct hardware *hw, struct sw_err *err);
int profile_load_model(const char *name, struct model_desc *m, struct sw_err *err);

/* ======================================================================== strategy */

enum sw_task { TASK_TRAIN, TASK_INFER };
enum sw_device { DEVICE_CPU, DEVICE_CUDA };
enum sw_precision {
    PREC_FP32,       /* fp32 everything */
    PREC_TF32,       /* fp32 storage, tf32 matmuls */
    PREC_FP16_MIXED, /* fp16 compute, fp32 master and grads, loss scaling */
    PREC_BF16_MIXED, /* bf16 compute, fp32 master and grads (default on CC >= 8.0) */
    PREC_BF16,       /* pure bf16: no master copy, bf16 grads */
};
enum sw_optimizer { OPT_ADAMW, OPT_ADAMW8BIT, OPT_ADAFACTOR, OPT_SGD, OPT_SGD_MOMENTUM, OPT_LION };
enum sw_recompute { RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL };
enum sw_attention { ATTN_FLASH, ATTN_NAIVE };
/* Inference weight / KV cache formats. */
enum sw_wformat { WFMT_FP32, WFMT_FP16, WFMT_BF16, WFMT_INT8, WFMT_INT4 };

/* Names as the CLI flags and plan files spell them, and their parsers (SW_EINVAL with the
 * list of valid words). */
const char *task_name(enum sw_task t);
const char *device_name(enum sw_device d);
const char *precision_name(enum sw_precision p);
const char *optimizer_name(enum sw_optimizer o);
const char *recompute_name(enum sw_recompute r);
const char *attention_name(enum sw_attention a);
const char *wformat_name(enum sw_wformat w);
int task_parse(const char *s, enum sw_task *out, struct sw_err *err);
int device_parse(const char *s, enum sw_device *out, struct sw_err *err);
int precision_parse(const char *s, enum sw_precision *out, struct sw_err *err);
int optimizer_parse(const char *s, enum sw_optimizer *out, struct sw_err *err);
int recompute_parse(const char *s, enum sw_recompute *out, struct sw_err *err);
int attention_parse(const char *s, enum sw_attention *out, struct sw_err *err);
int wformat_parse(const char *s, enum sw_wformat *out, struct sw_err *err);

/* Every knob the search varies and the executor obeys. */
struct strategy {
    enum sw_device device;
    enum sw_precision precision;
    enum sw_optimizer optimizer;
    int micro_batch; /* b: sequences per device per micro-step */
    int grad_accum;  /* m: micro-steps per optimizer step (pipeline micro-batches with pp) */
    enum sw_recompute recompute;
    enum sw_attention attention;
    int dp, tp, pp;     /* data, tensor, pipeline parallel degrees */
    int pp_interleave;  /* v: virtual stages per GPU (1 = plain 1F1B) */
    int zero;           /* 0..3 */
    bool sequence_parallel;
    bool offload_optimizer;
    bool offload_params;
    int lora_rank;            /* 0 = full training */
    enum sw_wformat weights;  /* inference weights, or the frozen base under LoRA (QLoRA if int) */
    enum sw_wformat kv_dtype; /* inference KV cache */
    int threads;              /* CPU threads per process (0 = all usable cores) */
};
void strategy_init(struct strategy *s); /* single device, bf16-mixed, adamw, b=1, m=1, flash */

/* The workload: what is to be trained or served. */
struct workload {
    enum sw_task task;
    int seq;              /* training sequence length s */
    int64_t global_batch; /* B in sequences (train); 0 = b*m*dp */
    int batch;            /* inference batch */
    int prompt_len;       /* s_p */
    int gen_len;          /* s_n */
    int64_t tokens_total; /* tokens to train on (for time-to-train); 0 = unknown */
};
void workload_init(struct workload *w);

/* ======================================================================== estimate */

/* [cal] constants of the strategy reference, with whether each was calibrated. */
struct advisor_calib {
    double eta_flops_train;   /* 0.5 */
    double eta_flops_prefill; /* 0.7 */
    double eta_mem;           /* 0.9 */
    double eta_mem_decode;    /* 0.9 (= eta_mem until calibrated): decode's weight and cache
                               * reads, a 1-token GEMM's rate rather than a stream's */
    double eta_comm_intra;    /* 0.65 */
    double eta_comm_inter;    /* 0.9 */
    double comm_latency_s;    /* 8e-6 per collective */
    double runtime_overhead_bytes; /* 1 GiB per GPU process; CPU: measured process baseline */
    double frag_margin;       /* 0.05 of device memory */
    double pin_factor;        /* k_pin = 1.5 */
    double host_reserve_frac; /* 0.10 of host memory kept free */
    double launch_overhead_s; /* per decode step, 0 until calibrated */
    /* One backend call of the built-in executor, issued back to back (kernel launch and host
     * work; 0 until calibrated): a 1-token matmul, and any other kernel. The speed model counts
     * the calls of a decode step (and of a prefill) and charges them (speed.c). */
    double call_matmul_s, call_kernel_s;
    /* > 0: the executor's flash attention, forward + backward, in FLOP/s counted as the speed
     * model counts attention (the full s x s scores: 4·b·s²·q forward, twice that backward);
     * it then times a flash plan's attention apart from the matmuls' peak·eta_f (0 until
     * calibrated). */
    double attn_flops_per_s;
    double achieved_flops;    /* > 0 overrides peak*eta for compute (--achieved-tflops) */
    double m_sat_tokens;      /* > 0: the small-GEMM falloff's M_sat (6.4); 0: the built-in
                               * 64 tokens on a CPU, 2048 on a GPU */
    bool calibrated;          /* true when loaded from `scalewise calibrate` output */
};
void advisor_calib_default(struct advisor_calib *c);

/* Calibration (`scalewise calibrate`; advisor/calibrate.c, docs/calibrate.md): what was
 * measured on one machine and the [cal] efficiencies derived from it. The advisor runs no
 * kernels: cli/cmd_calibrate.c measures and fills the measured fields, calib_derive_* compute
 * the derived ones (pure). Rates in FLOP/s and bytes/s. */
#define CALIB_FORMAT_VERSION 1
#define CALIB_MAX_SHAPES 8
struct calib_gemm {     /* one timed shape: tokens x C x OC (GPU: tokens x tokens x tokens) */
    int tokens;
    double flops_per_s; /* fastest repetition */
    double spread;      /* (slowest - fastest) / fastest time over the repetitions */
    int reps;
};
struct calib_cpu {
    bool present;
    enum hw_dtype dtype;                     /* matmul dtype derived from: bf16 if native, fp32 */
    int gemm_c, gemm_oc;                     /* inner and output sizes of the GEMM shapes */
    double peak_fp32_flops, peak_bf16_flops; /* the probe's peaks (hw_device_peak_flops) */
    double triad_bytes_per_s;                /* the probe's triad: the bandwidth assumed */
    int n_fp32, n_bf16;                      /* forward GEMMs, ascending tokens */
    struct calib_gemm fp32[CALIB_MAX_SHAPES], bf16[CALIB_MAX_SHAPES];
    struct calib_gemm train;                 /* forward + backward, dtype, 6·N·C·OC FLOP */
    double optim_state_bytes, optim_bytes_per_s, optim_spread; /* AdamW step, 28 B/param */
    double decode_weight_bytes, decode_bytes_per_s, decode_spread; /* 1-token GEMM */
    double call_matmul_s, call_kernel_s;     /* one tiny call, back to back: applied as is */
    struct calib_gemm attn;                  /* flash attention fwd + bwd; tokens = its seq */
    double m_sat_tokens;                     /* derived; the speed model's CPU M_sat when applied */
    double eta_flops_train, eta_flops_prefill, eta_mem, eta_mem_decode; /* derived */
};
struct calib_gpu {
    bool present;
    char name[HW_NAME_MAX];
    double peak_bf16_flops, mem_bw_bytes_per_s; /* the probe's */
    struct calib_gemm gemm;                     /* the plugin's bf16 GEMM */
    double d2d_bytes, d2d_bytes_per_s, d2d_spread; /* memcpy, read + write counted */
    double decode_weight_bytes, decode_bytes_per_s, decode_spread; /* 1-token bf16 GEMM */
    double call_matmul_s, call_kernel_s; /* one tiny call, back to back: applied as is */
    struct calib_gemm attn;              /* flash attention fwd + bwd (bf16); tokens = its seq */
    struct calib_gemm train;             /* the training path's GEMMs at tokens x 768 x 3072 */
    double eta_flops_train, eta_flops_prefill, eta_mem, eta_mem_decode; /* derived */
};
struct calib_file {
    int version;
    char host[64], date[32], cpu_model[HW_NAME_MAX], cpu_vendor[16];
    int cpu_family, cpu_model_id, cores, threads;
    bool quick;
    struct calib_cpu cpu;
    struct calib_gpu gpu;
};
void calib_init(struct calib_file *c);
/* Derived fields from the measured ones (rules in calibrate.c's header); SW_EINVAL naming the
 * missing measurement. calib_fit_m_sat: tokens where the falloff of `g` (ascending) ends. */
int calib_derive_cpu(struct calib_cpu *c, struct sw_err *err);
int calib_derive_gpu(struct calib_gpu *g, struct sw_err *err);
double calib_fit_m_sat(const struct calib_gemm *g, int n);
/* The file as a tree (also --format yaml|json); save is atomic; load reports file:line:col. */
void calib_emit(struct sw_emit *e, const char *key, const struct calib_file *c);
int calib_save_file(const char *path, const struct calib_file *c, struct sw_err *err);
int calib_load_string(const char *yaml, size_t len, const char *name_for_errors,
                      struct calib_file *c, struct sw_err *err);
int calib_load_file(const char *path, struct calib_file *c, struct sw_err *err);
/* Set cal's efficiencies from the section matching hw (CPU-only: cpu; GPUs: gpu) and mark it
 * calibrated; false (cal untouched) when the file has no such section. */
bool calib_apply(const struct calib_file *c, const struct hardware *hw, struct advisor_calib *cal);
/* True when hw's CPU (CPU-only) or GPU differs from the one measured; `why` says how. */
bool calib_other_machine(const struct calib_file *c, const struct hardware *hw, char *why,
                         size_t n);

/* Per-device memory split, as the executor measures it (same names). */
struct mem_split {
    double weights;
    double gradients;
    double optimizer;
    double activations; /* includes logits */
    double kv_cache;
    double workspace;   /* temporaries, ZeRO-3 gather working set, buckets */
    double overhead;    /* runtime/context + fragmentation margin */
    double total;
};

#define ADVISOR_MAX_REASONS 40
#define ADVISOR_REASON_MAX 240

/* Everything an estimate reports. All byte figures per device unless named host_. */
struct estimate {
    bool valid;
    int64_t params_total;
    int64_t params_trainable;
    struct mem_split dev;
    double logits_bytes;        /* part of dev.activations, shown separately */
    double host_total_bytes;    /* host RAM per node: offload + loading + (CPU) everything */
    double host_offload_bytes;
    double capacity_bytes;      /* usable device memory the fit is tested against */
    double host_capacity_bytes;
    bool fits;
    bool host_fits;
    int gpus;                   /* devices used: dp*tp*pp */
    /* speed (training) */
    double flops_per_token;     /* model FLOPs (MFU convention: full attention count) */
    double flops_per_step;      /* model FLOPs per optimizer step, all devices */
    double hw_flops_per_step;   /* with recompute (HFU) */
    double step_time_s;
    double compute_s, comm_exposed_s, bubble_s, optimizer_s, offload_s;
    double tokens_per_s;
    double mfu, hfu;
    double peak_flops_used;     /* per device, the dtype's dense peak */
    enum hw_dtype peak_dtype;
    double time_to_train_s;     /* for workload.tokens_total, 0 if unknown */
    double gpu_hours;
    /* inference */
    double ttft_s;
    double decode_s_per_token;
    double infer_tokens_per_s;
    /* links behind communication times */
    char link_class[32];
    /* the [cal] constants this estimate used (estimate_emit prints them with their source) */
    struct advisor_calib calib;
    /* reasons: rules that fired, warnings, what drove the numbers */
    int n_reasons;
    char reasons[ADVISOR_MAX_REASONS][ADVISOR_REASON_MAX];
};
void estimate_init(struct estimate *e);
/* Append a reason (printf-style); silently drops beyond ADVISOR_MAX_REASONS. */
void estimate_add_reason(struct estimate *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Check that a strategy can run this model on this hardware (section 10 preconditions): TP
 * divides heads, kv heads, ffn; pp <= layers; dp*tp*pp <= devices; bf16 needs CC >= 8.0 or a
 * CPU; offload_params needs ZeRO-3; quantised weights only for inference or a LoRA base; ...
 * Returns SW_EINVAL with the rule in err->msg. */
int advisor_check(const struct model_desc *m, const struct hardware *hw,
                  const struct workload *w, const struct strategy *s, struct sw_err *err);

/* Memory of one device (section 3/4; with pp the first stage), host memory and the fit test.
 * Never allocates. Fills the memory fields of `out` (and reasons for what drove them). */
int advisor_estimate_memory(const struct model_desc *m, const struct hardware *hw,
                            const struct workload *w, const struct strategy *s,
                            const struct advisor_calib *cal, struct estimate *out,
                            struct sw_err *err);

/* ZeRO shards of the built-in CPU executor (docs/distributed.md): rank r updates elements
 * [cut(r), cut(r+1)) of the flat trainable region of n elements; slot = ceil(n / world) (the
 * region padded to a multiple of world) and, for element-wise optimizers, cut(r) =
 * min(n, r·slot). 8-bit AdamW quantises each run of one weight-decay setting in blocks of
 * ADVISOR_ADAM8_BLOCK from the run's start and keeps fp32 state for runs under
 * ADVISOR_ADAM8_MIN_N, so the cut of target t = r·slot inside the run [run_off, run_off+run_n)
 * moves to the nearest block boundary that leaves at least ADVISOR_ADAM8_MIN_N elements on each
 * side (only when slot >= 4·ADVISOR_ADAM8_MIN_N), else to the nearer edge of the run: every
 * piece then updates exactly as the whole run would. Monotone in t. Pure. */
#define ADVISOR_ADAM8_BLOCK 2048u
#define ADVISOR_ADAM8_MIN_N 4096u
uint64_t advisor_zero_cut_adam8(uint64_t t, uint64_t run_off, uint64_t run_n, uint64_t slot);

/* FLOPs, step time, tokens/s, MFU, and for inference TTFT and per-token latency (sections
 * 6-8). Fills the speed fields of `out`. */
int advisor_estimate_speed(const struct model_desc *m, const struct hardware *hw,
                           const struct workload *w, const struct strategy *s,
                           const struct advisor_calib *cal, struct estimate *out,
                           struct sw_err *err);

/* advisor_check + memory + speed: the whole estimate. */
int advisor_estimate(const struct model_desc *m, const struct hardware *hw,
                     const struct workload *w, const struct strategy *s,
                     const struct advisor_calib *cal, struct estimate *out, struct sw_err *err);
/* As advisor_estimate, but a GPU plan the built-in executor runs (strategy.device cuda, tp = pp
 * = 1, as on the CPU) gets the memory of its CUDA backend, byte for byte, instead of the
 * generic GPU formulas (docs/estimate.md); for report.yaml beside the executor's counters.
 * Every other plan, CPU plans included, is estimated exactly as advisor_estimate does. */
int advisor_estimate_builtin(const struct model_desc *m, const struct hardware *hw,
                             const struct workload *w, const struct strategy *s,
                             const struct advisor_calib *cal, struct estimate *out,
                             struct sw_err *err);

/* The estimate as a tree with the contract's keys (params_total, per_device_bytes{...},
 * host_bytes{total,...}, fits, flops_per_step, step_time_s, tokens_per_s, mfu, ttft_s,
 * decode_s_per_token, reasons, ...). */
void estimate_emit(struct sw_emit *e, const char *key, const struct estimate *est);

/* ======================================================================== search */

struct search_opts {
    int top_k;                    /* plans to return (default 5) */
    double headroom;              /* fraction of capacity left free (default 0.10) */
    int64_t global_batch_tokens;  /* target tokens per optimizer step (train); 0 = choose */
    bool allow_lora;              /* consider LoRA/QLoRA when full training cannot fit */
    int max_devices;              /* cap on devices (0 = all of nodes x gpus) */
};
void search_opts_init(struct search_opts *o);

struct search_plan {
    struct strategy strategy;
    struct workload workload; /* global batch as chosen */
    struct estimate estimate;
    double score; /* higher is better: tokens/s (train), or per the inference objective */
};

/* Result of a search: the ranked plans that fit, or when none fits the closest ones and what
 * would make them fit. The caller owns `plans` (search_result_release). */
struct search_result {
    int n_plans;
    struct search_plan *plans;
    bool any_fits;
    int64_t candidates_evaluated;
    double elapsed_s;
    int n_reasons; /* search-level reasons: why strategies were ruled in or out */
    char reasons[ADVISOR_MAX_REASONS][ADVISOR_REASON_MAX];
};
void search_result_init(struct search_result *r);
void search_result_release(struct search_result *r);

/* Search the strategy space (precision, micro-batch, accumulation, recompute, optimizer, ZeRO,
 * DP/TP/PP, interleave, sequence parallel, offload, LoRA, attention; for inference weights, KV
 * dtype, TP) for this model, hardware and workload; rank by throughput (train) or latency
 * (infer). Each plan's estimate carries the reasons for its choices. */
int advisor_search(const struct model_desc *m, const struct hardware *hw,
                   const struct workload *w, const struct search_opts *o,
                   const struct advisor_calib *cal, struct search_result *out,
                   struct sw_err *err);

/* ======================================================================== plans */

#define PLAN_VERSION 1
#define PLAN_PATH_MAX 512

enum lr_schedule { LR_CONSTANT, LR_COSINE, LR_LINEAR };
const char *lr_schedule_name(enum lr_schedule s);
int lr_schedule_parse(const char *s, enum lr_schedule *out, struct sw_err *err);

struct plan_data {
    char path[PLAN_PATH_MAX];      /* text file or token shard directory */
    char tokenizer[16];            /* "byte" or "gpt2" */
    char vocab_path[PLAN_PATH_MAX];  /* gpt2 BPE: encoder.json / vocab.json */
    char merges_path[PLAN_PATH_MAX]; /* gpt2 BPE: merges.txt */
    double val_fraction;
};

struct plan_train {
    int64_t steps;
    double lr;
    double min_lr;
    enum lr_schedule schedule;
    int64_t warmup_steps;
    double weight_decay;
    double grad_clip; /* 0 = off */
    double beta1, beta2, eps;
    uint64_t seed;
    int64_t eval_every;       /* 0 = never */
    int64_t eval_batches;
    int64_t checkpoint_every; /* 0 = only at the end */
    char out_dir[PLAN_PATH_MAX];
    char resume[PLAN_PATH_MAX]; /* checkpoint to resume from, "" = none */
    char lora_targets[64];      /* e.g. "qkv,o,mlp" */
    int64_t log_every;
    /* fp16-mixed loss scaling (docs/run.md, "fp16-mixed and loss scaling"): loss_scale 0 is dynamic
     * (start at loss_scale_init, halve on a step with non-finite gradients, which is skipped,
     * double after loss_scale_window finite steps in a row), > 0 a static scale. */
    double loss_scale;
    double loss_scale_init;
    int64_t loss_scale_window;
    bool loss_scale_given; /* the file set one of the three (only fp16-mixed takes them) */
};

struct plan_infer {
    char checkpoint[PLAN_PATH_MAX];
    char prompt[1024];
    double temperature;
    int top_k;
    double top_p;
    uint64_t seed;
};

/* How the hardware was named: a profile, "probe", or a report file. */
struct plan_hardware_ref {
    char profile[HW_NAME_MAX]; /* "" when probe or file */
    char file[PLAN_PATH_MAX];
    bool probe;
    int nodes;
    int gpus_per_node;
};

/* How the model was named: a profile, a config.json, or inline sizes only. */
struct plan_model_ref {
    char profile[HW_NAME_MAX];
    char config_json[PLAN_PATH_MAX];
};

/* How to start the processes of a plan with dp·tp·pp > 1 or nodes > 1 (docs/plan-format.md,
 * "launch"): one command per launcher, "" where it does not apply (torchrun for CPU plans,
 * --nproc across nodes). plan_save fills it for a plan with an estimate that has none; a loaded
 * one is kept as read, so host names edited in the file survive a save. */
#define PLAN_LAUNCH_CMD_MAX 1024
struct plan_launch {
    bool present;
    int processes, nodes, per_node;
    char mpirun[PLAN_LAUNCH_CMD_MAX], srun[PLAN_LAUNCH_CMD_MAX], torchrun[PLAN_LAUNCH_CMD_MAX],
        nproc[PLAN_LAUNCH_CMD_MAX];
};
/* The launch commands for strategy `s` on `hw`, each running `scalewise run <plan_file>`;
 * present = false for one process on one node. Never fails; host names are placeholders. */
void plan_launch_build(const struct strategy *s, const struct hardware *hw, const char *plan_file,
                       struct plan_launch *out);

struct plan {
    int version;
    struct plan_hardware_ref hw_ref;
    struct hardware hardware; /* resolved */
    struct plan_model_ref model_ref;
    struct model_desc model;  /* resolved; inline keys override the profile */
    struct workload workload;
    struct plan_data data;
    struct plan_train train;
    struct plan_infer infer;
    struct strategy strategy;
    struct estimate estimate; /* as written by the advisor; ignored on input except to compare */
    bool has_estimate;
    char source_path[PLAN_PATH_MAX]; /* where it was loaded from, "" if built in memory */
    char name[HW_NAME_MAX];          /* optional `name:` ("" = none); default out_dir runs/<name> */
    struct plan_launch launch;       /* `launch:` as loaded or written ("present" = has one) */
};

void plan_init(struct plan *p);
/* Load, resolve (profiles, config.json) and validate. Errors carry file:line:column, unknown
 * keys get "did you mean". */
int plan_load(const char *path, struct plan *p, struct sw_err *err);
int plan_load_string(const char *yaml, size_t len, const char *name_for_errors, struct plan *p,
                     struct sw_err *err);
/* Types, ranges and combinations (advisor_check) of an in-memory plan. */
int plan_validate(const struct plan *p, struct sw_err *err);
/* Serialise (deterministic; save -> load -> save is byte-identical) and save atomically. */
int plan_to_yaml(const struct plan *p, struct sw_buf *out, struct sw_err *err);
int plan_save(const char *path, const struct plan *p, struct sw_err *err);

#endif

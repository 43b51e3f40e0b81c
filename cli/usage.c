/* Usage text of every command, for `scalewise help <command>` and `<command> --help`. One
 * block of text per command, with the shared model/hardware/workload/strategy flags of args.c
 * written once and included where a command takes them. The dispatcher in scalewise.c prints
 * the command overview; this file prints the per-command detail. */
#include "cli/cli_int.h"

#include <string.h>

static const char model_flags[] =
    "model (one of):\n"
    "  --model NAME|FILE.yaml     a model profile (scalewise profiles --kind model) or a model\n"
    "                             file in the profile format\n"
    "  --model-config FILE        a Hugging Face config.json\n"
    "  --layers L --hidden H --heads A [--kv-heads G] [--ffn F] [--vocab V]\n"
    "             [--arch gpt2|llama]   sizes (also override a profile's values)\n";

static const char hw_flags[] =
    "hardware:\n"
    "  --gpu PROFILE              a hardware profile (scalewise profiles --kind hardware)\n"
    "  --hardware probe|FILE      this machine (the default) or a saved probe report/profile\n"
    "  --nodes N                  nodes of that hardware (default: the profile's, else 1)\n"
    "  --gpus-per-node G          GPUs per node (overrides the profile's count)\n";

static const char workload_flags[] =
    "workload:\n"
    "  --task train|infer         default train\n"
    "  --seq S                    training sequence length (default 1024)\n"
    "  --batch B --prompt-len N --gen-len N   inference batch and lengths\n"
    "  --achieved-tflops X        measured TFLOP/s per device (replaces peak x efficiency)\n"
    "  --calibration FILE         efficiencies measured by 'scalewise calibrate --save FILE'\n";

static const char strategy_flags[] =
    "strategy (defaults: what the device supports, one micro-batch, no savers):\n"
    "  --device cpu|cuda          CPU-only hardware implies cpu\n"
    "  --precision fp32|tf32|fp16-mixed|bf16-mixed|bf16\n"
    "  --optimizer adamw|adamw8bit|adafactor|sgd|sgd-momentum|lion\n"
    "  --micro-batch B            sequences per device per micro-step\n"
    "  --global-batch B | --grad-accum K   global batch in sequences (must be a multiple of\n"
    "                             micro-batch x dp) or micro-steps per optimizer step\n"
    "  --dp D --tp T --pp P       parallel degrees (dp defaults to devices / (tp x pp))\n"
    "  --pp-interleave V          virtual pipeline stages per device\n"
    "  --zero 0|1|2|3             ZeRO stage\n"
    "  --sequence-parallel        with --tp\n"
    "  --recompute none|selective|full\n"
    "  --attention flash|naive\n"
    "  --offload-optimizer        optimizer state and step on the host\n"
    "  --offload-params           16-bit weights on the host too (needs --zero 3)\n"
    "  --lora-rank R              LoRA adapters of rank R (0 = full training)\n"
    "  --weights fp16|bf16|int8|int4   inference weights, or the frozen LoRA base\n"
    "  --kv-dtype fp16|bf16|int8  inference KV cache\n"
    "  --threads N                CPU threads per process (0 = all usable cores)\n";

static const char output_flags[] = "output:\n"
                                   "  --format text|yaml|json    default text\n";

static void usage_estimate(void)
{
    printf("usage: scalewise estimate <model> [hardware] [workload] [strategy] [--format F]\n\n"
           "Memory per device (weights, gradients, optimizer, activations, KV cache, workspace,\n"
           "overhead) against capacity, FLOPs, step time, tokens/s and MFU, or TTFT and\n"
           "per-token latency for inference, with the reasons behind them. A setup that does\n"
           "not fit is reported (fits: false, exit 0); an invalid combination exits 2.\n\n");
    fputs(model_flags, stdout);
    fputs(hw_flags, stdout);
    fputs(workload_flags, stdout);
    fputs(strategy_flags, stdout);
    fputs(output_flags, stdout);
    printf("\nexample:\n  scalewise estimate --model llama-3-8b --gpu h100-sxm --task train "
           "--seq 4096 --micro-batch 1 --zero 3\n");
}

static void usage_plan(void)
{
    printf("usage: scalewise plan <model> [hardware] [workload] [options]\n\n"
           "Searches precision, micro-batch, accumulation, recompute, optimizer, ZeRO, DP/TP/PP,\n"
           "interleaving, sequence parallel, offload and LoRA (inference: weight and KV formats,\n"
           "TP, batch), keeps what fits with headroom and ranks by tokens/s (train) or\n"
           "per-token latency (infer). When nothing fits it shows the closest candidates and\n"
           "what would make them fit.\n\n");
    fputs(model_flags, stdout);
    fputs(hw_flags, stdout);
    printf("workload:\n"
           "  --task train|infer         default train\n"
           "  --seq S                    training sequence length (default 1024)\n"
           "  --global-batch B           global batch in sequences\n"
           "  --global-batch-tokens N    global batch in tokens (default: about 0.5M tokens on\n"
           "                             64+ devices, else one micro-batch per rank)\n"
           "  --tokens TOTAL             tokens to train on: adds time to train and GPU-hours\n"
           "  --batch B --prompt-len N --gen-len N   inference\n"
           "  --achieved-tflops X        measured TFLOP/s per device\n"
           "  --calibration FILE         efficiencies measured by 'scalewise calibrate'\n"
           "search:\n"
           "  --top K                    plans to show (default 5)\n"
           "  --headroom F               fraction of device memory left free (default 0.10)\n"
           "  --allow-lora               consider LoRA/QLoRA when full training cannot fit\n"
           "  -o FILE                    write the best plan (scalewise explain FILE reads it)\n");
    fputs(output_flags, stdout);
    printf("\nexample:\n  scalewise plan --model llama-3.1-70b --gpu h100-sxm --nodes 2 "
           "--gpus-per-node 8 --task train -o plan.yaml\n");
}

static void usage_explain(void)
{
    printf("usage: scalewise explain PLAN.yaml [--format text|yaml|json] "
           "[--achieved-tflops X]\n"
           "                         [--calibration FILE]\n\n"
           "Loads a plan, estimates it again with the current advisor, prints the memory and\n"
           "time breakdown with the reasons, and when the plan carries an estimate shows the\n"
           "stored and the current figures side by side.\n");
}

static void usage_probe(void)
{
    printf("usage: scalewise probe [--format text|yaml|json] [--no-measure] [--save FILE]\n"
           "                       [--hardware FILE]\n\n"
           "Inspects this machine: CPU (model, cores, ISA, caches, NUMA, peak FLOP/s), memory,\n"
           "GPUs through NVML and the CUDA driver (loaded at run time), links between GPUs,\n"
           "NCCL and MPI. No GPU is a normal result.\n\n"
           "  --format text|yaml|json    default text\n"
           "  --no-measure               skip the short FMA loop and memory-bandwidth test\n"
           "  --save FILE                write the report as a hardware file (--hardware FILE)\n"
           "  --hardware FILE            show a saved report or profile instead of probing\n");
}

static void usage_calibrate(void)
{
    printf("usage: scalewise calibrate [--save FILE] [--format text|yaml|json] [--quick]\n"
           "                           [--threads N]\n\n"
           "Times this machine with the executor's own kernels: the fp32 GEMM (and the bf16\n"
           "one where the CPU has native bf16) at 16..1024 tokens x 768 x 3072, forward and\n"
           "backward, a 1-token GEMM over weights larger than the cache, the cost of one tiny\n"
           "call, flash attention, and with a GPU and the CUDA plugin a bf16 GEMM, a device\n"
           "copy, a 1-token GEMM, the same calls, attention and the training GEMMs. Derives\n"
           "the speed model's eta_flops_train, eta_flops_prefill, eta_mem and eta_mem_decode\n"
           "against the probe's peak and triad; the per-call costs are charged to decode as\n"
           "measured. Guide: docs/calibrate.md.\n\n"
           "  --save FILE                write the calibration (estimate/plan/explain\n"
           "                             --calibration FILE read it)\n"
           "  --format text|yaml|json    default text\n"
           "  --quick                    fewer shapes and repetitions (about 1-2 s)\n"
           "  --threads N                OpenMP threads for the kernels (default: all cores)\n");
}

static void usage_profiles(void)
{
    printf("usage: scalewise profiles [--kind hardware|model|all] [--format text|yaml|json]\n\n"
           "Lists the bundled hardware and model profiles (from $SCALEWISE_PROFILES, the\n"
           "profiles/ folder beside the binary, or the build's profiles/).\n\n"
           "  --kind hardware|model|all  default all\n"
           "  --format text|yaml|json    default text\n");
}

static void usage_tui(void)
{
    printf("usage: scalewise tui [--no-color] [--plan FILE]\n\n"
           "The terminal interface (also what `scalewise` alone opens on a terminal): the\n"
           "probed machine or a hardware profile and cluster shape, the workload, the ranked\n"
           "plans with stacked memory bars, the what-if editor that re-estimates on each key,\n"
           "the reasons, export to plan YAML, and runs in the background with a live loss\n"
           "chart (stop checkpoints, resume continues, a closed TUI can re-attach).\n\n"
           "  --no-color    attributes only (also when NO_COLOR is set)\n"
           "  --plan FILE   open a plan file in the editor\n\n"
           "Press ? inside for the keys. Guide: docs/tui.md.\n");
}

void cli_print_usage(const char *cmd)
{
    if (!cmd) {
        printf("usage: scalewise <command> [options]\n\n"
               "commands: probe, profiles, estimate, plan, explain, data, run, generate, "
               "calibrate, tui, help\n"
               "Run 'scalewise help <command>' for the options of a command.\n");
        return;
    }
    if (!strcmp(cmd, "estimate"))
        usage_estimate();
    else if (!strcmp(cmd, "plan"))
        usage_plan();
    else if (!strcmp(cmd, "explain"))
        usage_explain();
    else if (!strcmp(cmd, "probe"))
        usage_probe();
    else if (!strcmp(cmd, "profiles"))
        usage_profiles();
    else if (!strcmp(cmd, "calibrate"))
        usage_calibrate();
    else if (!strcmp(cmd, "tui"))
        usage_tui();
    else if (!strcmp(cmd, "generate")) {
        char help[] = "--help";
        char *argv[] = {help, NULL};
        (void)cli_generate(1, argv);
    } else if (!strcmp(cmd, "run")) {
        char help[] = "--help";
        char *argv[] = {help, NULL};
        (void)cli_run(1, argv);
    } else if (!strcmp(cmd, "data")) {
        char help[] = "--help";
        char *argv[] = {help, NULL};
        (void)cli_data(1, argv);
    } else
        printf("scalewise %s: no help text; run 'scalewise help' for the commands\n", cmd);
}

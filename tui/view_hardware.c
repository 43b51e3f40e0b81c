/* The Hardware screen: the hardware source and cluster shape on the left; on the right the
 * machine the advisor plans for: CPU (topology, ISA, peak and measured FLOP/s), memory, GPUs
 * with memory and peaks, the GPU link matrix, NCCL/MPI, and the flag or plan field that does
 * the same without the TUI. Unknown fields print "n/a" ("unknown is not zero"). */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>
#include <string.h>

static const double GIB = 1024.0 * 1024.0 * 1024.0;

static void isa_text(unsigned isa, char *out, size_t n)
{
    static const char *const names[] = {"SSE4.2",  "AVX",      "AVX2",       "FMA",
                                        "F16C",    "AVX-512F", "AVX512-BF16", "AVX512-VNNI",
                                        "AVX-VNNI", "AMX-TILE", "AMX-BF16",   "AMX-INT8",
                                        "NEON"};
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((isa & (1u << i)) && used < n)
            used += (size_t)snprintf(out + used, n - used, "%s%s", used ? " " : "", names[i]);
}

void view_hardware_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    tv_pane_title(win, &r->left, "Hardware", s->focus == 0);
    tv_field_list(win, &r->left, s, TUI_SCR_HARDWARE);
    const struct tui_rect *p = &r->right;
    tv_pane_title(win, p, "Machine", s->focus == 1);
    struct tv_column col;
    tv_column_init(&col, win, p, s->scroll[TUI_SCR_HARDWARE]);
    char buf[256], a[48];
    if (!s->hw_ok) {
        tv_line(&col, ROLE_OVER_BUDGET, "! hardware unavailable: %s", s->hw_error);
        return;
    }
    const struct hardware *hw = &s->hw;
    const struct hw_cpu *c = &hw->cpu;
    tv_line(&col, ROLE_TITLE, "%s", hw->description[0] ? hw->description : hw->name);
    tv_line(&col, ROLE_NORMAL, "CPU      %s", (c->known & HW_CPU_MODEL) ? c->model : "n/a");
    if (c->known & HW_CPU_TOPOLOGY)
        tv_line(&col, ROLE_NORMAL, "cores    %d socket x %d cores x %d threads, %d usable",
                c->sockets, c->cores_per_socket, c->threads_per_core, c->usable_cpus);
    else
        tv_line(&col, ROLE_NORMAL, "cores    n/a");
    isa_text(c->isa, buf, sizeof(buf));
    tv_line(&col, ROLE_NORMAL, "ISA      %s", (c->known & HW_CPU_ISA) ? buf : "n/a");
    if (c->known & HW_CPU_PEAK)
        tv_line(&col, ROLE_NORMAL, "peak     %.1f GFLOP/s fp32, %.1f GFLOP/s bf16",
                c->peak_fp32_flops / 1e9, c->peak_bf16_flops / 1e9);
    else
        tv_line(&col, ROLE_NORMAL, "peak     n/a");
    if (c->known & HW_CPU_MEASURED)
        tv_line(&col, ROLE_NORMAL, "measured %.1f GFLOP/s fp32 (FMA loop), triad %.1f GB/s",
                c->measured_fp32_flops / 1e9, c->triad_bytes_per_s / 1e9);
    else
        tv_line(&col, ROLE_DIM, "measured n/a (press m to measure)");
    const struct hw_memory *m = &hw->mem;
    if (m->known & HW_MEM_TOTAL)
        tv_line(&col, ROLE_NORMAL, "memory   %.2f GiB total, %.2f GiB usable", m->total_bytes / GIB,
                m->usable_bytes / GIB);
    else
        tv_line(&col, ROLE_NORMAL, "memory   n/a");
    tv_line(&col, ROLE_NORMAL, "shape    %d node%s x %d GPU%s = %d device%s", hw->nodes,
            hw->nodes == 1 ? "" : "s", hw->n_gpus, hw->n_gpus == 1 ? "" : "s",
            hw->n_gpus ? hw->nodes * hw->n_gpus : hw->nodes,
            (hw->n_gpus ? hw->nodes * hw->n_gpus : hw->nodes) == 1 ? "" : "s");
    if (hw->nodes > 1)
        tv_line(&col, ROLE_NORMAL, "network  %.1f GB/s per node", hw->inter_bytes_per_s / 1e9);
    if (hw->n_gpus == 0) {
        tv_line(&col, ROLE_DIM, "GPUs     none%s%s", hw->gpu_status[0] ? ": " : "", hw->gpu_status);
    } else {
        tv_line(&col, ROLE_HEADING, "GPU  name                         memory   CC   bf16 TFLOP/s");
        for (int i = 0; i < hw->n_gpus; i++) {
            const struct hw_gpu *g = &hw->gpus[i];
            char mem[32] = "n/a";
            if (g->known & HW_GPU_MEM_TOTAL)
                snprintf(mem, sizeof(mem), "%.1f GiB", g->mem_total_bytes / GIB);
            tv_line(&col, ROLE_NORMAL, "%-4d %-28.28s %9s  %d.%d  %7.1f", i, g->name, mem,
                    g->cc_major, g->cc_minor, g->peak_flops[HW_DT_BF16] / 1e12);
        }
        if (hw->n_gpus > 1) {
            tv_line(&col, ROLE_HEADING, "links (GPU x GPU)");
            for (int i = 0; i < hw->n_gpus; i++) {
                int used = snprintf(buf, sizeof(buf), "%-4d", i);
                for (int j = 0; j < hw->n_gpus && used < (int)sizeof(buf); j++)
                    used += snprintf(buf + used, sizeof(buf) - (size_t)used, " %-5.5s",
                                     i == j ? "X" : hw_link_name(hw->link[i][j]));
                tv_line(&col, ROLE_NORMAL, "%s", buf);
            }
        }
        tv_line(&col, ROLE_NORMAL, "links    %.1f GB/s GPU-GPU, %.1f GB/s host-GPU",
                hw->intra_bytes_per_s / 1e9, hw->pcie_bytes_per_s / 1e9);
    }
    tv_line(&col, ROLE_NORMAL, "NCCL %s   MPI %s", hw->nccl_available ? hw->nccl_version : "no",
            hw->mpi_available ? "yes" : "no");
    col.y++;
    tv_line(&col, ROLE_DIM, "headless: %s",
            tui_field_headless(TUI_SCR_HARDWARE, s->sel[TUI_SCR_HARDWARE]));
    (void)a;
}

#endif /* SW_HAVE_NCURSES */

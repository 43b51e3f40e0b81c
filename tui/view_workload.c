/* The Workload screen: the model (profile with search, or a config.json), task, lengths,
 * batch, tokens, dataset and run settings on the left; on the right the model's shape and
 * parameter count (the advisor's model_count), which fields the task uses, and the flag or plan
 * field behind the selected row. */
#ifdef SW_HAVE_NCURSES

#include "tui/tui_int.h"

#include <stdio.h>

void view_workload_draw(WINDOW *win, const struct tui_rects *r, const struct tui_state *s)
{
    tv_pane_title(win, &r->left, "Workload", s->focus == 0);
    tv_field_list(win, &r->left, s, TUI_SCR_WORKLOAD);
    const struct tui_rect *p = &r->right;
    tv_pane_title(win, p, "Model", s->focus == 1);
    struct tv_column col;
    tv_column_init(&col, win, p, s->scroll[TUI_SCR_WORKLOAD]);
    char a[32], b[32];
    if (!s->model_ok) {
        if (s->model_error[0])
            tv_line(&col, ROLE_OVER_BUDGET, "! %s", s->model_error);
        tv_line(&col, ROLE_DIM, "no model yet: Enter on 'model' lists the profiles");
        tv_line(&col, ROLE_DIM, "(/ searches), or give a config.json path");
    } else {
        const struct model_desc *m = &s->model;
        struct model_counts mc;
        model_count(m, 1, &mc);
        tv_line(&col, ROLE_TITLE, "%s (%s)", m->name, model_arch_name(m->arch));
        tv_line(&col, ROLE_NORMAL, "parameters  %s (%s per layer)",
                tv_fmt_count((double)mc.params_total, a, sizeof(a)),
                tv_fmt_count((double)mc.params_layer, b, sizeof(b)));
        tv_line(&col, ROLE_NORMAL, "layers %d  hidden %d  heads %d/%d kv  head %d", m->n_layers,
                m->hidden, m->n_heads, m->n_kv_heads, m->head_dim);
        tv_line(&col, ROLE_NORMAL, "ffn %d  vocab %d  positions %d", m->ffn, m->vocab, m->max_pos);
        tv_line(&col, ROLE_NORMAL, "%s, %s, %s%s", m->rms_norm ? "RMSNorm" : "LayerNorm",
                m->swiglu ? "SwiGLU" : "GELU", m->tied_head ? "tied head" : "untied head",
                m->bias ? ", biases" : "");
    }
    col.y++;
    if (s->task == TUI_TASK_INFER)
        tv_line(&col, ROLE_DIM, "infer: batch, prompt and generate lengths are used");
    else
        tv_line(&col, ROLE_DIM, "%s: sequence, global batch, tokens, dataset, steps are used",
                s->task == TUI_TASK_FINETUNE ? "fine-tune (LoRA adapters)" : "train");
    tv_line(&col, ROLE_DIM, "headless: %s",
            tui_field_headless(TUI_SCR_WORKLOAD, s->sel[TUI_SCR_WORKLOAD]));
}

#endif /* SW_HAVE_NCURSES */

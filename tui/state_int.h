/* state_int.h — internals shared by the two files of the TUI's state machine: state.c (the
 * dispatch, tui_state_apply, and the resolution of the plan from the screens) and
 * state_fields.c (the field and knob tables, their steps, setters and the Explain what-ifs).
 * Nothing outside tui/ includes it. It is separate from tui_int.h because that header brings in
 * ncurses for the views, and the state machine stays pure C with no ncurses (style guide,
 * section 9). */
#ifndef SW_TUI_STATE_INT_H
#define SW_TUI_STATE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "tui/tui.h"

/* ---- state.c */

/* s->hw from s->hw_base with the chosen nodes and GPUs per node (as --nodes and
 * --gpus-per-node do in the CLI). */
void ts_apply_shape(struct tui_state *s);
/* Re-estimate the plan in the editor (its workload from the screens) and mark the panes dirty;
 * clears the what-ifs. */
void ts_reestimate(struct tui_state *s);
/* Something the search depends on changed: mark the plans stale and the plan unsaved, rebuild
 * the plan from the screens (a fresh default strategy when fresh_strategy) and re-estimate. */
void ts_inputs_changed(struct tui_state *s, bool fresh_strategy);

/* ---- state_fields.c */

/* Fill s->whatif with the estimate of each one-knob move of the editor's strategy. */
void ts_compute_whatifs(struct tui_state *s);
/* Whether row `row` of screen `scr` takes a number. */
bool ts_is_numeric_field(enum tui_screen scr, int row);
/* Accepted range of a numeric field, inclusive. */
void ts_field_range(enum tui_screen scr, int row, int64_t *lo, int64_t *hi);
/* Set a numeric field to v (already in its range) and re-estimate. Returns 0. */
int ts_set_number(struct tui_state *s, enum tui_screen scr, int row, int64_t v);
/* Whether the selected field of the current screen can move by dir (+1 right, -1 left). */
bool ts_field_can_move(const struct tui_state *s, int dir);
/* Move the selected field of the current screen by one step in direction dir. */
void ts_move_field(struct tui_state *s, int dir);

#endif

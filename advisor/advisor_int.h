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

#endif

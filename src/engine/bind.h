/* Binding a run's inputs to an engine's graph, the same for every backend: every input's dtype,
 * rank and data are checked against its declared type, the graph's symbols take their values from
 * the input dims (each symbol from the first dim that is exactly it, within its range), and every
 * other dim must equal its expression of them. */
#ifndef TC_ENGINE_BIND_H
#define TC_ENGINE_BIND_H

#include "ir/graph.h"

/* symvals receives a value per symbol-table atom (symbols no input dim names get their opt
 * value); bound is scratch of one bool per atom. Messages name the input and the dim. */
tc_status tc_bind_inputs(const tc_graph *g, const tc_tensor *inputs, int64_t *symvals, bool *bound, tc_error *err);

/* The concrete dims of value v for this run (an input's own, else its expressions evaluated) and
 * its element count; TC_ERR_SHAPE naming the value when a dim evaluates negative. */
tc_status tc_value_dims_now(const tc_graph *g, const tc_value *v, const tc_tensor *inputs, const int64_t *symvals,
                            int64_t *dims, int64_t *numel, tc_error *err);

#endif

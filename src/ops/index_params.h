/* Arguments of the fill and arange ops read the same way by every backend. */
#ifndef TC_OPS_INDEX_PARAMS_H
#define TC_OPS_INDEX_PARAMS_H

#include "ops/op.h"

/* A Scalar argument as one element of dtype dt (elem must hold 8 bytes). */
void tc_scalar_to_elem(const tc_arg *s, tc_dtype dt, void *elem);

/* Argument pos of arange (a Scalar; pos < 0: absent, dflt), with symbolic ints evaluated for this
 * run: its value, whether it is integral, and then its int64 value. */
double tc_arange_arg(const tc_graph *g, const tc_node *n, const int64_t *symvals, int pos, double dflt, bool *is_int,
                     int64_t *iv);

#endif

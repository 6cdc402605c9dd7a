/*
 * lb_lanes.h: the lane table behind keyed locks (lowbit.seriallane).
 *
 * A lane is the lock of one key (a byte string): an owner id (0 = free), a
 * FIFO of waiter ids, the time it was last used and a generation counter
 * that changes on every change of owner. Releasing hands the lane straight
 * to the first waiter, so a lane with waiters is never free and no waiter
 * can be overtaken.
 *
 * The table does no I/O and knows no clock: the caller passes `now` (any
 * monotonic unit, the same as `idle` in lb_lanes_sweep) and wakes the ids
 * the calls return. Ids are the caller's task ids: 1 .. INT64_MAX.
 *
 * Cost: one hash lookup per call (open addressing, linear probing, a seeded
 * hash so chosen keys cannot pile up in one cluster). Memory is allocated
 * only when the table grows: lanes and waiter nodes come from pools with
 * free lists. Not thread-safe: one table per thread (per luv loop).
 */
#ifndef LOWBIT_LB_LANES_H
#define LOWBIT_LB_LANES_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum {
  /* lb_lanes_acquire */
  LB_LANES_QUEUED = 0,   /* id waits in the lane's FIFO */
  LB_LANES_ACQUIRED = 1, /* id owns the lane now */
  /* lb_lanes_cancel */
  LB_LANES_CANCELLED = 0, /* id was removed from the FIFO */
  LB_LANES_OWNED = 1,     /* id had already been handed the lane: release it */
  /* lb_lanes_sweep phases */
  LB_LANES_SWEEP_NOW = 0, /* remove lanes idle for `idle` now (one pass) */
  LB_LANES_MARK = 1,      /* first phase: mark idle lanes */
  LB_LANES_SWEEP = 2      /* second phase: remove marked lanes still idle */
};

typedef struct lb_lanes lb_lanes;

/* A new empty table, or NULL when out of memory. */
lb_lanes *lb_lanes_new(void);

/* Frees the table, its lanes, keys and waiter nodes. NULL is a no-op. */
void lb_lanes_free(lb_lanes *t);

/*
 * id asks for the lane of key[0..len) (created on first use).
 * Returns LB_LANES_ACQUIRED (1): id owns the lane; LB_LANES_QUEUED (0): the
 * lane is busy, id waits at the end of its FIFO (it becomes the owner in a
 * later lb_lanes_release, which returns it). Errors:
 *   LB_EINVAL    id is 0 or above INT64_MAX, or key is NULL with len > 0
 *   LB_ESTATE    id already owns this lane (lanes are not reentrant)
 *   LB_ETOOLARGE len > UINT32_MAX
 *   LB_ENOMEM    out of memory (nothing changed)
 * An id must not wait twice on the same key (not checked: O(queue)).
 */
int lb_lanes_acquire(lb_lanes *t, const char *key, size_t len, uint64_t id,
                     double now);

/*
 * id, the owner, releases the lane of key. If ids wait, the first one becomes
 * the owner at once and is returned (> 0): the caller wakes it. Returns 0
 * when the lane is now free. Errors (negative): LB_ESTATE when id does not
 * own the lane or the key has no lane; LB_EINVAL for a NULL key with len > 0.
 * The lane's last-used time becomes now.
 */
int64_t lb_lanes_release(lb_lanes *t, const char *key, size_t len,
                         uint64_t id, double now);

/*
 * id gives up waiting (its context was cancelled). Returns
 * LB_LANES_CANCELLED (0) when it was removed from the FIFO, or
 * LB_LANES_OWNED (1) when a release had already handed it the lane (the
 * caller must release it, which passes it on). LB_ESTATE when id neither
 * waits on nor owns the lane (or the key has no lane); LB_EINVAL for a NULL
 * key with len > 0. O(length of the FIFO).
 */
int lb_lanes_cancel(lb_lanes *t, const char *key, size_t len, uint64_t id);

/* The owner of key's lane, or 0 when it is free or has no lane. */
uint64_t lb_lanes_owner(const lb_lanes *t, const char *key, size_t len);

/* Number of ids waiting on key's lane (0 when it has no lane). */
size_t lb_lanes_waiting(const lb_lanes *t, const char *key, size_t len);

/*
 * Idle cleanup in two phases, so a lane that gets busy between them is
 * kept (the seed's "identify, then re-validate" cleanup):
 *   LB_LANES_MARK   marks every lane that is idle (no owner, no waiters)
 *                   and unused for at least `idle` (now - last used >=
 *                   idle); unmarks all others. Returns the number marked.
 *   LB_LANES_SWEEP  removes each marked lane that is still idle and was not
 *                   acquired since the mark (same generation); clears all
 *                   marks. Returns the number removed. now/idle unused.
 *   LB_LANES_SWEEP_NOW  both at once: removes lanes idle for `idle` now.
 * Any other phase returns 0 and changes nothing. O(lanes ever live at once).
 * The table shrinks when it gets sparse; when no lane is left its pools
 * are released too.
 */
size_t lb_lanes_sweep(lb_lanes *t, double now, double idle, int phase);

/* Number of lanes in the table. */
size_t lb_lanes_count(const lb_lanes *t);

#endif

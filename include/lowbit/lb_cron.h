/*
 * lb_cron.h: 5-field cron expressions and their next fire time, in UTC or
 * in a time zone read from TZif bytes (conformance/backstage.md section 4).
 *
 * Grammar (Vixie/cronie field rules): minute 0-59, hour 0-23, day of month
 * 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT (0 and 7 are
 * Sunday); names are 3 letters, case-insensitive. A field is a list of
 * items `*`, `*\/s`, `a`, `a-b`, `a-b/s`, `a/s` (= a-max/s), s >= 1, a <= b.
 * Descriptors @yearly @annually @monthly @weekly @daily @midnight @hourly;
 * @reboot and @every are errors. Day rule: when the day-of-month or the
 * day-of-week field begins with `*`, a day matches when both fields match;
 * otherwise when either matches. An expression whose day is decided by the
 * day of month alone and whose months never have such a day ("0 0 30 2 *")
 * is rejected at parse.
 *
 * lb_cron_next gives the smallest minute-aligned instant strictly after t,
 * searching at most LB_CRON_HORIZON_DAYS ahead (8 years and more). With a
 * zone, an entry whose minute and hour fields both do not begin with `*` is
 * "fixed": it fires, for each matching local wall time W, at the first
 * instant whose local wall clock is >= W (a time skipped by a DST jump fires
 * at the jump; a repeated time fires once). Other entries fire at every
 * instant whose local wall clock matches.
 *
 * Nothing here does I/O: the caller reads a TZif file (RFC 8536, e.g. from
 * /usr/share/zoneinfo) and passes its bytes to lb_tz_new.
 */
#ifndef LOWBIT_LB_CRON_H
#define LOWBIT_LB_CRON_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum {
  LB_CRON_HORIZON_DAYS = 8 * 366 + 2,
  /* lb_cron.flags */
  LB_CRON_DOM_STAR = 1, /* day-of-month field begins with `*` */
  LB_CRON_DOW_STAR = 2, /* day-of-week field begins with `*` */
  LB_CRON_FIXED = 4     /* neither minute nor hour begins with `*` */
};

/*
 * A parsed expression: one bit per allowed value. Plain data: it may be
 * copied, compared and shared between threads. err_field and err_pos say
 * where the last failed lb_cron_parse stopped.
 */
typedef struct lb_cron {
  uint64_t minute; /* bits 0..59 */
  uint32_t hour;   /* bits 0..23 */
  uint32_t dom;    /* bits 1..31 */
  uint32_t month;  /* bits 1..12 */
  uint32_t dow;    /* bits 0..6 (7 is folded into 0) */
  uint32_t flags;  /* LB_CRON_* */
  int32_t err_field; /* 1..5 = the field at fault, 0 = the whole expression */
  int32_t err_pos;   /* byte offset of the item at fault in the input */
} lb_cron;

/*
 * Parses expr[0..len) into c (c need not be initialised). Returns 0, or:
 *   LB_ECRONFIELDS  not exactly 5 fields (or an unknown/unsupported
 *                   descriptor such as @reboot and @every)
 *   LB_ECRONSYNTAX  an item that is not in the grammar (empty item, `?`,
 *                   `L`, `W`, `#`, `H`, an unknown name, a bad step)
 *   LB_ECRONRANGE   a value outside its field's range, or a > b in a-b
 *   LB_ECRONNEVER   the day is decided by day of month alone and none of
 *                   the months has such a day
 *   LB_EINVAL       expr is NULL with len > 0, or c is NULL
 * (an expression longer than 4096 bytes is LB_ECRONSYNTAX). On error
 * c->err_field and c->err_pos are set and the masks are zero, so
 * lb_cron_next refuses c.
 */
int lb_cron_parse(lb_cron *c, const char *expr, size_t len);

/* A time zone from TZif data; opaque, read-only after lb_tz_new (may be
 * shared between threads). */
typedef struct lb_tz lb_tz;

/*
 * Parses TZif bytes (versions 1 to 4; with version 2+ the 64-bit block and
 * the POSIX TZ footer, which gives the rule after the last transition). The
 * bytes are used during the call only. Returns the zone or NULL; *err (when
 * err is not NULL) is then LB_ETZIF (malformed or unsupported data, e.g.
 * leap-second "right/" files), LB_EINVAL (data NULL) or LB_ENOMEM.
 */
lb_tz *lb_tz_new(const uint8_t *data, size_t len, int *err);

/* Frees a zone; NULL is ignored. */
void lb_tz_free(lb_tz *z);

/*
 * UTC offset in seconds (local = utc + offset) in effect at Unix time t.
 * z NULL means UTC (0).
 */
int32_t lb_tz_offset(const lb_tz *z, int64_t t);

/*
 * The next fire time of c strictly after Unix time t (seconds), in zone z
 * (NULL = UTC), written to *out. Returns 0, LB_ECRONNONE when nothing fires
 * within LB_CRON_HORIZON_DAYS, or LB_EINVAL when c or out is NULL, c is not
 * a parsed expression (an empty field, bits outside a field's range), or t
 * is outside years 1..9998.
 */
int lb_cron_next(const lb_cron *c, const lb_tz *z, int64_t t, int64_t *out);

#endif

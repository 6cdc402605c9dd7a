/*
 * lb_sse.h: Server-Sent Events, sans-I/O.
 *
 * - Encoder: one event or one comment, written into a caller buffer (with a
 *   sizing helper) or appended to an lb_buf. The wire form is
 *   `field: value` lines ended by LF, then a blank line.
 * - Parser: the WHATWG "event stream interpretation" algorithm (HTML
 *   Living Standard, 9.2.6), incremental: the same events come out whether
 *   the stream arrives at once or one byte at a time.
 *
 * Conformance notes: shared/conformance/sse.md.
 */
#ifndef LOWBIT_LB_SSE_H
#define LOWBIT_LB_SSE_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum {
  /* Default for lb_sse_parser.max_event: bytes one event may hold while it
   * is being built (line + data + type + id + extensions). */
  LB_SSE_DEFAULT_MAX_EVENT = 1048576,
  /* Bytes an extension costs against max_event on top of its name and
   * value (its record), so a stream of empty fields is bounded too. */
  LB_SSE_EXT_OVERHEAD = 32
};

/* A (name, value) pair: an extension field. Views, not NUL-terminated. */
typedef struct lb_sse_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
} lb_sse_field;

/* ------------------------------------------------------------------ */
/* Encoder                                                              */
/* ------------------------------------------------------------------ */

/*
 * One event to write. Lines are written in this order: event, id, retry,
 * extensions, data, then the blank line that dispatches it.
 *   event  NULL or empty: no `event:` line. Must not contain CR or LF.
 *   id     NULL: no `id:` line; non-NULL and empty: `id:` (the receiver
 *          resets its last event id). Must not contain CR, LF or NUL.
 *   retry  < 0: no `retry:` line; else the reconnection time in ms.
 *   data   NULL: no `data:` line. Otherwise each line of data (split at
 *          CRLF, LF or lone CR) becomes one `data:` line; "" gives `data:`
 *          (the receiver dispatches an event with empty data).
 *   ext    n_ext extension fields. A name must be non-empty, must not
 *          contain CR, LF or ':' and must not be event/data/id/retry; a
 *          value must not contain CR or LF.
 */
typedef struct lb_sse_event {
  const char *event;
  size_t event_len;
  const char *id;
  size_t id_len;
  const char *data;
  size_t data_len;
  int64_t retry;
  const lb_sse_field *ext;
  size_t n_ext;
} lb_sse_event;

/* Exact number of bytes lb_sse_encode writes for ev when ev is valid
 * (scans data for line breaks). SIZE_MAX if the size does not fit a
 * size_t. For an invalid event the value is meaningless (encode rejects). */
size_t lb_sse_event_max_len(const lb_sse_event *ev);

/* Validates ev and writes it into out[0..cap). Returns the bytes written;
 * LB_EINVAL when a field breaks the rules above (out is not touched);
 * LB_ENOSPACE when cap < lb_sse_event_max_len(ev) (out's contents are then
 * unspecified: the event is written in one pass). */
ptrdiff_t lb_sse_encode(const lb_sse_event *ev, uint8_t *out, size_t cap);

/* Same, appended to b. Returns the bytes appended, LB_EINVAL or LB_ENOMEM
 * (b unchanged on error). */
ptrdiff_t lb_sse_encode_buf(const lb_sse_event *ev, lb_buf *b);

/* Exact size of lb_sse_encode_comment's output for text[0..len): one
 * `: line` per line of text (an empty line gives `:`), then a blank line.
 * SIZE_MAX on overflow. */
size_t lb_sse_comment_max_len(const char *text, size_t len);

/* Writes a comment (a heartbeat when text is empty: ":\n\n"). text may be
 * NULL when len is 0. Returns the bytes written, LB_ENOSPACE (out's
 * contents unspecified) or LB_EINVAL (text NULL with len > 0). */
ptrdiff_t lb_sse_encode_comment(const char *text, size_t len, uint8_t *out,
                                size_t cap);

/* Same, appended to b. Returns the bytes appended, LB_ENOMEM or LB_EINVAL
 * (b unchanged on error). */
ptrdiff_t lb_sse_encode_comment_buf(const char *text, size_t len, lb_buf *b);

/* ------------------------------------------------------------------ */
/* Parser                                                               */
/* ------------------------------------------------------------------ */

/*
 * Parser state, allocated by the caller. A zero-filled struct is a valid
 * parser with the default limit (lb_sse_parser_init zero-fills it too).
 * The parser owns its buffers: release them with lb_sse_parser_free.
 *
 * After lb_sse_feed returns with `ready` set to 1, an event was dispatched
 * and these fields describe it (views valid until the next call of feed,
 * finish, reset or free on this parser):
 *   type/type_len      event type; "message" when no `event:` line
 *   data/data_len      data, one trailing LF removed
 *   id/id_len          the stream's last event id (persists across events)
 *   event_retry        the `retry:` value seen in this event's block, or -1
 *   ext/n_ext          extension (unknown) fields of this block, in order
 *                      (a name seen twice appears twice)
 * These are valid after any successful feed/finish, event or not:
 *   id/id_len          last event id (set at every blank line, even one
 *                      that dispatched nothing), "" at first
 *   has_retry, retry   1 and the latest valid reconnection time (ms) once
 *                      a valid `retry:` line was seen in the stream
 * Views of length 0 point to a static "" (never NULL).
 */
typedef struct lb_sse_parser {
  /* setting: max bytes per event, 0 = LB_SSE_DEFAULT_MAX_EVENT */
  size_t max_event;

  /* results */
  int32_t ready;
  int32_t has_retry;
  int64_t retry;
  int64_t event_retry;
  const char *type;
  size_t type_len;
  const char *data;
  size_t data_len;
  const char *id;
  size_t id_len;
  const lb_sse_field *ext;
  size_t n_ext;

  /* internal state: do not touch */
  int32_t err;          /* sticky error code, 0 if none */
  uint32_t flags;       /* LB__SSE_F_* in lb_sse.c */
  uint32_t u8_need;     /* continuation bytes the pending sequence needs */
  uint32_t u8_seen;     /* continuation bytes seen so far */
  uint8_t u8_lo, u8_hi; /* allowed range of the next continuation byte */
  uint8_t u8_pend[4];   /* bytes of the pending sequence */
  uint8_t pad_[2];
  int64_t block_retry;  /* retry of the block being built (flag in flags) */
  lb_buf line;          /* the line being read (decoded UTF-8) */
  lb_buf data_buf;      /* data buffer */
  lb_buf type_buf;      /* event type buffer */
  lb_buf id_buf;        /* last event id buffer */
  lb_buf last_id;       /* last event id string (set at blank lines) */
  lb_buf ext_bytes;     /* names and values of extension fields */
  lb_buf ext_recs;      /* per extension: 4 size_t (offsets and lengths) */
  lb_buf ext_views;     /* lb_sse_field array handed out at dispatch */
} lb_sse_parser;

/* Zero-fills p (a valid parser with the default limit). */
void lb_sse_parser_init(lb_sse_parser *p);

/* Releases the parser's buffers; p is zero-filled afterwards (the
 * max_event setting is kept). */
void lb_sse_parser_free(lb_sse_parser *p);

/* Starts a new stream on the same parser, as after a reconnection: the
 * partial line and event, the UTF-8 and BOM state and any error are
 * dropped; the last event id (until the next blank line sets it, as the
 * spec says) and the reconnection time are kept. */
void lb_sse_parser_reset(lb_sse_parser *p);

/*
 * Consumes input until an event is dispatched or the input ends. Returns
 * the bytes consumed (<= n); p->ready is 1 when it stopped because an event
 * is ready (then call feed again with the rest of the input), else 0 and
 * all n bytes were consumed. Errors (sticky: later calls return the same
 * code until reset):
 *   LB_ETOOLARGE  the event being built exceeds max_event
 *   LB_ENOMEM     a buffer could not grow
 *   LB_ESTATE     called after lb_sse_finish (without reset)
 * in may be NULL when n is 0.
 */
ptrdiff_t lb_sse_feed(lb_sse_parser *p, const uint8_t *in, size_t n);

/* End of stream: the incomplete line and block (data after the last blank
 * line) are discarded, as the spec says; ready is 0. Returns 0, or the
 * sticky error code. Later feeds return LB_ESTATE until reset. */
ptrdiff_t lb_sse_finish(lb_sse_parser *p);

#endif

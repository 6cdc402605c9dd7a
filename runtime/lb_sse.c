/* lb_sse.c: Server-Sent Events encoder and WHATWG event-stream parser.
 *
 * Parser references are to the HTML Living Standard, 9.2.6 "Interpreting an
 * event stream", and to the Encoding Standard's "UTF-8 decode" (the stream
 * is decoded with replacement, one leading BOM stripped).
 */
#include "lowbit/lb_sse.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Encoder                                                              */
/* ------------------------------------------------------------------ */

/* A writer that either counts (out == NULL) or copies into out[0..cap).
 * Counting saturates: once the size does not fit a size_t, ovf is set and
 * the result is SIZE_MAX, so no caller can allocate a wrapped-around size.
 * Copying stops at cap (ovf set): the encoders write in one pass and only
 * measure first when the room turned out too small. */
typedef struct lb__sse_w {
  uint8_t *out;
  size_t pos;
  size_t cap;
  int ovf;
} lb__sse_w;

static void lb__sse_put(lb__sse_w *w, const void *s, size_t n) {
  if (n > w->cap - w->pos) { w->ovf = 1; w->pos = w->cap; return; }
  if (w->out && n) memcpy(w->out + w->pos, s, n);
  w->pos += n;
}

/* `name: value\n`, or `name:\n` for an empty value. The space matters: the
 * reader drops one leading space, so a value that itself starts with a
 * space survives the round trip. */
static void lb__sse_line(lb__sse_w *w, const char *name, size_t nlen,
                         const char *v, size_t vlen) {
  lb__sse_put(w, name, nlen);
  if (vlen) {
    lb__sse_put(w, ": ", 2);
    lb__sse_put(w, v, vlen);
  } else {
    lb__sse_put(w, ":", 1);
  }
  lb__sse_put(w, "\n", 1);
}

/* First CR or LF in s[0..n), or NULL. memchr is vectorised by the C
 * library; the CR search stops at the first LF, so each byte is looked at
 * about twice at most. */
static const char *lb__sse_brk(const char *s, size_t n) {
  if (n < 32) { /* a call costs more than a short loop */
    for (size_t i = 0; i < n; i++)
      if (s[i] == '\n' || s[i] == '\r') return s + i;
    return NULL;
  }
  const char *lf = memchr(s, '\n', n);
  const char *cr = memchr(s, '\r', lf ? (size_t)(lf - s) : n);
  return cr ? cr : lf;
}

/* Writes each line of text (split at CRLF, LF or lone CR, the same breaks
 * the reader knows) as a `name: line` line. */
static void lb__sse_lines(lb__sse_w *w, const char *name, size_t nlen,
                          const char *text, size_t len) {
  if (text == NULL) text = "";
  const char *end = text + len;
  for (;;) {
    const char *b = lb__sse_brk(text, (size_t)(end - text));
    if (b == NULL) break;
    lb__sse_line(w, name, nlen, text, (size_t)(b - text));
    if (*b == '\r' && b + 1 < end && b[1] == '\n') b++;
    text = b + 1;
  }
  lb__sse_line(w, name, nlen, text, (size_t)(end - text));
}

static int lb__sse_has(const char *s, size_t n, int nul, int colon) {
  if (n == 0) return 0;
  if (lb__sse_brk(s, n)) return 1;
  for (size_t i = 0; i < n && (nul || colon); i++)
    if ((nul && s[i] == '\0') || (colon && s[i] == ':')) return 1;
  return 0;
}

static int lb__sse_is(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n == l && memcmp(s, lit, l) == 0;
}

static int lb__sse_validate(const lb_sse_event *ev) {
  if (ev->event_len && (ev->event == NULL ||
                        lb__sse_has(ev->event, ev->event_len, 0, 0)))
    return LB_EINVAL;
  if (ev->id_len && (ev->id == NULL || lb__sse_has(ev->id, ev->id_len, 1, 0)))
    return LB_EINVAL;
  if (ev->data_len && ev->data == NULL) return LB_EINVAL;
  if (ev->n_ext && ev->ext == NULL) return LB_EINVAL;
  for (size_t i = 0; i < ev->n_ext; i++) {
    const lb_sse_field *f = &ev->ext[i];
    /* An empty name would start the line with ':' (a comment); a reserved
     * name would be read back as that field, not as an extension. */
    if (f->name_len == 0 || f->name == NULL) return LB_EINVAL;
    if (f->value_len && f->value == NULL) return LB_EINVAL;
    if (lb__sse_has(f->name, f->name_len, 0, 1)) return LB_EINVAL;
    if (lb__sse_has(f->value, f->value_len, 0, 0)) return LB_EINVAL;
    if (lb__sse_is(f->name, f->name_len, "event") ||
        lb__sse_is(f->name, f->name_len, "data") ||
        lb__sse_is(f->name, f->name_len, "id") ||
        lb__sse_is(f->name, f->name_len, "retry"))
      return LB_EINVAL;
  }
  return 0;
}

static void lb__sse_write_event(lb__sse_w *w, const lb_sse_event *ev) {
  if (ev->event && ev->event_len)
    lb__sse_line(w, "event", 5, ev->event, ev->event_len);
  if (ev->id) lb__sse_line(w, "id", 2, ev->id, ev->id_len);
  if (ev->retry >= 0) {
    char tmp[24];
    size_t k = sizeof tmp;
    uint64_t v = (uint64_t)ev->retry;
    do { tmp[--k] = (char)('0' + v % 10); v /= 10; } while (v);
    lb__sse_line(w, "retry", 5, tmp + k, sizeof tmp - k);
  }
  for (size_t i = 0; i < ev->n_ext; i++)
    lb__sse_line(w, ev->ext[i].name, ev->ext[i].name_len, ev->ext[i].value,
                 ev->ext[i].value_len);
  if (ev->data) lb__sse_lines(w, "data", 4, ev->data, ev->data_len);
  lb__sse_put(w, "\n", 1);
}

size_t lb_sse_event_max_len(const lb_sse_event *ev) {
  lb__sse_w w = {NULL, 0, SIZE_MAX, 0};
  lb__sse_write_event(&w, ev);
  return w.ovf ? SIZE_MAX : w.pos;
}

/* PTRDIFF_MAX: a count must be representable in the return value. */
static size_t lb__sse_room(size_t cap) {
  return cap > (size_t)PTRDIFF_MAX ? (size_t)PTRDIFF_MAX : cap;
}

ptrdiff_t lb_sse_encode(const lb_sse_event *ev, uint8_t *out, size_t cap) {
  int r = lb__sse_validate(ev);
  if (r) return r;
  if (out == NULL) cap = 0;
  lb__sse_w w = {out, 0, lb__sse_room(cap), 0};
  lb__sse_write_event(&w, ev);
  return w.ovf ? LB_ENOSPACE : (ptrdiff_t)w.pos;
}

ptrdiff_t lb_sse_encode_buf(const lb_sse_event *ev, lb_buf *b) {
  int r = lb__sse_validate(ev);
  if (r) return r;
  /* Try the free room first (one pass); measure and grow only when the
   * event does not fit. */
  lb__sse_w w = {b->data ? b->data + b->len : NULL, 0,
                 b->data ? lb__sse_room(b->cap - b->len) : 0, 0};
  if (w.out) lb__sse_write_event(&w, ev);
  if (w.out == NULL || w.ovf) {
    size_t need = lb_sse_event_max_len(ev);
    if (need > (size_t)PTRDIFF_MAX) return LB_ENOMEM;
    uint8_t *dst = lb_buf_reserve(b, need);
    if (dst == NULL) return LB_ENOMEM;
    lb__sse_w w2 = {dst, 0, need, 0};
    lb__sse_write_event(&w2, ev);
    w = w2;
  }
  b->len += w.pos;
  return (ptrdiff_t)w.pos;
}

/* A comment line is ":" for an empty line, ": text" otherwise. */
static void lb__sse_comment_line(lb__sse_w *w, const char *s, size_t n) {
  if (n) {
    lb__sse_put(w, ": ", 2);
    lb__sse_put(w, s, n);
  } else {
    lb__sse_put(w, ":", 1);
  }
  lb__sse_put(w, "\n", 1);
}

static void lb__sse_write_comment(lb__sse_w *w, const char *text, size_t len) {
  if (text == NULL) text = "";
  const char *end = text + len;
  for (;;) {
    const char *b = lb__sse_brk(text, (size_t)(end - text));
    if (b == NULL) break;
    lb__sse_comment_line(w, text, (size_t)(b - text));
    if (*b == '\r' && b + 1 < end && b[1] == '\n') b++;
    text = b + 1;
  }
  lb__sse_comment_line(w, text, (size_t)(end - text));
  lb__sse_put(w, "\n", 1);
}

size_t lb_sse_comment_max_len(const char *text, size_t len) {
  lb__sse_w w = {NULL, 0, SIZE_MAX, 0};
  lb__sse_write_comment(&w, text, len);
  return w.ovf ? SIZE_MAX : w.pos;
}

ptrdiff_t lb_sse_encode_comment(const char *text, size_t len, uint8_t *out,
                                size_t cap) {
  if (len && text == NULL) return LB_EINVAL;
  if (out == NULL) cap = 0;
  lb__sse_w w = {out, 0, lb__sse_room(cap), 0};
  lb__sse_write_comment(&w, text, len);
  return w.ovf ? LB_ENOSPACE : (ptrdiff_t)w.pos;
}

ptrdiff_t lb_sse_encode_comment_buf(const char *text, size_t len, lb_buf *b) {
  if (len && text == NULL) return LB_EINVAL;
  size_t need = lb_sse_comment_max_len(text, len);
  if (need > (size_t)PTRDIFF_MAX) return LB_ENOMEM;
  uint8_t *dst = lb_buf_reserve(b, need);
  if (dst == NULL) return LB_ENOMEM;
  lb__sse_w w = {dst, 0, need, 0};
  lb__sse_write_comment(&w, text, len);
  b->len += w.pos;
  return (ptrdiff_t)w.pos;
}

/* ------------------------------------------------------------------ */
/* Parser                                                               */
/* ------------------------------------------------------------------ */

enum {
  LB__SSE_F_BOM_DONE = 1u << 0,    /* the first code point has been seen */
  LB__SSE_F_SKIP_LF = 1u << 1,     /* last byte was CR: an LF is its pair */
  LB__SSE_F_COMMENT = 1u << 2,     /* the current line is a comment */
  LB__SSE_F_FINISHED = 1u << 3,    /* lb_sse_finish was called */
  LB__SSE_F_ID_DIRTY = 1u << 4,    /* id_buf may differ from last_id */
  LB__SSE_F_BLOCK_RETRY = 1u << 5  /* block_retry holds a value */
};

#define LB__SSE_REC (4 * sizeof(size_t))

static const char lb__sse_empty[] = "";

/* End of the run of ASCII bytes other than CR and LF starting at s[i]: the
 * bytes the parser can copy as they are. Eight bytes a step (SWAR): a byte
 * is LF/CR when w ^ 0x0A../0x0D.. has a zero byte, found with the classic
 * (x - 0x01..) & ~x & 0x80.. test, which never misses a zero byte (it may
 * flag a byte after one, harmless here: the scalar loop finishes the job). */
static size_t lb__sse_run(const uint8_t *s, size_t i, size_t n) {
  const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
  while (n - i >= 8) {
    uint64_t w, lf, cr;
    memcpy(&w, s + i, 8);
    lf = w ^ (ones * '\n');
    cr = w ^ (ones * '\r');
    if (((lf - ones) & ~lf) & high) break;
    if (((cr - ones) & ~cr) & high) break;
    if (w & high) break;
    i += 8;
  }
  while (i < n && s[i] < 0x80 && s[i] != '\n' && s[i] != '\r') i++;
  return i;
}

static size_t lb__sse_limit(const lb_sse_parser *p) {
  return p->max_event ? p->max_event : (size_t)LB_SSE_DEFAULT_MAX_EVENT;
}

/* Bytes the event being built holds, line excluded. Each term is bounded by
 * the limit (every growth is checked first), so the sum cannot wrap. */
static size_t lb__sse_block(const lb_sse_parser *p) {
  return p->data_buf.len + p->type_buf.len + p->id_buf.len +
         p->ext_bytes.len + p->ext_recs.len / LB__SSE_REC * LB_SSE_EXT_OVERHEAD;
}

/* 1 when `used + add` stays within the limit; written so nothing wraps. */
static int lb__sse_fits(const lb_sse_parser *p, size_t used, size_t add) {
  size_t lim = lb__sse_limit(p);
  return used <= lim && add <= lim - used;
}

static void lb__sse_clear_block(lb_sse_parser *p) {
  p->data_buf.len = 0;
  p->type_buf.len = 0;
  p->ext_bytes.len = 0;
  p->ext_recs.len = 0;
  p->flags &= ~(uint32_t)LB__SSE_F_BLOCK_RETRY;
}

static void lb__sse_clear_views(lb_sse_parser *p) {
  p->ready = 0;
  p->type = p->data = lb__sse_empty;
  p->type_len = p->data_len = 0;
  p->ext = NULL;
  p->n_ext = 0;
  p->event_retry = -1;
}

static void lb__sse_id_view(lb_sse_parser *p) {
  p->id = p->last_id.len ? (const char *)p->last_id.data : lb__sse_empty;
  p->id_len = p->last_id.len;
}

/* Appends decoded bytes of the current line. A line whose first code point
 * is ':' is a comment: it is never buffered, so comments (heartbeats) of
 * any length cost no memory. */
static int lb__sse_emit(lb_sse_parser *p, const uint8_t *s, size_t n) {
  if (p->flags & LB__SSE_F_COMMENT) return 0;
  if (p->line.len == 0 && s[0] == ':') {
    p->flags |= LB__SSE_F_COMMENT;
    return 0;
  }
  if (!lb__sse_fits(p, lb__sse_block(p) + p->line.len, n)) return LB_ETOOLARGE;
  return lb_buf_append(&p->line, s, n);
}

static int lb__sse_emit_fffd(lb_sse_parser *p) {
  p->flags |= LB__SSE_F_BOM_DONE;
  return lb__sse_emit(p, (const uint8_t *)"\xEF\xBF\xBD", 3);
}

/* Replaces buf's contents with s[0..n). */
static int lb__sse_set(lb_buf *b, const uint8_t *s, size_t n) {
  b->len = 0;
  return lb_buf_append(b, s, n);
}

static int lb__sse_eq(const uint8_t *s, size_t n, const char *lit, size_t l) {
  return n == l && memcmp(s, lit, l) == 0;
}

/* Spec 9.2.6 "process the field". */
static int lb__sse_field(lb_sse_parser *p) {
  const uint8_t *line = p->line.data;
  size_t len = p->line.len;
  const uint8_t *colon = memchr(line, ':', len);
  size_t nlen = colon ? (size_t)(colon - line) : len;
  const uint8_t *v = colon ? colon + 1 : line + len;
  size_t vlen = colon ? len - nlen - 1 : 0;
  if (vlen && v[0] == ' ') { v++; vlen--; }
  size_t block = lb__sse_block(p);

  if (lb__sse_eq(line, nlen, "data", 4)) {
    /* "Append the field value to the data buffer, then append a single
     * U+000A LINE FEED (LF) character to the data buffer." */
    if (!lb__sse_fits(p, block, vlen + 1)) return LB_ETOOLARGE;
    if (lb_buf_append(&p->data_buf, v, vlen)) return LB_ENOMEM;
    return lb_buf_append(&p->data_buf, "\n", 1);
  }
  if (lb__sse_eq(line, nlen, "event", 5)) {
    if (!lb__sse_fits(p, block - p->type_buf.len, vlen)) return LB_ETOOLARGE;
    return lb__sse_set(&p->type_buf, v, vlen);
  }
  if (lb__sse_eq(line, nlen, "id", 2)) {
    /* "If the field value does not contain U+0000 NULL, then set the last
     * event ID buffer to the field value. Otherwise, ignore the field." */
    if (memchr(v, 0, vlen)) return 0;
    if (!lb__sse_fits(p, block - p->id_buf.len, vlen)) return LB_ETOOLARGE;
    p->flags |= LB__SSE_F_ID_DIRTY;
    return lb__sse_set(&p->id_buf, v, vlen);
  }
  if (lb__sse_eq(line, nlen, "retry", 5)) {
    /* "If the field value consists of only ASCII digits, then interpret the
     * field value as an integer in base ten, and set the event stream's
     * reconnection time to that integer. Otherwise, ignore the field."
     * An empty value has no digits: ignored. Huge values saturate. */
    if (vlen == 0) return 0;
    int64_t r = 0;
    for (size_t i = 0; i < vlen; i++) {
      if (v[i] < '0' || v[i] > '9') return 0;
      int d = v[i] - '0';
      r = r > (INT64_MAX - d) / 10 ? INT64_MAX : r * 10 + d;
    }
    p->retry = r;
    p->has_retry = 1;
    p->block_retry = r;
    p->flags |= LB__SSE_F_BLOCK_RETRY;
    return 0;
  }
  /* Any other field: browsers ignore it; lowbit keeps it as an extension.
   * The record costs LB_SSE_EXT_OVERHEAD so empty fields are bounded too. */
  if (!lb__sse_fits(p, block, nlen) ||
      !lb__sse_fits(p, block + nlen, vlen) ||
      !lb__sse_fits(p, block + nlen + vlen, LB_SSE_EXT_OVERHEAD))
    return LB_ETOOLARGE;
  size_t rec[4];
  rec[0] = p->ext_bytes.len;
  rec[1] = nlen;
  rec[2] = p->ext_bytes.len + nlen;
  rec[3] = vlen;
  if (lb_buf_reserve(&p->ext_recs, LB__SSE_REC) == NULL ||
      lb_buf_reserve(&p->ext_bytes, nlen + vlen) == NULL)
    return LB_ENOMEM;
  lb_buf_append(&p->ext_bytes, line, nlen);
  lb_buf_append(&p->ext_bytes, v, vlen);
  lb_buf_append(&p->ext_recs, rec, LB__SSE_REC);
  return 0;
}

/* Spec 9.2.6 "dispatch the event", the parts that belong to the stream. */
static int lb__sse_dispatch(lb_sse_parser *p) {
  /* 1. "Set the last event ID string of the event source to the value of
   * the last event ID buffer." It happens even when nothing is dispatched. */
  if (p->flags & LB__SSE_F_ID_DIRTY) {
    if (lb__sse_set(&p->last_id, p->id_buf.data, p->id_buf.len))
      return LB_ENOMEM;
    p->flags &= ~(uint32_t)LB__SSE_F_ID_DIRTY;
    lb__sse_id_view(p);
  }
  /* 2. "If the data buffer is an empty string, set the data buffer and the
   * event type buffer to the empty string and return." */
  if (p->data_buf.len == 0) {
    lb__sse_clear_block(p);
    return 0;
  }
  size_t n = p->ext_recs.len / LB__SSE_REC;
  if (n) {
    lb_sse_field *f;
    if (lb_buf_reserve(&p->ext_views, n * sizeof *f) == NULL) return LB_ENOMEM;
    f = (lb_sse_field *)(void *)p->ext_views.data;
    const size_t *rec = (const size_t *)(void *)p->ext_recs.data;
    const char *base = (const char *)p->ext_bytes.data;
    for (size_t i = 0; i < n; i++, rec += 4) {
      f[i].name = rec[1] ? base + rec[0] : lb__sse_empty;
      f[i].name_len = rec[1];
      f[i].value = rec[3] ? base + rec[2] : lb__sse_empty;
      f[i].value_len = rec[3];
    }
    p->ext = f;
    p->n_ext = n;
  }
  /* 3. "If the data buffer's last character is a U+000A LINE FEED (LF)
   * character, then remove the last character from the data buffer." It
   * always is: every data line appends one. */
  p->data = (const char *)p->data_buf.data;
  p->data_len = p->data_buf.len - 1;
  if (p->data_len == 0) p->data = lb__sse_empty;
  /* 4. The type is the event type buffer, or "message" when it is empty. */
  if (p->type_buf.len) {
    p->type = (const char *)p->type_buf.data;
    p->type_len = p->type_buf.len;
  } else {
    p->type = "message";
    p->type_len = 7;
  }
  p->event_retry =
      (p->flags & LB__SSE_F_BLOCK_RETRY) ? p->block_retry : -1;
  p->ready = 1;
  /* The buffers are reset when the next call starts: the views above point
   * into them until then. */
  return 0;
}

static int lb__sse_end_line(lb_sse_parser *p) {
  if (p->flags & LB__SSE_F_COMMENT) {
    p->flags &= ~(uint32_t)LB__SSE_F_COMMENT;
    return 0;
  }
  if (p->line.len == 0) return lb__sse_dispatch(p);
  int r = lb__sse_field(p);
  p->line.len = 0;
  return r;
}

/* Called at the start of every feed/finish: the previous event's views
 * expire, so its buffers can be reused. */
static void lb__sse_begin(lb_sse_parser *p) {
  if (p->ready) lb__sse_clear_block(p);
  lb__sse_clear_views(p);
  lb__sse_id_view(p);
}

void lb_sse_parser_init(lb_sse_parser *p) { memset(p, 0, sizeof *p); }

void lb_sse_parser_free(lb_sse_parser *p) {
  size_t max = p->max_event;
  lb_buf_free(&p->line);
  lb_buf_free(&p->data_buf);
  lb_buf_free(&p->type_buf);
  lb_buf_free(&p->id_buf);
  lb_buf_free(&p->last_id);
  lb_buf_free(&p->ext_bytes);
  lb_buf_free(&p->ext_recs);
  lb_buf_free(&p->ext_views);
  memset(p, 0, sizeof *p);
  p->max_event = max;
}

void lb_sse_parser_reset(lb_sse_parser *p) {
  lb__sse_clear_block(p);
  lb__sse_clear_views(p);
  p->line.len = 0;
  /* A new stream starts with an empty last event ID buffer; the last event
   * ID string keeps its value until the next blank line copies the buffer
   * into it, so mark the buffer as differing. */
  p->id_buf.len = 0;
  p->flags = LB__SSE_F_ID_DIRTY;
  p->err = 0;
  p->u8_need = p->u8_seen = 0;
  lb__sse_id_view(p);
}

ptrdiff_t lb_sse_feed(lb_sse_parser *p, const uint8_t *in, size_t n) {
  if (p->err) return p->err;
  if (p->flags & LB__SSE_F_FINISHED) return LB_ESTATE;
  lb__sse_begin(p);
  size_t i = 0;
  int r = 0;
  while (i < n) {
    uint8_t b = in[i];
    if (p->u8_need) {
      /* Encoding Standard, UTF-8 decoder: a byte outside the expected
       * continuation range ends the sequence with one U+FFFD and is then
       * processed again on its own (not consumed here). */
      if (b >= p->u8_lo && b <= p->u8_hi) {
        p->u8_pend[++p->u8_seen] = b;
        p->u8_lo = 0x80;
        p->u8_hi = 0xBF;
        i++;
        if (p->u8_seen == p->u8_need) {
          size_t len = p->u8_seen + 1;
          p->u8_need = 0;
          if (!(p->flags & LB__SSE_F_BOM_DONE)) {
            /* "strips one leading UTF-8 Byte Order Mark": only the very
             * first code point of the stream can be one. */
            p->flags |= LB__SSE_F_BOM_DONE;
            if (len == 3 && p->u8_pend[0] == 0xEF && p->u8_pend[1] == 0xBB &&
                p->u8_pend[2] == 0xBF)
              continue;
          }
          if ((r = lb__sse_emit(p, p->u8_pend, len)) < 0) goto fail;
        }
        continue;
      }
      p->u8_need = 0;
      if ((r = lb__sse_emit_fffd(p)) < 0) goto fail;
      continue;
    }
    if (b < 0x80) {
      p->flags |= LB__SSE_F_BOM_DONE;
      if (b == '\n' || b == '\r') {
        i++;
        /* CRLF is one line end. The CR already ended the line, so an LF
         * right after it (maybe in the next feed) is simply dropped: no
         * need to hold the CR back. */
        if (b == '\n' && (p->flags & LB__SSE_F_SKIP_LF)) {
          p->flags &= ~(uint32_t)LB__SSE_F_SKIP_LF;
          continue;
        }
        if (b == '\r') p->flags |= LB__SSE_F_SKIP_LF;
        else p->flags &= ~(uint32_t)LB__SSE_F_SKIP_LF;
        if ((r = lb__sse_end_line(p)) < 0) goto fail;
        if (p->ready) break;
        continue;
      }
      p->flags &= ~(uint32_t)LB__SSE_F_SKIP_LF;
      size_t j = lb__sse_run(in, i + 1, n);
      if ((r = lb__sse_emit(p, in + i, j - i)) < 0) goto fail;
      i = j;
      continue;
    }
    p->flags &= ~(uint32_t)LB__SSE_F_SKIP_LF;
    i++;
    p->u8_pend[0] = b;
    p->u8_seen = 0;
    p->u8_lo = 0x80;
    p->u8_hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      p->u8_need = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      /* E0: no overlong forms; ED: no surrogates. */
      if (b == 0xE0) p->u8_lo = 0xA0;
      if (b == 0xED) p->u8_hi = 0x9F;
      p->u8_need = 2;
    } else if (b >= 0xF0 && b <= 0xF4) {
      /* F0: no overlong forms; F4: nothing above U+10FFFF. */
      if (b == 0xF0) p->u8_lo = 0x90;
      if (b == 0xF4) p->u8_hi = 0x8F;
      p->u8_need = 3;
    } else if ((r = lb__sse_emit_fffd(p)) < 0) {
      goto fail;
    }
  }
  return (ptrdiff_t)i;
fail:
  lb__sse_clear_views(p);
  p->err = r;
  return r;
}

ptrdiff_t lb_sse_finish(lb_sse_parser *p) {
  if (p->err) return p->err;
  lb__sse_begin(p);
  /* "Once the end of the file is reached, any pending data must be
   * discarded. (If the file ends in the middle of an event, before the
   * final empty line, the incomplete event is not dispatched.)" A pending
   * UTF-8 sequence would become U+FFFD in that discarded data. */
  lb__sse_clear_block(p);
  p->line.len = 0;
  p->u8_need = 0;
  p->flags |= LB__SSE_F_FINISHED;
  p->flags &= ~(uint32_t)LB__SSE_F_COMMENT;
  return 0;
}

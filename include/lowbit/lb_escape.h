/*
 * lb_escape.h: the escapers of contextual HTML templating, sans-I/O.
 *
 * Each escaper turns one value (bytes) into the bytes that are safe in one
 * context of an HTML page, with the output of Go's html/template (1.19):
 *   LB_ESCAPE_HTML          text, RCDATA (title/textarea), quoted attribute
 *                           value: & < > " ' + and NUL.
 *   LB_ESCAPE_HTML_NOSPACE  unquoted attribute value: the HTML set plus
 *                           whitespace, = and `, and Unicode noncharacters.
 *   LB_ESCAPE_URL_NORM      a URL in an attribute or url(): bytes outside the
 *                           URL-safe set percent-encoded (lowercase hex);
 *                           reserved characters and % are kept.
 *   LB_ESCAPE_URL_QUERY     a URL component (after ? or #): everything but
 *                           unreserved characters percent-encoded.
 *   LB_ESCAPE_JS_STR        inside a JS string literal ('...' or "...").
 *   LB_ESCAPE_JS_REGEXP     inside a JS regular expression literal.
 *   LB_ESCAPE_JSON_STR      a string as a JS value: a quoted JSON string with
 *                           < > & as \u003c \u003e \u0026 (invalid UTF-8
 *                           becomes \ufffd).
 *   LB_ESCAPE_CSS_STR       inside a CSS string: hex escapes (\3c ).
 *   LB_ESCAPE_CSS_VALUE     a CSS value (<style>, style=): CSS escapes
 *                           decoded, then the value is checked; an unsafe
 *                           value gives LB_EINVAL (the caller writes
 *                           ZgotmplZ).
 *   LB_ESCAPE_SRCSET        a srcset attribute: each candidate's URL
 *                           filtered (unsafe -> #ZgotmplZ) and normalized.
 *
 * All calls write into a caller buffer; lb_escape_max_len() sizes it.
 */
#ifndef LOWBIT_LB_ESCAPE_H
#define LOWBIT_LB_ESCAPE_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum lb_escape_kind {
  LB_ESCAPE_HTML = 1,
  LB_ESCAPE_HTML_NOSPACE = 2,
  LB_ESCAPE_URL_NORM = 3,
  LB_ESCAPE_URL_QUERY = 4,
  LB_ESCAPE_JS_STR = 5,
  LB_ESCAPE_JS_REGEXP = 6,
  LB_ESCAPE_JSON_STR = 7,
  LB_ESCAPE_CSS_STR = 8,
  LB_ESCAPE_CSS_VALUE = 9,
  LB_ESCAPE_SRCSET = 10
};

/* Bytes lb_escape(kind, ., len, ...) may write at most: 8 * len + 16 (no
 * escaper grows a byte to more than 8). Returns 0 when that would overflow
 * size_t, or for an unknown kind. */
size_t lb_escape_max_len(int kind, size_t len);

/*
 * Escapes in[0..len) for the context `kind` into out[0..cap).
 * Returns the number of bytes written (>= 0), or:
 *   LB_ENOSPACE  cap too small (out holds garbage then); a cap of
 *                lb_escape_max_len(kind, len) is always enough;
 *   LB_EINVAL    unknown kind, or (LB_ESCAPE_CSS_VALUE) an unsafe value.
 */
ptrdiff_t lb_escape(int kind, const char *in, size_t len, char *out, size_t cap);

/*
 * 0 when lb_escape(kind, in, len, ...) would write the input unchanged (no
 * byte of the value needs escaping), 1 when it may change it. Always 1 for LB_ESCAPE_JSON_STR, LB_ESCAPE_CSS_VALUE,
 * LB_ESCAPE_SRCSET and unknown kinds. Lets a caller skip the copy for the
 * common clean value with one cheap call.
 */
int lb_escape_needed(int kind, const char *in, size_t len);

/*
 * 1 when the URL is safe to put in a URL attribute as it is: it has no
 * scheme (no ':' before the first '/'), or its scheme is http, https or
 * mailto (ASCII case-insensitive). 0 otherwise: the caller writes
 * "#ZgotmplZ" instead of the value.
 */
int lb_escape_url_safe(const char *in, size_t len);

#endif

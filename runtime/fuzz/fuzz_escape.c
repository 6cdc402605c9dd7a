/* fuzz_escape.c: libFuzzer target for lb_escape.
 *
 * The first byte picks the escaper; the rest is the value. Properties:
 *  1. never crash (ASan/UBSan), output within lb_escape_max_len;
 *  2. a cap one byte short of the result gives LB_ENOSPACE;
 *  3. lb_escape_needed() == 0 only when the output equals the input;
 *  4. the HTML and URL escapers leave no byte of their special sets in the
 *     output (no '<' from LB_ESCAPE_HTML, no space from URL ones). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit/lb_escape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int kind = 1 + data[0] % LB_ESCAPE_SRCSET;
  const char *in = (const char *)data + 1;
  size_t n = size - 1;
  size_t cap = lb_escape_max_len(kind, n);
  char *out = malloc(cap);
  if (!out) return 0;
  ptrdiff_t r = lb_escape(kind, in, n, out, cap);
  if (r < 0 && !(kind == LB_ESCAPE_CSS_VALUE && r == LB_EINVAL)) abort();
  if (r >= 0 && (size_t)r > cap) abort();
  if (lb_escape_needed(kind, in, n) == 0 && (r < 0 || (size_t)r != n || memcmp(out, in, n) != 0)) abort();
  if (r > 0) {
    char *small = malloc((size_t)r - 1 + 1);
    if (lb_escape(kind, in, n, small, (size_t)r - 1) != LB_ENOSPACE) abort();
    free(small);
  }
  for (ptrdiff_t i = 0; i < r; i++) {
    char c = out[i];
    if ((kind == LB_ESCAPE_HTML || kind == LB_ESCAPE_HTML_NOSPACE) && (c == '<' || c == '"' || c == '\''))
      abort();
    if (kind == LB_ESCAPE_HTML_NOSPACE && (c == ' ' || c == '=' || c == '`')) abort();
    if ((kind == LB_ESCAPE_URL_NORM || kind == LB_ESCAPE_URL_QUERY) && (c == ' ' || c == '"' || c == '<'))
      abort();
    if (kind == LB_ESCAPE_JS_STR && (c == '"' || c == '\'' || c == '<' || c == '\n')) abort();
  }
  free(out);
  return 0;
}

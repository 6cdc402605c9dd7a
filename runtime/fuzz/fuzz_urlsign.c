/*
 * fuzz_urlsign.c: lb_urlsign_sign / lb_urlsign_verify / _verify_parts on
 * arbitrary bytes, with exact-size heap buffers (ASan catches any write or
 * read past the documented bounds). Properties checked (abort on
 * violation):
 *  - sign returns a length <= lb_urlsign_sign_max_len, or LB_EURL /
 *    LB_ETOOMANY (the caller's general path decides those);
 *  - whatever signs verifies (LB_URLSIGN_VALID, exp read back), and signing
 *    the signed URL again gives the same bytes (exp and sig are replaced,
 *    the canonical order is stable);
 *  - flipping one byte of the signature makes verify say BAD_SIG;
 *  - verify and verify_parts on the raw input never fail other than with a
 *    documented result.
 */
#include "lowbit/lb_urlsign.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static lb_hmac *key;

static ptrdiff_t sign(const char *in, size_t n, char **out) {
  size_t wl = lb_urlsign_work_len(n + 10), ol = lb_urlsign_sign_max_len(n, 10);
  char *work = malloc(wl);
  *out = malloc(ol);
  ptrdiff_t rc = lb_urlsign_sign(key, in, n, "1700000000", 10, work, wl, *out, ol);
  free(work);
  CHECK(rc == LB_EURL || rc == LB_ETOOMANY || (rc > 0 && (size_t)rc <= ol));
  return rc;
}

static int verify(const char *in, size_t n, double *exp) {
  size_t wl = lb_urlsign_work_len(n);
  char *work = malloc(wl);
  int rc = lb_urlsign_verify(key, in, n, work, wl, exp);
  free(work);
  CHECK(rc == LB_EURL || rc == LB_ETOOMANY || (rc >= LB_URLSIGN_VALID && rc <= LB_URLSIGN_BAD_EXP));
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (key == NULL) key = lb_hmac_new((const uint8_t *)"fuzz key", 8);
  /* An exact-size copy so reads past the end are caught. */
  char *in = malloc(size ? size : 1);
  memcpy(in, data, size);
  double exp = 0;
  verify(in, size, &exp);
  {
    size_t wl = lb_urlsign_work_len(size);
    char *work = malloc(wl);
    size_t cut = size / 3;
    int rc = lb_urlsign_verify_parts(key, in, cut, in + cut, cut, in + 2 * cut, size - 2 * cut,
                                     work, wl, &exp);
    CHECK(rc == LB_EURL || rc == LB_ETOOMANY || (rc >= LB_URLSIGN_VALID && rc <= LB_URLSIGN_BAD_EXP));
    free(work);
  }
  char *out = NULL;
  ptrdiff_t n = sign(in, size, &out);
  if (n > 0) {
    CHECK(verify(out, (size_t)n, &exp) == LB_URLSIGN_VALID && exp == 1700000000.0);
    char *again = NULL;
    ptrdiff_t m = sign(out, (size_t)n, &again);
    CHECK(m == n && memcmp(again, out, (size_t)n) == 0);
    free(again);
    char *s = NULL;
    for (ptrdiff_t i = 0; i + 4 <= n; i++)
      if (memcmp(out + i, "sig=", 4) == 0 && (i == 0 || out[i - 1] == '?' || out[i - 1] == '&')) s = out + i + 4;
    CHECK(s != NULL);
    *s = *s == '0' ? '1' : '0';
    CHECK(verify(out, (size_t)n, &exp) == LB_URLSIGN_BAD_SIG);
  }
  free(out);
  free(in);
  return 0;
}

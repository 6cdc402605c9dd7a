/* test_urlsign.c: lb_urlsign against the vectors of spec/urlsign_spec.lua
 * (signatures computed with Python's hmac module), its refusals (LB_EURL:
 * what lowbit.url decides), and buffer bounds under ASan with exact-size
 * heap buffers. */
#include "lb_test.h"
#include "lowbit/lb_urlsign.h"
#include <stdlib.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static lb_hmac *key(const char *k) { return lb_hmac_new((const uint8_t *)k, strlen(k)); }

/* Signs url into a malloc'd string (exact-size buffers), or returns NULL
 * and *rc < 0. */
static char *sign(const lb_hmac *h, const char *url, size_t n, const char *exp, ptrdiff_t *rc) {
  size_t wl = lb_urlsign_work_len(n + strlen(exp)), ol = lb_urlsign_sign_max_len(n, strlen(exp));
  char *work = malloc(wl), *out = malloc(ol + 1);
  *rc = lb_urlsign_sign(h, url, n, exp, strlen(exp), work, wl, out, ol);
  free(work);
  if (*rc < 0) { free(out); return NULL; }
  out[*rc] = 0;
  return out;
}

static int verify(const lb_hmac *h, const char *url, double *exp) {
  size_t n = strlen(url), wl = lb_urlsign_work_len(n);
  char *work = malloc(wl);
  int rc = lb_urlsign_verify(h, url, n, work, wl, exp);
  free(work);
  return rc;
}

static void check_vector(const char *k, const char *url, const char *exp, const char *want) {
  lb_hmac *h = key(k);
  ptrdiff_t rc;
  char *got = sign(h, url, strlen(url), exp, &rc);
  LB_CHECK(got != NULL);
  if (got != NULL) {
    if (strcmp(got, want) != 0) fprintf(stderr, "  got  %s\n  want %s\n", got, want);
    LB_CHECK(strcmp(got, want) == 0);
    LB_CHECK_EQ(rc, strlen(want));
    double e = 0;
    LB_CHECK_EQ(verify(h, got, &e), LB_URLSIGN_VALID);
    LB_CHECK(e == strtod(exp, NULL));
  }
  free(got);
  lb_hmac_free(h);
}

static void test_spec_vectors(void) {
  check_vector("secret", "https://cdn.example.com/files/report.pdf", "1700003600",
               "https://cdn.example.com/files/report.pdf?exp=1700003600&sig="
               "3863a45b5da77ca92fb90389023f6899b2279a9459b0e7860c5e426e32544e34");
  check_vector("k3y", "http://localhost:8080/a%20b/c?z=last&format=pdf&a=x%20y&a=2", "1700000060",
               "http://localhost:8080/a%20b/c?a=x+y&a=2&exp=1700000060&format=pdf&sig="
               "16c0c623f315181c42a0588fe9e722521de857a2d50f15afe9c3a57557849f0e&z=last");
  check_vector("secret", "https://cdn.example.com:8443/files/report.pdf?format=pdf", "1700003600",
               "https://cdn.example.com:8443/files/report.pdf?exp=1700003600&format=pdf&sig="
               "d661d3c2785ff1a02a176b7caf2b42741069318bb0c1e5b8efc212feb3ba523a");
  check_vector("another key", "https://example.com/dl?q=a%2Bb%26c&name=r%C3%A9sum%C3%A9.pdf",
               "1700086400",
               "https://example.com/dl?exp=1700086400&name=r%C3%A9sum%C3%A9.pdf&q=a%2Bb%26c&sig="
               "26c5dae1e461b75d9dce223eeee2965c43e5ca22f5f3744f15cde0398bb492a2");
}

static void test_scheme_lowered_old_exp_sig_replaced_stable_order(void) {
  lb_hmac *h = key("secret");
  ptrdiff_t rc;
  const char *u = "HTTPS://h/p?b=1&sig=x&a=2&&b=0&exp=9&a=1&c";
  char *a = sign(h, u, strlen(u), "5", &rc);
  LB_CHECK(a != NULL);
  if (a != NULL) {
    LB_CHECK(strncmp(a, "https://h/p?a=2&a=1&b=1&b=0&c=&exp=5&sig=", 41) == 0);
    LB_CHECK_EQ(strlen(a), 41 + 64);
  }
  free(a);
  lb_hmac_free(h);
}

static void test_verify_results(void) {
  lb_hmac *h = key("secret");
  ptrdiff_t rc;
  char *s = sign(h, "https://h/p?x=1", 15, "1700003600", &rc);
  LB_CHECK(s != NULL);
  char buf[512];
  double e = 0;
  /* s = https://h/p?exp=1700003600&sig=<64>&x=1 */
  LB_CHECK_EQ(verify(h, s, &e), LB_URLSIGN_VALID);
  LB_CHECK(e == 1700003600.0);
  snprintf(buf, sizeof buf, "%s&x=2", s);
  LB_CHECK_EQ(verify(h, buf, &e), LB_URLSIGN_BAD_SIG);
  snprintf(buf, sizeof buf, "%s&exp=1", s);
  LB_CHECK_EQ(verify(h, buf, &e), LB_URLSIGN_REPEATED);
  snprintf(buf, sizeof buf, "%s&sig=00", s);
  LB_CHECK_EQ(verify(h, buf, &e), LB_URLSIGN_REPEATED);
  LB_CHECK_EQ(verify(h, "https://h/p?x=1", &e), LB_URLSIGN_MISSING);
  LB_CHECK_EQ(verify(h, "https://h/p?exp=1&sig=", &e), LB_URLSIGN_MISSING);
  LB_CHECK_EQ(verify(h, "https://h/p?exp=&sig=ab", &e), LB_URLSIGN_MISSING);
  strcpy(buf, s);
  char *sig = strstr(buf, "sig=") + 4;
  sig[0] = sig[0] == '0' ? '1' : '0';
  LB_CHECK_EQ(verify(h, buf, &e), LB_URLSIGN_BAD_SIG);
  strcpy(buf, s);
  buf[10] = 'P'; /* the path */
  LB_CHECK_EQ(verify(h, buf, &e), LB_URLSIGN_BAD_SIG);
  /* verify_parts: host, decoded path and raw query. */
  const char *q = strchr(s, '?') + 1;
  char work[1024];
  LB_CHECK_EQ(lb_urlsign_verify_parts(h, "h", 1, "/p", 2, q, strlen(q), work, sizeof work, &e),
              LB_URLSIGN_VALID);
  LB_CHECK_EQ(lb_urlsign_verify_parts(h, "h:80", 4, "/p", 2, q, strlen(q), work, sizeof work, &e),
              LB_URLSIGN_BAD_SIG);
  free(s);
  /* A signed exp that is not digits, or too long for a double. */
  s = sign(h, "https://h/p", 11, "12a", &rc);
  LB_CHECK_EQ(verify(h, s, &e), LB_URLSIGN_BAD_EXP);
  free(s);
  s = sign(h, "https://h/p", 11, "1234567890123456", &rc);
  LB_CHECK_EQ(verify(h, s, &e), LB_EURL);
  free(s);
  lb_hmac_free(h);
}

static void test_refuses_what_lowbit_url_decides(void) {
  static const char *const odd[] = {
    "https://user@h/p", "https://h/p#frag", "/p?q=1", "//h/p", "mailto:x@y", "https:/h/p",
    "https://h/%zz", "https://h/%4", "https://h/p?a=%zz", "https://h/p?a=%", "http://[::1]/",
    "https://h:8x/", "https://h:80:90/", "https://a b/", "https://h%20/", "https://h/\x01",
    "https://h/\x7f", "1http://h/", "", "https", "https://h!/",
  };
  lb_hmac *h = key("secret");
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    ptrdiff_t rc;
    char *s = sign(h, odd[i], strlen(odd[i]), "1", &rc);
    if (s != NULL) fprintf(stderr, "  accepted %s\n", odd[i]);
    LB_CHECK(s == NULL && rc == LB_EURL);
    free(s);
    double e;
    LB_CHECK_EQ(verify(h, odd[i], &e), LB_EURL);
  }
  lb_hmac_free(h);
}

static void test_pair_limit(void) {
  char url[2048];
  size_t o = (size_t)snprintf(url, sizeof url, "https://h/p?");
  for (int i = 0; i < LB_URLSIGN_MAX_PAIRS; i++) o += (size_t)snprintf(url + o, sizeof url - o, "k%d=%d&", i % 9, i);
  lb_hmac *h = key("secret");
  ptrdiff_t rc;
  char *s = sign(h, url, o, "1", &rc);
  LB_CHECK(s != NULL);
  free(s);
  o += (size_t)snprintf(url + o, sizeof url - o, "one=more");
  s = sign(h, url, o, "1", &rc);
  LB_CHECK(s == NULL && rc == LB_ETOOMANY);
  lb_hmac_free(h);
}

static void test_argument_and_space_errors(void) {
  lb_hmac *h = key("secret");
  char work[128], out[128];
  LB_CHECK_EQ(lb_urlsign_sign(NULL, "https://h/", 10, "1", 1, work, sizeof work, out, sizeof out), LB_EINVAL);
  LB_CHECK_EQ(lb_urlsign_sign(h, NULL, 10, "1", 1, work, sizeof work, out, sizeof out), LB_EINVAL);
  LB_CHECK_EQ(lb_urlsign_sign(h, "https://h/", 10, "1", 1, work, 70, out, sizeof out), LB_ENOSPACE);
  LB_CHECK_EQ(lb_urlsign_sign(h, "https://h/", 10, "1", 1, work, sizeof work, out, 120), LB_ENOSPACE);
  LB_CHECK(lb_urlsign_sign(h, "https://h/", 10, "1", 1, work, 71, out, 121) > 0);
  double e;
  LB_CHECK_EQ(lb_urlsign_verify(h, "https://h/", 10, work, 65, &e), LB_ENOSPACE);
  LB_CHECK_EQ(lb_urlsign_verify(h, "https://h/", 10, work, 66, &e), LB_URLSIGN_MISSING);
  LB_CHECK_EQ(lb_urlsign_verify_parts(h, "h", 1, "/", 1, "exp=1", 5, work, 50, &e), LB_ENOSPACE);
  LB_CHECK_EQ(lb_urlsign_verify(h, NULL, 1, work, sizeof work, &e), LB_EINVAL);
  LB_CHECK_EQ(lb_urlsign_verify_parts(h, NULL, 1, "", 0, "", 0, work, sizeof work, &e), LB_EINVAL);
  lb_hmac_free(h);
}

/* Random URLs from a small alphabet, with exact-size heap buffers: every
 * prefix of each signs within the bounds, and whatever signs verifies and
 * re-signs to itself. */
static void test_random_urls_and_prefixes(void) {
  static const char *const bits[] = { "a", "=", "&", "%41", "%", "+", " ", "exp", "sig", "/", "?",
    ":", "8", "#", "@", "\xc3\xa9", "~", "%zz", "Z" };
  lb_hmac *h = key("k");
  char url[300];
  int signed_ok = 0;
  for (int t = 0; t < 2000; t++) {
    size_t o = (size_t)snprintf(url, sizeof url, "%s", (t & 1) ? "http://h.x:81/" : "HTTPS://h");
    int k = (int)(lb_test_xorshift(&rng_state) % 20);
    for (int i = 0; i < k; i++) {
      const char *b = bits[lb_test_xorshift(&rng_state) % (sizeof bits / sizeof *bits)];
      o += (size_t)snprintf(url + o, sizeof url - o, "%s", b);
    }
    for (size_t n = 0; n <= o; n++) {
      ptrdiff_t rc;
      char *s = sign(h, url, n, "1700000000", &rc);
      if (s == NULL) {
        LB_CHECK(rc == LB_EURL || rc == LB_ETOOMANY);
        continue;
      }
      signed_ok++;
      LB_CHECK((size_t)rc <= lb_urlsign_sign_max_len(n, 10));
      double e = 0;
      LB_CHECK_EQ(verify(h, s, &e), LB_URLSIGN_VALID);
      ptrdiff_t rc2;
      char *again = sign(h, s, (size_t)rc, "1700000000", &rc2);
      LB_CHECK(again != NULL && strcmp(again, s) == 0);
      free(again);
      free(s);
    }
  }
  LB_CHECK(signed_ok > 1000);
  lb_hmac_free(h);
}

int main(void) {
  LB_RUN(test_spec_vectors);
  LB_RUN(test_scheme_lowered_old_exp_sig_replaced_stable_order);
  LB_RUN(test_verify_results);
  LB_RUN(test_refuses_what_lowbit_url_decides);
  LB_RUN(test_pair_limit);
  LB_RUN(test_argument_and_space_errors);
  LB_RUN(test_random_urls_and_prefixes);
  return LB_DONE();
}

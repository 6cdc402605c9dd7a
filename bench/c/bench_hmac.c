/*
 * bench_hmac.c: HMAC-SHA256 per second for a ~100-byte urlsign-style message:
 * lb_hmac (precomputed key state) against the ways OpenSSL 3 offers.
 * Build by hand:
 *   cc -O2 -Iinclude bench/c/bench_hmac.c build/lib/liblowbit.a -lssl -lcrypto -lz
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* only for the HMAC_CTX comparison */
#include "lowbit/lb_hmac.h"
#include "report.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static volatile uint8_t sink;
static const char KEY[] = "a-32-byte-secret-key-for-signing";
static const char HOST[] = "cdn.example.com", PATH[] = "/files/2024/quarterly-report.pdf",
                  EXP[] = "1747123456", QUERY[] = "download=1&format=pdf&user=12345";
static char MSG[256];
static size_t MSGLEN;

/* The figure's @bench line: case BCASE (the label when NULL), impl BIMPL. */
static const char *BCASE, *BIMPL = "lowbit";
#define RUN(label, body)                                                     \
  do {                                                                       \
    double t0 = now(), t;                                                    \
    uint64_t iters = 0;                                                      \
    do {                                                                     \
      for (int i_ = 0; i_ < 1000; i_++) { body; }                            \
      iters += 1000;                                                         \
      t = now() - t0;                                                        \
    } while (t < 0.5);                                                       \
    printf("  %-44s %10.0f /s  %7.0f ns\n", label, (double)iters / t,        \
           t / (double)iters * 1e9);                                         \
    bench_line("hmac", BCASE ? BCASE : label, "ns_per_op", BIMPL,            \
               t / (double)iters * 1e9, "ns", "lower");                      \
    BCASE = NULL;                                                            \
  } while (0)

int main(void) {
  MSGLEN = (size_t)snprintf(MSG, sizeof MSG, "%s:%s:%s:%s", HOST, PATH, EXP, QUERY);
  printf("HMAC-SHA256, %zu-byte message, 32-byte key\n", MSGLEN);
  uint8_t out[32];
  unsigned outl = 0;

  lb_hmac *h = lb_hmac_new((const uint8_t *)KEY, strlen(KEY));
  BCASE = "HMAC-SHA256, one keyed state reused";
  RUN("lb_hmac_sha256 (reused key state)", {
    lb_hmac_sha256(h, MSG, MSGLEN, out);
    sink ^= out[0];
  });
  lb_hmac_part parts[7] = {
    {(const uint8_t *)HOST, strlen(HOST)}, {(const uint8_t *)":", 1},
    {(const uint8_t *)PATH, strlen(PATH)}, {(const uint8_t *)":", 1},
    {(const uint8_t *)EXP, strlen(EXP)},   {(const uint8_t *)":", 1},
    {(const uint8_t *)QUERY, strlen(QUERY)},
  };
  RUN("lb_hmac_sha256_parts (7 parts)", {
    lb_hmac_sha256_parts(h, parts, 7, out);
    sink ^= out[0];
  });
  char sig[64];
  lb_hex_encode(out, 32, sig);
  RUN("lb_hmac_verify_hex (parts + hex + ct compare)", {
    sink ^= (uint8_t)lb_hmac_verify_hex(h, parts, 7, sig, 64);
  });

  /* OpenSSL 3 EVP_MAC: a keyed template, duplicated per message. */
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *tmpl = EVP_MAC_CTX_new(mac);
  OSSL_PARAM params[2] = {
    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
    OSSL_PARAM_construct_end()};
  EVP_MAC_init(tmpl, (const unsigned char *)KEY, strlen(KEY), params);
  BIMPL = "openssl";
  RUN("EVP_MAC_CTX_dup from keyed template", {
    EVP_MAC_CTX *c = EVP_MAC_CTX_dup(tmpl);
    size_t ol = 0;
    EVP_MAC_update(c, (const unsigned char *)MSG, MSGLEN);
    EVP_MAC_final(c, out, &ol, sizeof out);
    EVP_MAC_CTX_free(c);
    sink ^= out[0];
  });
  /* EVP_MAC_init with a NULL key reuses the key (one ctx, not shareable). */
  EVP_MAC_CTX *one = EVP_MAC_CTX_dup(tmpl);
  BCASE = "HMAC-SHA256, one keyed state reused";
  RUN("EVP_MAC_init(NULL key) on one ctx", {
    size_t ol = 0;
    EVP_MAC_init(one, NULL, 0, NULL);
    EVP_MAC_update(one, (const unsigned char *)MSG, MSGLEN);
    EVP_MAC_final(one, out, &ol, sizeof out);
    sink ^= out[0];
  });
  /* Deprecated HMAC_CTX: copy a keyed context per message. */
  HMAC_CTX *ht = HMAC_CTX_new(), *hc = HMAC_CTX_new();
  HMAC_Init_ex(ht, KEY, (int)strlen(KEY), EVP_sha256(), NULL);
  RUN("HMAC_CTX_copy from keyed ctx (deprecated)", {
    HMAC_CTX_copy(hc, ht);
    HMAC_Update(hc, (const unsigned char *)MSG, MSGLEN);
    HMAC_Final(hc, out, &outl);
    sink ^= out[0];
  });
  /* The naive way: one-shot HMAC(), key re-hashed every time. */
  RUN("HMAC() one-shot (naive)", {
    HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)MSG, MSGLEN, out, &outl);
    sink ^= out[0];
  });
  BIMPL = "lowbit";
  RUN("lb_sha256 (same message, no key)", {
    lb_sha256(MSG, MSGLEN, out);
    sink ^= out[0];
  });

  HMAC_CTX_free(ht);
  HMAC_CTX_free(hc);
  EVP_MAC_CTX_free(one);
  EVP_MAC_CTX_free(tmpl);
  EVP_MAC_free(mac);
  lb_hmac_free(h);
  return 0;
}

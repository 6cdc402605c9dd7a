/*
 * tls_pem.h: PEM text of a certificate and/or key, for the TLS core's test
 * (test_tls.c) and fuzz target (fuzz_tls.c), which make their own.
 */
#ifndef LOWBIT_TEST_TLS_PEM_H
#define LOWBIT_TEST_TLS_PEM_H
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/pem.h>

/* x and/or k as PEM, in a malloc'd NUL-terminated string. */
static inline char *pem_of(X509 *x, EVP_PKEY *k) {
  BIO *b = BIO_new(BIO_s_mem());
  if (x) PEM_write_bio_X509(b, x);
  if (k) PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
  char *p = NULL;
  long n = BIO_get_mem_data(b, &p);
  char *s = malloc((size_t)n + 1);
  memcpy(s, p, (size_t)n);
  s[n] = '\0';
  BIO_free(b);
  return s;
}

#endif

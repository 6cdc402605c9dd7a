/* fuzz_tls.c: libFuzzer target for lb_tls fed hostile ciphertext.
 *
 * The first byte picks the role (server or client) and the split pattern;
 * the rest is what "the peer" sends, fed in chunks whose sizes come from
 * the first byte. Properties: never crash (ASan/UBSan); every call returns
 * a documented code; a failed connection stays failed; output can always
 * be drained. The server uses a self-signed P-256 certificate made once at
 * start-up; the client starts its handshake (a real ClientHello) before the
 * input arrives. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lowbit/lb_tls.h"
#include "../test/tls_pem.h"

static lb_tls_ctx *server_ctx, *client_ctx;

static void setup(void) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, k);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(x));
  X509_sign(x, k, EVP_sha256());
  char *c = pem_of(x, NULL), *kp = pem_of(NULL, k);
  server_ctx = lb_tls_ctx_new(1);
  if (lb_tls_ctx_use_cert_pem(server_ctx, c, strlen(c), kp, strlen(kp)) != 0) abort();
  lb_tls_ctx_set_alpn(server_ctx, (const uint8_t *)"\x08http/1.1", 9);
  client_ctx = lb_tls_ctx_new(0);
  lb_tls_ctx_load_ca_pem(client_ctx, c, strlen(c));
  lb_tls_ctx_set_alpn(client_ctx, (const uint8_t *)"\x02h2\x08http/1.1", 12);
  free(c);
  free(kp);
  X509_free(x);
  EVP_PKEY_free(k);
}

static int ok_code(ptrdiff_t r) {
  return r >= 0 || r == LB_EAGAIN || r == LB_ETLS || r == LB_ETLSVERIFY;
}

static void drain(lb_tls *t) {
  uint8_t out[4096];
  while (lb_tls_pending_out(t) > 0)
    if (lb_tls_take_out(t, out, sizeof out) <= 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (server_ctx == NULL) setup();
  if (size < 1) return 0;
  int is_server = data[0] & 1;
  size_t step = (size_t)(data[0] >> 1) * 7 + 1;
  data++;
  size--;
  lb_tls *t = lb_tls_new(is_server ? server_ctx : client_ctx, is_server, "localhost");
  if (t == NULL) abort();
  if (!is_server && lb_tls_handshake(t) != LB_EAGAIN) abort();
  drain(t);
  int failed = 0;
  uint8_t plain[2048];
  for (size_t i = 0; i < size; i += step) {
    size_t n = size - i < step ? size - i : step;
    if (lb_tls_feed(t, data + i, n) != (ptrdiff_t)n) abort();
    ptrdiff_t r = lb_tls_handshake_done(t) ? lb_tls_read(t, plain, sizeof plain) : lb_tls_handshake(t);
    if (!ok_code(r)) abort();
    if (r == LB_ETLS || r == LB_ETLSVERIFY) failed = (int)r;
    else if (failed) abort(); /* errors are sticky */
    drain(t);
    if (lb_tls_handshake_done(t) && !failed) lb_tls_write(t, "x", 1);
    drain(t);
  }
  char msg[LB_TLS_ERROR_MAX];
  lb_tls_last_error(t, msg, sizeof msg);
  lb_tls_alpn(t, msg, sizeof msg);
  lb_tls_free(t);
  return 0;
}

/* test_tls.c: lb_tls client and server run against each other in memory.
 * The certificates are made here: a test CA, leaves for "localhost",
 * "other.test" and "*.wild.test", a client certificate, and a second CA
 * that nobody trusts. */
#include "lb_test.h"
#include "lowbit/lb_tls.h"
#include "tls_pem.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ---- certificates -------------------------------------------------------- */

typedef struct pair {
  EVP_PKEY *key;
  X509 *cert;
  char *cert_pem;
  char *key_pem;
} pair;

static pair ca, bad_ca, srv, other, wild, bad_srv, client_cert, cn_only;

static void add_ext(X509 *x, X509V3_CTX *v, int nid, const char *value) {
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v, nid, value);
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

static pair make(const char *cn, const char *san, const pair *issuer, int is_ca) {
  static long serial = 1;
  pair p;
  p.key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, p.key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert) : n);
  X509V3_CTX v;
  X509V3_set_ctx_nodb(&v);
  X509V3_set_ctx(&v, issuer ? issuer->cert : x, x, NULL, NULL, 0);
  add_ext(x, &v, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (is_ca) add_ext(x, &v, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (san) add_ext(x, &v, NID_subject_alt_name, san);
  X509_sign(x, issuer ? issuer->key : p.key, EVP_sha256());
  p.cert = x;
  p.cert_pem = pem_of(x, NULL);
  p.key_pem = pem_of(NULL, p.key);
  return p;
}

static void free_pair(pair *p) {
  EVP_PKEY_free(p->key);
  X509_free(p->cert);
  free(p->cert_pem);
  free(p->key_pem);
}

static void make_all(void) {
  ca = make("lowbit test CA", NULL, NULL, 1);
  bad_ca = make("untrusted CA", NULL, NULL, 1);
  srv = make("localhost", "DNS:localhost,IP:127.0.0.1", &ca, 0);
  other = make("other.test", "DNS:other.test", &ca, 0);
  wild = make("*.wild.test", "DNS:*.wild.test", &ca, 0);
  bad_srv = make("localhost", "DNS:localhost", &bad_ca, 0);
  client_cert = make("client one", NULL, &ca, 0);
  cn_only = make("localhost", NULL, &ca, 0);
}

/* ---- contexts and pumping ----------------------------------------------- */

static lb_tls_ctx *server_ctx(const pair *p) {
  lb_tls_ctx *c = lb_tls_ctx_new(1);
  int rc = lb_tls_ctx_use_cert_pem(c, p->cert_pem, strlen(p->cert_pem), p->key_pem, strlen(p->key_pem));
  LB_CHECK_EQ(rc, 0);
  return c;
}

static lb_tls_ctx *client_ctx(const pair *trust) {
  lb_tls_ctx *c = lb_tls_ctx_new(0);
  if (trust) LB_CHECK_EQ(lb_tls_ctx_load_ca_pem(c, trust->cert_pem, strlen(trust->cert_pem)), 0);
  return c;
}

/* Moves a's pending output into b, `step` bytes per feed (0: all at once). */
static size_t pump(lb_tls *a, lb_tls *b, size_t step) {
  uint8_t buf[65536];
  size_t moved = 0;
  while (lb_tls_pending_out(a) > 0) {
    ptrdiff_t n = lb_tls_take_out(a, buf, step ? step : sizeof buf);
    if (n <= 0) break;
    LB_CHECK_EQ(lb_tls_feed(b, buf, (size_t)n), n);
    moved += (size_t)n;
  }
  return moved;
}

/* Runs both handshakes to the end. Returns 0 when both completed; else the
 * first failing side's code lands in *cc / *sc. */
static int handshake(lb_tls *c, lb_tls *s, size_t step, int *cc, int *sc) {
  int rc = LB_EAGAIN, rs = LB_EAGAIN;
  for (int round = 0; round < 50; round++) {
    if (rc == LB_EAGAIN) rc = lb_tls_handshake(c);
    pump(c, s, step);
    if (rs == LB_EAGAIN) rs = lb_tls_handshake(s);
    pump(s, c, step);
    if ((rc == 0 && rs == 0) || (rc < 0 && rc != LB_EAGAIN) || (rs < 0 && rs != LB_EAGAIN)) break;
  }
  if (cc) *cc = rc;
  if (sc) *sc = rs;
  return rc == 0 && rs == 0 ? 0 : -1;
}

/* Sends n bytes from a to b and checks they arrive intact. */
static void transfer(lb_tls *a, lb_tls *b, size_t n, size_t step) {
  uint8_t *src = malloc(n), *dst = malloc(n);
  for (size_t i = 0; i < n; i++) src[i] = (uint8_t)(i * 31 + (i >> 8));
  size_t sent = 0, got = 0;
  while (got < n) {
    if (sent < n) {
      size_t k = n - sent > 100000 ? 100000 : n - sent;
      LB_CHECK_EQ(lb_tls_write(a, src + sent, k), (ptrdiff_t)k);
      sent += k;
    }
    pump(a, b, step);
    for (;;) {
      ptrdiff_t r = lb_tls_read(b, dst + got, n - got);
      if (r == LB_EAGAIN) break;
      LB_CHECK(r > 0);
      if (r <= 0) { got = n; break; }
      got += (size_t)r;
      if (got == n) break;
    }
    pump(b, a, 0); /* post-handshake replies, if any */
  }
  LB_CHECK(memcmp(src, dst, n) == 0);
  free(src);
  free(dst);
}

static void text(ptrdiff_t (*fn)(const lb_tls *, char *, size_t), const lb_tls *t, char *out) {
  ptrdiff_t n = fn(t, out, 256);
  if (n <= 0) out[0] = '\0';
}

/* ---- tests ---------------------------------------------------------------- */

static void test_handshake_alpn_and_data(void) {
  lb_tls_ctx *sc = server_ctx(&srv);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, (const uint8_t *)"\x08http/1.1", 9), 0);
  lb_tls_ctx *cc = client_ctx(&ca);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(cc, (const uint8_t *)"\x02h2\x08http/1.1", 12), 0);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK(c != NULL && s != NULL);
  LB_CHECK_EQ(lb_tls_version_id(c), 0);
  LB_CHECK_EQ(lb_tls_handshake(c), LB_EAGAIN);
  LB_CHECK(lb_tls_pending_out(c) > 0); /* the ClientHello */
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  LB_CHECK(lb_tls_handshake_done(c) && lb_tls_handshake_done(s));
  LB_CHECK(strcmp(lb_tls_version(c), "TLSv1.3") == 0);
  LB_CHECK_EQ(lb_tls_version_id(s), LB_TLS_VERSION_1_3);
  char buf[256];
  text(lb_tls_alpn, c, buf);
  LB_CHECK(strcmp(buf, "http/1.1") == 0);
  text(lb_tls_alpn, s, buf);
  LB_CHECK(strcmp(buf, "http/1.1") == 0);
  LB_CHECK_EQ(lb_tls_alpn(s, buf, 4), LB_ENOSPACE);
  text(lb_tls_server_name, s, buf);
  LB_CHECK(strcmp(buf, "localhost") == 0);
  text(lb_tls_peer_subject, c, buf);
  LB_CHECK(strcmp(buf, "CN=localhost") == 0);
  LB_CHECK_EQ(lb_tls_peer_subject(s, buf, sizeof buf), 0); /* no client cert */

  LB_CHECK_EQ(lb_tls_write(c, "hello", 5), 5);
  pump(c, s, 0);
  ptrdiff_t n = lb_tls_read(s, buf, sizeof buf);
  LB_CHECK_MEM(buf, "hello", n);
  LB_CHECK_EQ(lb_tls_read(s, buf, sizeof buf), LB_EAGAIN);
  LB_CHECK_EQ(lb_tls_write(s, "world!", 6), 6);
  pump(s, c, 0);
  /* small caps: one byte at a time, the rest stays readable */
  LB_CHECK_EQ(lb_tls_read(c, buf, 1), 1);
  LB_CHECK_EQ(buf[0], 'w');
  LB_CHECK_EQ(lb_tls_readable(c), 5);
  LB_CHECK_EQ(lb_tls_read(c, buf, sizeof buf), 5);
  LB_CHECK_MEM(buf, "orld!", 5);
  LB_CHECK_EQ(lb_tls_read(c, buf, 0), LB_EINVAL);

  transfer(c, s, 3 << 20, 0);
  transfer(s, c, 3 << 20, 0);
  LB_CHECK_EQ(lb_tls_partial_input(c), 0);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_byte_by_byte(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 1, NULL, NULL), 0);
  transfer(c, s, 40000, 1);
  transfer(s, c, 40000, 7);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_partial_record(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  uint8_t rec[1024], buf[64];
  pump(s, c, 0);
  while (lb_tls_read(c, buf, sizeof buf) > 0) {}
  LB_CHECK_EQ(lb_tls_write(s, "abc", 3), 3);
  ptrdiff_t n = lb_tls_take_out(s, rec, sizeof rec);
  LB_CHECK(n > 10);
  /* every truncated prefix of a record: "need more", and partial input */
  for (ptrdiff_t i = 0; i < n - 1; i++) {
    LB_CHECK_EQ(lb_tls_feed(c, rec + i, 1), 1);
    LB_CHECK_EQ(lb_tls_read(c, buf, sizeof buf), LB_EAGAIN);
    LB_CHECK_EQ(lb_tls_partial_input(c), 1);
  }
  LB_CHECK_EQ(lb_tls_feed(c, rec + n - 1, 1), 1);
  LB_CHECK(lb_tls_read_bound(c) >= 3); /* a buffer this big takes it all */
  { ptrdiff_t got_ = lb_tls_read(c, buf, sizeof buf); LB_CHECK_MEM(buf, "abc", got_); }
  LB_CHECK_EQ(lb_tls_partial_input(c), 0);
  LB_CHECK_EQ(lb_tls_read_bound(c), 0);
  /* two records fed at once, read through a buffer of the bound's size */
  LB_CHECK_EQ(lb_tls_write(s, "hello", 5), 5);
  LB_CHECK_EQ(lb_tls_write(s, "world", 5), 5);
  pump(s, c, 0);
  size_t bound = lb_tls_read_bound(c);
  LB_CHECK(bound >= 10 && bound <= sizeof rec);
  LB_CHECK_EQ(lb_tls_read(c, rec, bound), 10);
  LB_CHECK_MEM(rec, "helloworld", 10);
  LB_CHECK_EQ(lb_tls_read_bound(c), 0);
  LB_CHECK_EQ(lb_tls_read(c, buf, sizeof buf), LB_EAGAIN);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_truncated_client_hello(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  lb_tls *c = lb_tls_new(cc, 0, "localhost");
  LB_CHECK_EQ(lb_tls_handshake(c), LB_EAGAIN);
  uint8_t hello[4096];
  ptrdiff_t n = lb_tls_take_out(c, hello, sizeof hello);
  LB_CHECK(n > 100);
  for (ptrdiff_t i = 0; i < n; i++) {
    lb_tls *s = lb_tls_new(sc, 1, NULL);
    LB_CHECK_EQ(lb_tls_feed(s, hello, (size_t)i), i);
    LB_CHECK_EQ(lb_tls_handshake(s), LB_EAGAIN);
    LB_CHECK_EQ(lb_tls_pending_out(s), 0);
    lb_tls_free(s);
  }
  lb_tls_free(c);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_tls12(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  LB_CHECK_EQ(lb_tls_ctx_set_versions(cc, 0, LB_TLS_VERSION_1_2), 0);
  LB_CHECK_EQ(lb_tls_ctx_set_versions(cc, LB_TLS_VERSION_1_3, LB_TLS_VERSION_1_2), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_set_versions(cc, 0x0301, 0), LB_EINVAL);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  LB_CHECK(strcmp(lb_tls_version(s), "TLSv1.2") == 0);
  transfer(c, s, 100000, 0);
  transfer(s, c, 100000, 0);
  lb_tls_free(c);
  lb_tls_free(s);
  /* a 1.3-only server refuses a 1.2-only client */
  LB_CHECK_EQ(lb_tls_ctx_set_versions(sc, LB_TLS_VERSION_1_3, 0), 0);
  c = lb_tls_new(cc, 0, "localhost");
  s = lb_tls_new(sc, 1, NULL);
  int rc, rs;
  LB_CHECK(handshake(c, s, 0, &rc, &rs) != 0);
  LB_CHECK_EQ(rs, LB_ETLS);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

/* Connects a client with server_name to sc; returns the handshake result
 * on the client side and the peer subject in subj. */
static int sni_try(lb_tls_ctx *sc, lb_tls_ctx *cc, const char *name, char *subj, char *alpn) {
  lb_tls *c = lb_tls_new(cc, 0, name), *s = lb_tls_new(sc, 1, NULL);
  int rc, rs;
  handshake(c, s, 0, &rc, &rs);
  text(lb_tls_peer_subject, c, subj);
  if (alpn) text(lb_tls_alpn, s, alpn);
  lb_tls_free(c);
  lb_tls_free(s);
  return rc;
}

static void test_sni_registry(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *oc = server_ctx(&other), *wc = server_ctx(&wild);
  lb_tls_ctx *cc = client_ctx(&ca);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, (const uint8_t *)"\x08http/1.1", 9), 0);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(cc, (const uint8_t *)"\x08http/1.1", 9), 0);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "Other.Test", oc), 0);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "*.wild.test", wc), 0);
  /* misuse */
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "bad name", oc), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "", oc), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "*.", oc), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "a.*.test", oc), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "self.test", sc), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(oc, "x.test", sc), LB_EINVAL); /* sc has a registry */
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "x.test", cc), LB_EINVAL); /* a client ctx */
  /* the registry holds its own references */
  lb_tls_ctx_free(oc);
  lb_tls_ctx_free(wc);

  char subj[256], alpn[256];
  LB_CHECK_EQ(sni_try(sc, cc, "other.test", subj, alpn), 0);
  LB_CHECK(strcmp(subj, "CN=other.test") == 0);
  LB_CHECK(strcmp(alpn, "http/1.1") == 0); /* the child inherits the ALPN list */
  LB_CHECK_EQ(sni_try(sc, cc, "OTHER.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=other.test") == 0);
  LB_CHECK_EQ(sni_try(sc, cc, "a.wild.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=*.wild.test") == 0);
  LB_CHECK_EQ(sni_try(sc, cc, "localhost", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=localhost") == 0);
  /* a wildcard covers one label only: these get the default cert (seen
   * by a client that does not verify), which does not match the name */
  lb_tls_ctx *any = lb_tls_ctx_new(0);
  lb_tls_ctx_set_verify(any, LB_TLS_VERIFY_NONE);
  LB_CHECK_EQ(sni_try(sc, any, "a.b.wild.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=localhost") == 0);
  LB_CHECK_EQ(sni_try(sc, any, "wild.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=localhost") == 0);
  LB_CHECK_EQ(sni_try(sc, cc, "a.b.wild.test", subj, NULL), LB_ETLSVERIFY);
  LB_CHECK_EQ(sni_try(sc, any, "unknown.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=localhost") == 0);
  /* replacing a name's context */
  lb_tls_ctx *oc2 = server_ctx(&wild);
  LB_CHECK_EQ(lb_tls_ctx_add_sni(sc, "other.test", oc2), 0);
  lb_tls_ctx_free(oc2);
  LB_CHECK_EQ(sni_try(sc, any, "other.test", subj, NULL), 0);
  LB_CHECK(strcmp(subj, "CN=*.wild.test") == 0);
  LB_CHECK_EQ(sni_try(sc, cc, "other.test", subj, NULL), LB_ETLSVERIFY);
  lb_tls_ctx_free(any);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_verify_failures(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *bc = server_ctx(&bad_srv), *cc = client_ctx(&ca);
  char msg[256];
  int rc, rs;

  /* wrong host name */
  lb_tls *c = lb_tls_new(cc, 0, "wrong.test"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, &rs) != 0);
  LB_CHECK_EQ(rc, LB_ETLSVERIFY);
  text(lb_tls_last_error, c, msg);
  LB_CHECK(strcmp(msg, "certificate verify failed: hostname mismatch") == 0);
  /* the client's alert reached the server */
  LB_CHECK_EQ(rs, LB_ETLS);
  text(lb_tls_last_error, s, msg);
  LB_CHECK(strstr(msg, "alert") != NULL);
  LB_CHECK_EQ(lb_tls_handshake(c), LB_ETLSVERIFY); /* sticky */
  LB_CHECK_EQ(lb_tls_write(c, "x", 1), LB_ETLSVERIFY);
  LB_CHECK_EQ(lb_tls_shutdown(c), LB_ETLSVERIFY);
  lb_tls_free(c);
  lb_tls_free(s);

  /* IP literals are checked against IP SANs (and sent without SNI) */
  c = lb_tls_new(cc, 0, "127.0.0.1");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  LB_CHECK_EQ(lb_tls_server_name(s, msg, sizeof msg), 0);
  lb_tls_free(c);
  lb_tls_free(s);
  c = lb_tls_new(cc, 0, "127.0.0.2");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
  LB_CHECK_EQ(rc, LB_ETLSVERIFY);
  text(lb_tls_last_error, c, msg);
  LB_CHECK(strstr(msg, "IP address mismatch") != NULL);
  lb_tls_free(c);
  lb_tls_free(s);

  /* untrusted CA */
  c = lb_tls_new(cc, 0, "localhost");
  s = lb_tls_new(bc, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
  LB_CHECK_EQ(rc, LB_ETLSVERIFY);
  text(lb_tls_last_error, c, msg);
  LB_CHECK(strcmp(msg, "certificate verify failed: unable to get local issuer certificate") == 0);
  lb_tls_free(c);
  lb_tls_free(s);

  /* a self-signed leaf */
  lb_tls_ctx *self = server_ctx(&bad_ca);
  c = lb_tls_new(cc, 0, "untrusted CA");
  s = lb_tls_new(self, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
  text(lb_tls_last_error, c, msg);
  LB_CHECK(strstr(msg, "self-signed certificate") != NULL);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(self);

  /* insecure skip verify accepts all of it */
  lb_tls_ctx *ic = lb_tls_ctx_new(0);
  LB_CHECK_EQ(lb_tls_ctx_set_verify(ic, LB_TLS_VERIFY_NONE), 0);
  LB_CHECK_EQ(lb_tls_ctx_set_verify(ic, 7), LB_EINVAL);
  c = lb_tls_new(ic, 0, "wrong.test");
  s = lb_tls_new(bc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(ic);

  /* the system store does not know the test CA */
  lb_tls_ctx *sys = lb_tls_ctx_new(0);
  c = lb_tls_new(sys, 0, "localhost");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
  LB_CHECK_EQ(rc, LB_ETLSVERIFY);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sys);

  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(bc);
  lb_tls_ctx_free(cc);
}

/* A name only in the subject's CN is no name (RFC 6125 6.4.4, as Go). */
static void test_cn_only_refused(void) {
  lb_tls_ctx *sc = server_ctx(&cn_only), *cc = client_ctx(&ca);
  char msg[256];
  int rc;
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
  LB_CHECK_EQ(rc, LB_ETLSVERIFY);
  text(lb_tls_last_error, c, msg);
  LB_CHECK(strcmp(msg, "certificate verify failed: hostname mismatch") == 0);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

/* Default client contexts share one system store, loaded once; a context
 * that then adds a CA of its own gets its own store, and the shared one
 * does not learn that CA. */
static void test_system_store_shared(void) {
  lb_tls_ctx *sc = server_ctx(&srv);
  long before = lb_tls_system_store_loads();
  lb_tls_ctx *a = lb_tls_ctx_new(0), *b = lb_tls_ctx_new(0);
  lb_tls *ca_ = lb_tls_new(a, 0, "localhost"), *cb = lb_tls_new(b, 0, "localhost");
  LB_CHECK(ca_ != NULL && cb != NULL);
  LB_CHECK(lb_tls_system_store_loads() - before <= 1);
  long loaded = lb_tls_system_store_loads();
  lb_tls_free(ca_);
  lb_tls_free(cb);
  /* a trusts the test CA as well now */
  LB_CHECK_EQ(lb_tls_ctx_load_ca_pem(a, ca.cert_pem, strlen(ca.cert_pem)), 0);
  int rc;
  lb_tls *c = lb_tls_new(a, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  lb_tls_free(c);
  lb_tls_free(s);
  /* b (and a new default context) still do not */
  lb_tls_ctx *d = lb_tls_ctx_new(0);
  lb_tls_ctx *others[2] = {b, d};
  for (int i = 0; i < 2; i++) {
    c = lb_tls_new(others[i], 0, "localhost");
    s = lb_tls_new(sc, 1, NULL);
    LB_CHECK(handshake(c, s, 0, &rc, NULL) != 0);
    LB_CHECK_EQ(rc, LB_ETLSVERIFY);
    lb_tls_free(c);
    lb_tls_free(s);
  }
  LB_CHECK_EQ(lb_tls_system_store_loads(), loaded);
  lb_tls_ctx_free(a);
  lb_tls_ctx_free(b);
  lb_tls_ctx_free(d);
  lb_tls_ctx_free(sc);
}

static void test_alpn_mismatch(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, (const uint8_t *)"\x02h2", 3), 0);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(cc, (const uint8_t *)"\x08http/1.1", 9), 0);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  int rc, rs;
  LB_CHECK(handshake(c, s, 0, &rc, &rs) != 0);
  LB_CHECK_EQ(rs, LB_ETLS);
  char msg[256];
  text(lb_tls_last_error, s, msg);
  LB_CHECK(strstr(msg, "no application protocol") != NULL);
  LB_CHECK_EQ(lb_tls_handshake(c), LB_ETLS); /* the alert */
  lb_tls_free(c);
  lb_tls_free(s);
  /* a client offering nothing gets no ALPN, and no failure */
  lb_tls_ctx *plain = client_ctx(&ca);
  c = lb_tls_new(plain, 0, "localhost");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  LB_CHECK_EQ(lb_tls_alpn(s, msg, sizeof msg), 0);
  lb_tls_free(c);
  lb_tls_free(s);
  /* malformed lists */
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, (const uint8_t *)"\x09http/1.1", 9), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, (const uint8_t *)"\x00", 1), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, NULL, 3), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_ctx_set_alpn(sc, NULL, 0), 0);
  lb_tls_ctx_free(plain);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_clean_shutdown(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  lb_tls *c = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(lb_tls_shutdown(c), LB_ESTATE); /* not before the handshake */
  LB_CHECK_EQ(lb_tls_write(c, "x", 1), LB_ESTATE);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  char buf[64];
  LB_CHECK_EQ(lb_tls_write(c, "last", 4), 4);
  LB_CHECK_EQ(lb_tls_shutdown(c), 0);
  LB_CHECK_EQ(lb_tls_shutdown(c), 0);
  LB_CHECK_EQ(lb_tls_write(c, "more", 4), LB_ESTATE);
  pump(c, s, 0);
  /* the data first, then the end */
  { ptrdiff_t got_ = lb_tls_read(s, buf, sizeof buf); LB_CHECK_MEM(buf, "last", got_); }
  LB_CHECK_EQ(lb_tls_read(s, buf, sizeof buf), 0);
  LB_CHECK_EQ(lb_tls_peer_closed(s), 1);
  LB_CHECK_EQ(lb_tls_read(s, buf, sizeof buf), 0);
  /* half close: the server may still answer */
  LB_CHECK_EQ(lb_tls_write(s, "reply", 5), 5);
  LB_CHECK_EQ(lb_tls_shutdown(s), 0);
  pump(s, c, 0);
  { ptrdiff_t got_ = lb_tls_read(c, buf, sizeof buf); LB_CHECK_MEM(buf, "reply", got_); }
  LB_CHECK_EQ(lb_tls_read(c, buf, sizeof buf), 0);
  LB_CHECK_EQ(lb_tls_peer_closed(c), 1);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_garbage(void) {
  lb_tls_ctx *sc = server_ctx(&srv), *cc = client_ctx(&ca);
  char msg[256];
  /* plain HTTP to a TLS port */
  lb_tls *s = lb_tls_new(sc, 1, NULL);
  const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  lb_tls_feed(s, req, strlen(req));
  LB_CHECK_EQ(lb_tls_handshake(s), LB_ETLS);
  text(lb_tls_last_error, s, msg);
  LB_CHECK(msg[0] != '\0');
  LB_CHECK_EQ(lb_tls_read(s, msg, sizeof msg), LB_ETLS);
  lb_tls_free(s);
  /* pseudo-random bytes, many seeds, fed whole and in pieces */
  uint32_t x = 12345;
  for (int round = 0; round < 200; round++) {
    uint8_t junk[600];
    for (size_t i = 0; i < sizeof junk; i++) { x = x * 1103515245u + 12345u; junk[i] = (uint8_t)(x >> 16); }
    if (round % 2) junk[0] = 0x16, junk[1] = 0x03, junk[2] = 0x01; /* looks like a handshake record */
    s = lb_tls_new(sc, 1, NULL);
    int r = LB_EAGAIN;
    for (size_t i = 0; i < sizeof junk && r == LB_EAGAIN; i += 37) {
      lb_tls_feed(s, junk + i, sizeof junk - i < 37 ? sizeof junk - i : 37);
      r = lb_tls_handshake(s);
    }
    LB_CHECK(r == LB_ETLS || r == LB_EAGAIN);
    uint8_t out[4096];
    while (lb_tls_take_out(s, out, sizeof out) > 0) {}
    lb_tls_free(s);
  }
  /* garbage after a good handshake breaks the connection, not the process */
  lb_tls *c = lb_tls_new(cc, 0, "localhost");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  uint8_t rec[] = { 0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
  lb_tls_feed(s, rec, sizeof rec);
  LB_CHECK_EQ(lb_tls_read(s, msg, sizeof msg), LB_ETLS);
  text(lb_tls_last_error, s, msg);
  LB_CHECK(strstr(msg, "bad record mac") != NULL || strstr(msg, "decrypt") != NULL);
  LB_CHECK_EQ(lb_tls_write(s, "x", 1), LB_ETLS);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(cc);
}

static void test_client_certificates(void) {
  lb_tls_ctx *sc = server_ctx(&srv);
  LB_CHECK_EQ(lb_tls_ctx_load_ca_pem(sc, ca.cert_pem, strlen(ca.cert_pem)), 0);
  LB_CHECK_EQ(lb_tls_ctx_set_verify(sc, LB_TLS_VERIFY_REQUIRE), 0);
  lb_tls_ctx *anon = client_ctx(&ca);
  lb_tls_ctx *named = client_ctx(&ca);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_pem(named, client_cert.cert_pem, strlen(client_cert.cert_pem),
                                      client_cert.key_pem, strlen(client_cert.key_pem)), 0);
  char buf[256];
  int rc, rs;
  /* no certificate: the server refuses (in TLS 1.3 the client learns it
   * from an alert after its own handshake has finished) */
  lb_tls *c = lb_tls_new(anon, 0, "localhost"), *s = lb_tls_new(sc, 1, NULL);
  handshake(c, s, 0, &rc, &rs);
  LB_CHECK_EQ(rs, LB_ETLS);
  LB_CHECK_EQ(lb_tls_read(c, buf, sizeof buf), LB_ETLS);
  text(lb_tls_last_error, c, buf);
  LB_CHECK(strstr(buf, "alert") != NULL);
  lb_tls_free(c);
  lb_tls_free(s);
  c = lb_tls_new(named, 0, "localhost");
  s = lb_tls_new(sc, 1, NULL);
  LB_CHECK_EQ(handshake(c, s, 0, NULL, NULL), 0);
  text(lb_tls_peer_subject, s, buf);
  LB_CHECK(strcmp(buf, "CN=client one") == 0);
  lb_tls_free(c);
  lb_tls_free(s);
  lb_tls_ctx_free(sc);
  lb_tls_ctx_free(anon);
  lb_tls_ctx_free(named);
}

static char *write_tmp(const char *content) {
  char *path = malloc(64);
  strcpy(path, "/tmp/lb_tls_testXXXXXX");
  int fd = mkstemp(path);
  ssize_t w = write(fd, content, strlen(content));
  (void)w;
  close(fd);
  return path;
}

static void test_context_errors_and_files(void) {
  char msg[256];
  lb_tls_ctx *c = lb_tls_ctx_new(1);
  LB_CHECK_EQ(lb_tls_ctx_is_server(c), 1);
  LB_CHECK_EQ(lb_tls_ctx_last_error(c, msg, sizeof msg), 0);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_pem(c, "junk", 4, srv.key_pem, strlen(srv.key_pem)), LB_ECERT);
  LB_CHECK(lb_tls_ctx_last_error(c, msg, sizeof msg) > 0);
  LB_CHECK(strncmp(msg, "certificate: ", 13) == 0);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_pem(c, srv.cert_pem, strlen(srv.cert_pem), other.key_pem,
                                      strlen(other.key_pem)), LB_ECERT);
  lb_tls_ctx_last_error(c, msg, sizeof msg);
  LB_CHECK(strstr(msg, "mismatch") != NULL);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_pem(c, srv.cert_pem, strlen(srv.cert_pem), "nope", 4), LB_ECERT);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_file(c, "/nonexistent/cert.pem", "/nonexistent/key.pem"), LB_ECERT);
  lb_tls_ctx_last_error(c, msg, sizeof msg);
  LB_CHECK(strstr(msg, "certificate file") != NULL);
  LB_CHECK_EQ(lb_tls_ctx_load_ca_pem(c, "nothing here", 12), LB_ECERT);
  LB_CHECK_EQ(lb_tls_ctx_load_ca_file(c, "/nonexistent/ca.pem"), LB_ECERT);
  LB_CHECK_EQ(lb_tls_ctx_add_chain_pem(c, "", 0), LB_ECERT);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_pem(c, NULL, 0, NULL, 0), LB_EINVAL);
  LB_CHECK(lb_tls_new(c, 0, NULL) == NULL); /* role mismatch */
  LB_CHECK(lb_tls_new(NULL, 1, NULL) == NULL);
  /* short buffer: truncated, NUL terminated */
  LB_CHECK_EQ(lb_tls_ctx_last_error(c, msg, 5), 4);
  LB_CHECK_EQ(strlen(msg), 4);

  /* files, and a chain sent after the leaf */
  char *leaf_with_chain = malloc(strlen(srv.cert_pem) + strlen(ca.cert_pem) + 1);
  strcpy(leaf_with_chain, srv.cert_pem);
  strcat(leaf_with_chain, ca.cert_pem);
  char *cert = write_tmp(leaf_with_chain), *key = write_tmp(srv.key_pem), *cap = write_tmp(ca.cert_pem);
  LB_CHECK_EQ(lb_tls_ctx_use_cert_file(c, cert, key), 0);
  LB_CHECK_EQ(lb_tls_ctx_add_chain_pem(c, ca.cert_pem, strlen(ca.cert_pem)), 0);
  lb_tls_ctx *cc = lb_tls_ctx_new(0);
  LB_CHECK_EQ(lb_tls_ctx_is_server(cc), 0);
  LB_CHECK_EQ(lb_tls_ctx_load_ca_file(cc, cap), 0);
  lb_tls *cl = lb_tls_new(cc, 0, "localhost"), *s = lb_tls_new(c, 1, NULL);
  /* the contexts may go first: connections hold references */
  lb_tls_ctx_free(c);
  lb_tls_ctx_free(cc);
  LB_CHECK_EQ(handshake(cl, s, 0, NULL, NULL), 0);
  transfer(cl, s, 1000, 0);
  lb_tls_free(cl);
  lb_tls_free(s);
  unlink(cert);
  unlink(key);
  unlink(cap);
  free(cert);
  free(key);
  free(cap);
  free(leaf_with_chain);
  /* NULLs are ignored or refused, never crash */
  lb_tls_free(NULL);
  lb_tls_ctx_free(NULL);
  LB_CHECK_EQ(lb_tls_handshake(NULL), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_feed(NULL, "x", 1), LB_EINVAL);
  LB_CHECK_EQ(lb_tls_pending_out(NULL), 0);
  LB_CHECK(strcmp(lb_tls_version(NULL), "") == 0);
}

int main(void) {
  make_all();
  LB_RUN(test_handshake_alpn_and_data);
  LB_RUN(test_byte_by_byte);
  LB_RUN(test_partial_record);
  LB_RUN(test_truncated_client_hello);
  LB_RUN(test_tls12);
  LB_RUN(test_sni_registry);
  LB_RUN(test_verify_failures);
  LB_RUN(test_alpn_mismatch);
  LB_RUN(test_cn_only_refused);
  LB_RUN(test_system_store_shared);
  LB_RUN(test_clean_shutdown);
  LB_RUN(test_garbage);
  LB_RUN(test_client_certificates);
  LB_RUN(test_context_errors_and_files);
  free_pair(&ca);
  free_pair(&bad_ca);
  free_pair(&srv);
  free_pair(&other);
  free_pair(&wild);
  free_pair(&bad_srv);
  free_pair(&client_cert);
  free_pair(&cn_only);
  return LB_DONE();
}

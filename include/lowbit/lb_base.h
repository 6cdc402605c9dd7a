/*
 * lb_base.h: what every lowbit C core shares.
 *
 * - The error-code table. Calls that work on bytes return ptrdiff_t: >= 0 is
 *   the number of bytes consumed or produced, < 0 is one of the LB_E* codes
 *   below. The range of a code tells its kind:
 *       -1 ..  -99   again: not an error, the call needs more input or room
 *     -100 .. -199   protocol: the peer sent bytes that break the protocol
 *     -200 .. -299   usage: the caller passed something invalid
 *     -300 .. -399   limit: a configured or built-in limit was exceeded
 *     -400 .. -499   fatal: out of memory, internal failure
 * - lb_buf, a growable byte buffer the cores use for scratch space that must
 *   outlive one call. It is the only place a core allocates.
 *
 * This header is also fed to the FFI declaration generator (tools/gencdef.lua):
 * keep it to plain C that LuaJIT's ffi.cdef understands outside the
 * LB_CDEF guards.
 */
#ifndef LOWBIT_LB_BASE_H
#define LOWBIT_LB_BASE_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#endif

/* X(name, value, message) */
#define LB_ERRNO_MAP(X)                                                        \
  X(EAGAIN,        -1, "need more input")                                     \
  X(ENOSPACE,      -2, "output buffer too small")                             \
  X(EPROTO,      -100, "protocol violation")                                  \
  X(EMETHOD,     -101, "invalid method")                                      \
  X(EURL,        -102, "invalid request target")                              \
  X(EVERSION,    -103, "unsupported protocol version")                        \
  X(EHEADER,     -104, "invalid header field")                                \
  X(EHOST,       -105, "missing or invalid Host header")                      \
  X(ECONTENTLEN, -106, "invalid Content-Length")                              \
  X(ETRANSFER,   -107, "unsupported Transfer-Encoding")                       \
  X(ECHUNK,      -108, "invalid chunked encoding")                            \
  X(ESTATUS,     -109, "invalid status line")                                 \
  X(EOPCODE,     -110, "invalid or reserved opcode")                          \
  X(ERSV,        -111, "reserved bits set")                                   \
  X(EMASK,       -112, "wrong masking")                                       \
  X(ECONTROL,    -113, "invalid control frame")                               \
  X(EFRAGMENT,   -114, "invalid fragmentation")                               \
  X(EUTF8,       -115, "invalid UTF-8")                                       \
  X(ECLOSECODE,  -116, "invalid close code")                                  \
  X(EPREFIX,     -117, "bad frame prefix")                                    \
  X(ECHECKSUM,   -118, "checksum mismatch")                                   \
  X(EDEFLATE,    -119, "invalid compressed data")                             \
  X(ETLS,        -130, "TLS protocol error")                                  \
  X(ETLSVERIFY,  -131, "TLS certificate verification failed")                 \
  X(ESTRING,     -160, "unterminated string literal")                       \
  X(ECOMMENT,    -161, "unterminated comment")                              \
  X(EREGEXP,     -162, "unterminated regular expression")                   \
  X(ETEMPLATE,   -163, "unterminated template literal")                     \
  X(EURLTOKEN,   -164, "unterminated url()")                                \
  X(EINVAL,      -200, "invalid argument")                                    \
  X(ESTATE,      -201, "call not valid in this state")                        \
  X(EFORMAT,     -202, "invalid format description")                          \
  X(ECERT,       -210, "unusable certificate or key")                         \
  X(ECRONFIELDS, -220, "cron: not 5 fields nor a known descriptor")           \
  X(ECRONSYNTAX, -221, "cron: invalid field syntax")                          \
  X(ECRONRANGE,  -222, "cron: value out of range")                            \
  X(ECRONNEVER,  -223, "cron: expression never fires")                        \
  X(ETZIF,       -224, "invalid or unsupported TZif data")                    \
  X(ETOOLARGE,   -300, "message too large")                                   \
  X(EHEADERSIZE, -301, "header section too large")                            \
  X(ETOOMANY,    -302, "too many items")                                      \
  X(EDEPTH,      -303, "nesting too deep")                                    \
  X(ECRONNONE,   -310, "no fire time within the search horizon")              \
  X(ENOMEM,      -400, "out of memory")                                       \
  X(EINTERNAL,   -401, "internal error")

enum lb_errno {
#define LB__ERR_ENUM(name, value, msg) LB_##name = value,
  LB_ERRNO_MAP(LB__ERR_ENUM)
#undef LB__ERR_ENUM
  LB_OK = 0
};

/* Human-readable message for an LB_E* code; "unknown error" for any other
 * value. The string is static. */
const char *lb_strerror(int code);

/* The code's name without the LB_ prefix ("EAGAIN"), or "UNKNOWN". Static. */
const char *lb_err_name(int code);

/* Library version as "MAJOR.MINOR.PATCH". Static. */
const char *lb_version(void);

/*
 * A growable byte buffer. A zero-filled lb_buf is a valid empty buffer.
 * `data` is valid until the next call that may grow the buffer (reserve,
 * append) or lb_buf_free.
 */
typedef struct lb_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} lb_buf;

/* Makes room for at least `extra` more bytes past len. Returns a pointer to
 * the first free byte, or NULL when the allocation fails or len + extra would
 * overflow (the buffer is unchanged then). */
uint8_t *lb_buf_reserve(lb_buf *b, size_t extra);

/* Appends n bytes. Returns 0, or LB_ENOMEM (buffer unchanged). */
int lb_buf_append(lb_buf *b, const void *p, size_t n);

/* Drops the first n bytes (all when n >= len), keeping the capacity. */
void lb_buf_consume(lb_buf *b, size_t n);

/* Empties the buffer, keeping its capacity. */
void lb_buf_reset(lb_buf *b);

/* Releases the memory; the buffer is empty and zero-filled afterwards. */
void lb_buf_free(lb_buf *b);

/* Constant-time comparison of two byte strings of length n: 1 when equal,
 * 0 otherwise. Its running time depends on n only. */
int lb_ct_equal(const void *a, const void *b, size_t n);

/* Sets SIGPIPE to ignored for the process (a write to a peer that went away
 * then fails with EPIPE instead of killing the process). */
void lb_ignore_sigpipe(void);

#endif

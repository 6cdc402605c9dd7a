/*
 * lb_uvread.h: reading a libuv stream without a Lua callback per read.
 *
 * lowbit.net's TCP conns read through this instead of luv's read_start: luv
 * calls into Lua for every read (a Lua string, a closure, a pcall), which is
 * a tenth of the user time of an HTTP request. Here libuv's callbacks stay
 * in C: the bytes go into the reader's own buffer and its id onto a ready
 * list, and the scheduler collects the list once after each loop pass
 * (DESIGN.md "I/O": a connection owned by C on the same uv_loop_t).
 *
 * `ud` is the payload of a luv stream handle userdata: luv keeps there a
 * pointer to the uv_stream_t (older luv kept the handle itself; both are
 * recognized, by checking the handle type and the descriptor). The reader
 * struct belongs to the caller and must stay alive and unmoved from
 * lb_uvread_start until lb_uvread_forget. One thread, one loop.
 */
#ifndef LOWBIT_LB_UVREAD_H
#define LOWBIT_LB_UVREAD_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#endif

typedef struct lb_uvread {
  char *buf;      /* bytes read, not yet taken (malloc'd; NULL when empty) */
  size_t len;     /* bytes in buf */
  size_t cap;     /* size of buf */
  int32_t status; /* 0, or the negative libuv code that ended reading (UV_EOF) */
  int32_t id;     /* the caller's key, reported by lb_uvread_take */
  int32_t fd;     /* the stream's descriptor while registered, else -1 */
  int32_t queued; /* 1 while id is on the ready list */
  void *stream;   /* the uv_stream_t, once found by lb_uvread_start */
  size_t high;    /* reading pauses once len reaches this (0: never) */
  int32_t paused; /* 1 when reading paused at `high` (restart to go on) */
} lb_uvread;

/* Registers r for the stream's descriptor `fd` under the caller's key `id`
 * and starts reading, up to `high` bytes (0: no bound). 0 or a negative
 * libuv code. (The fields are set here, not by the caller: a cdata field
 * set from interpreted Lua costs about a thousand instructions.) */
int lb_uvread_start(void *ud, int fd, lb_uvread *r, int32_t id, size_t high);

/* The descriptor of the TCP or pipe stream behind a luv userdata payload,
 * or -1: also when no lb_uvread_start has told yet how luv lays its
 * handles out (callers then ask luv, as for the first conn). */
int lb_uvread_fileno(void *ud);

/* 1 when the handle behind a luv userdata payload is closing or closed,
 * 0 when not, -1 when luv's layout is not known yet (ask luv). */
int lb_uvread_is_closing(void *ud);

/* Stops reading (bytes already read stay in r). Returns r->queued: 1 while
 * r's id waits on the ready list. */
int lb_uvread_stop(lb_uvread *r);

/* Collecting r's news, in two calls around taking its bytes: the first
 * clears r->queued and returns the count of bytes at r->buf; the second
 * frees them (the caller has copied them) and returns r->status when
 * reading ended (negative), else 1 when it paused at `high`, else 0. */
size_t lb_uvread_collect(lb_uvread *r);
int lb_uvread_collected(lb_uvread *r);

/* Frees r's buffer once the caller has taken len bytes from it. */
void lb_uvread_release(lb_uvread *r);

/* Unregisters r and frees its buffer (before the stream is closed). */
void lb_uvread_forget(lb_uvread *r);

/* Moves up to max ids of readers with news (bytes, EOF or an error) into
 * ids. Returns how many. The caller clears a reader's queued flag when it
 * handles it (an id may belong to a reader forgotten since). */
size_t lb_uvread_take(int32_t *ids, size_t max);

/* The address of the socket `fd` (peer != 0: of its peer) as "ip:port"
 * ("[ip6]:port" for IPv6) in dst, NUL-terminated: its length, or a
 * negative libuv code (UV_ENOTCONN once the peer is gone). One call, no
 * Lua table or string on the way (luv's tcp_getpeername builds both). */
int lb_uvread_sockname(int fd, int peer, char *dst, size_t cap);

/* The name and the message of a libuv error code ("ECONNRESET"). */
const char *lb_uvread_err_name(int code);
const char *lb_uvread_strerror(int code);

#endif

/* lb_cron.c: cron expressions, TZif zones and next-fire search.
 *
 * The search works on the "naive" wall-clock line (seconds since 1970 as if
 * the local clock were UTC): next_wall finds the next matching minute with
 * bit scans over the field masks. A zone maps the UTC line onto wall
 * clocks piecewise: between two transitions the offset is constant, so each
 * such segment is one interval of wall time, searched with next_wall.
 * Civil-date conversions are Howard Hinnant's days_from_civil /
 * civil_from_days (proleptic Gregorian, exact for every int64 day count we
 * allow). */
#include "lowbit/lb_cron.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Calendar                                                                 */

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m) {
  static const uint8_t dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dim[m];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static unsigned weekday(int64_t days) {
  int64_t w = (days + 4) % 7;
  return (unsigned)(w < 0 ? w + 7 : w);
}

/* ---------------------------------------------------------------------- */
/* Parser                                                                   */

static const char MONTHS[] = "janfebmaraprmayjunjulaugsepoctnovdec";
static const char DAYS[] = "sunmontuewedthufrisat";

typedef struct field_def {
  int min, max;
  const char *names; /* 3 letters per value from min, or NULL */
} field_def;

static const field_def FIELDS[5] = {
    {0, 59, NULL}, {0, 23, NULL}, {1, 31, NULL}, {1, 12, MONTHS}, {0, 7, DAYS},
};

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch; }
static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }
static int is_alpha(int ch) { ch = lower(ch); return ch >= 'a' && ch <= 'z'; }
static int is_blank(int ch) { return ch == ' ' || ch == '\t'; }
static int is_space(int ch) { return is_blank(ch) || ch == '\n' || ch == '\r'; }

/* Reads a decimal number (at most 4 digits; more saturate to 9999, which is
 * out of every range) or a 3-letter name. */
static int parse_value(const char **pp, const char *e, const field_def *fd, int *v) {
  const char *p = *pp;
  if (p < e && is_digit(*p)) {
    int n = 0;
    while (p < e && is_digit(*p)) {
      n = n * 10 + (*p - '0');
      if (n > 9999) n = 9999;
      p++;
    }
    *pp = p;
    *v = n;
    return 0;
  }
  if (p < e && is_alpha(*p)) {
    const char *s = p;
    while (p < e && is_alpha(*p)) p++;
    if (fd->names == NULL || p - s != 3) return LB_ECRONSYNTAX;
    for (int i = 0; fd->names[3 * i] != '\0'; i++) {
      const char *n = fd->names + 3 * i;
      if (lower(s[0]) == n[0] && lower(s[1]) == n[1] && lower(s[2]) == n[2]) {
        *pp = p;
        *v = fd->min + i;
        return 0;
      }
    }
    return LB_ECRONSYNTAX;
  }
  return LB_ECRONSYNTAX;
}

/* item = `*` | `*` `/` s | a | a `-` b | a `-` b `/` s | a `/` s */
static int parse_item(const char *s, const char *e, const field_def *fd, uint64_t *mask) {
  const char *p = s;
  int lo, hi, step = 1, rc;
  if (p == e) return LB_ECRONSYNTAX; /* empty item: "1,,2", "1," */
  if (*p == '*') {
    lo = fd->min;
    hi = fd->max;
    p++;
    if (p < e && *p != '/') return LB_ECRONSYNTAX;
  } else {
    if ((rc = parse_value(&p, e, fd, &lo)) != 0) return rc;
    hi = lo;
    if (p < e && *p == '-') {
      p++;
      if ((rc = parse_value(&p, e, fd, &hi)) != 0) return rc;
    } else if (p < e && *p == '/') {
      hi = fd->max; /* a/s = a-max/s (robfig, cronie, croniter) */
    }
    if (lo < fd->min || lo > fd->max || hi < fd->min || hi > fd->max) return LB_ECRONRANGE;
    if (lo > hi) return LB_ECRONRANGE; /* no wrap-around: SAT-SUN */
  }
  if (p < e && *p == '/') {
    p++;
    if (p == e || !is_digit(*p)) return LB_ECRONSYNTAX;
    step = 0;
    while (p < e && is_digit(*p)) {
      step = step * 10 + (*p - '0');
      if (step > 9999) step = 9999;
      p++;
    }
    if (step < 1) return LB_ECRONRANGE;
  }
  if (p != e) return LB_ECRONSYNTAX;
  for (int v = lo; v <= hi; v += step) *mask |= (uint64_t)1 << v;
  return 0;
}


/* field = item { `,` item }. On error, *at is the start of the bad item. */
static int parse_field(int idx, const char *s, const char *e, uint64_t *mask, const char **at) {
  const field_def *fd = &FIELDS[idx];
  const char *item = s;
  *mask = 0;
  for (const char *p = s;; p++) {
    if (p == e || *p == ',') {
      int rc = parse_item(item, p, fd, mask);
      if (rc != 0) {
        *at = item;
        return rc;
      }
      if (p == e) return 0;
      item = p + 1;
    }
  }
}

static const struct {
  const char *name, *expr;
} DESCRIPTORS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static int fail(lb_cron *c, int rc, int field, size_t pos) {
  c->err_field = field;
  c->err_pos = (int32_t)pos;
  return rc;
}

/* True when some month of the set has one of the days of month of the set
 * (February counted with 29 days: it fires in leap years). */
static int dom_possible(uint32_t dom, uint32_t month) {
  static const uint8_t maxd[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  for (int m = 1; m <= 12; m++) {
    if (!(month >> m & 1)) continue;
    /* days 1..maxd[m] as bits 1..maxd[m] */
    uint32_t ok = (uint32_t)((((uint64_t)1 << (maxd[m] + 1)) - 1) & ~(uint64_t)1);
    if (dom & ok) return 1;
  }
  return 0;
}

int lb_cron_parse(lb_cron *c, const char *expr, size_t len) {
  if (c == NULL) return LB_EINVAL;
  memset(c, 0, sizeof *c);
  if (expr == NULL && len > 0) return fail(c, LB_EINVAL, 0, 0);
  if (len > 4096) return fail(c, LB_ECRONSYNTAX, 0, 0); /* keeps err_pos in int32 */
  const char *s = expr, *e = expr + len;
  while (s < e && is_space(*s)) s++;
  while (e > s && is_space(e[-1])) e--;
  if (s < e && *s == '@') {
    for (size_t i = 0; i < sizeof DESCRIPTORS / sizeof DESCRIPTORS[0]; i++) {
      const char *n = DESCRIPTORS[i].name;
      size_t nl = strlen(n);
      if ((size_t)(e - s) != nl) continue;
      size_t k = 0;
      while (k < nl && lower(s[k]) == n[k]) k++;
      if (k == nl) return lb_cron_parse(c, DESCRIPTORS[i].expr, strlen(DESCRIPTORS[i].expr));
    }
    /* @reboot is meaningless for a schedule; @every is bs.every(). */
    return fail(c, LB_ECRONFIELDS, 0, (size_t)(s - expr));
  }
  const char *fs[5], *fe[5];
  int n = 0;
  const char *p = s;
  while (p < e) {
    if (n == 5) return fail(c, LB_ECRONFIELDS, 0, (size_t)(p - expr));
    fs[n] = p;
    while (p < e && !is_blank(*p)) p++;
    fe[n++] = p;
    while (p < e && is_blank(*p)) p++;
  }
  if (n != 5) return fail(c, LB_ECRONFIELDS, 0, (size_t)(e - expr));
  uint64_t m[5];
  for (int i = 0; i < 5; i++) {
    const char *at = fs[i];
    int rc = parse_field(i, fs[i], fe[i], &m[i], &at);
    if (rc != 0) return fail(c, rc, i + 1, (size_t)(at - expr));
  }
  c->minute = m[0];
  c->hour = (uint32_t)m[1];
  c->dom = (uint32_t)m[2];
  c->month = (uint32_t)m[3];
  c->dow = (uint32_t)((m[4] | (m[4] >> 7)) & 0x7f); /* 7 is Sunday too */
  if (*fs[2] == '*') c->flags |= LB_CRON_DOM_STAR;
  if (*fs[4] == '*') c->flags |= LB_CRON_DOW_STAR;
  if (*fs[0] != '*' && *fs[1] != '*') c->flags |= LB_CRON_FIXED;
  /* The day is decided by the day of month alone when only the day-of-week
   * field is starred (a starred day of month always holds the 1st). */
  if ((c->flags & (LB_CRON_DOM_STAR | LB_CRON_DOW_STAR)) == LB_CRON_DOW_STAR &&
      !dom_possible(c->dom, c->month)) {
    memset(c, 0, sizeof *c); /* lb_cron_next refuses it then */
    return fail(c, LB_ECRONNEVER, 3, (size_t)(fs[2] - expr));
  }
  c->err_field = 0;
  c->err_pos = 0;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Search on the wall-clock line                                            */

static int day_matches(const lb_cron *c, unsigned d, unsigned wd) {
  int dm = (int)(c->dom >> d & 1), wm = (int)(c->dow >> wd & 1);
  if (c->flags & (LB_CRON_DOM_STAR | LB_CRON_DOW_STAR)) return dm && wm;
  return dm || wm;
}

/* The smallest matching wall time >= w (a multiple of 60) whose day is at
 * most limit (days since 1970). Returns 0 or LB_ECRONNONE. */
static int next_wall(const lb_cron *c, int64_t w, int64_t limit, int64_t *out) {
  int64_t days = floor_div(w, 86400), y;
  unsigned sod = (unsigned)(w - days * 86400), m, d;
  unsigned hour = sod / 3600, min = sod % 3600 / 60;
  civil_from_days(days, &y, &m, &d);
  for (;;) {
    if (days > limit) return LB_ECRONNONE;
    if (!(c->month >> m & 1)) {
      uint32_t rest = c->month & ~(((uint32_t)2 << m) - 1);
      if (rest) {
        m = (unsigned)__builtin_ctz(rest);
      } else {
        y++;
        m = (unsigned)__builtin_ctz(c->month);
      }
      d = 1;
      hour = min = 0;
      days = days_from_civil(y, m, 1);
      continue;
    }
    if (day_matches(c, d, weekday(days))) {
      uint32_t hm = c->hour >> hour;
      if (hm) {
        unsigned h = hour + (unsigned)__builtin_ctz(hm);
        if (h != hour) {
          hour = h;
          min = 0;
        }
        uint64_t mm = c->minute >> min;
        if (mm) {
          min += (unsigned)__builtin_ctzll(mm);
          *out = days * 86400 + (int64_t)(hour * 3600 + min * 60);
          return 0;
        }
        if (++hour < 24) {
          min = 0;
          continue;
        }
      }
    }
    /* next day; when every weekday matches and the day of month must match
     * too, jump straight to the next day of the set ("0 0 29 2 *") */
    hour = min = 0;
    if (c->dow == 0x7f && (c->flags & (LB_CRON_DOM_STAR | LB_CRON_DOW_STAR))) {
      uint32_t rest = c->dom & ~(((uint32_t)2 << d) - 1);
      unsigned nd = rest ? (unsigned)__builtin_ctz(rest) : 32;
      if (nd <= days_in_month(y, m)) {
        days += nd - d;
        d = nd;
        continue;
      }
      days += days_in_month(y, m) - d + 1;
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
      continue;
    }
    days++;
    if (++d > days_in_month(y, m)) {
      d = 1;
      if (++m > 12) {
        m = 1;
        y++;
      }
    }
  }
}

/* ---------------------------------------------------------------------- */
/* Time zones                                                               */

enum { RULE_J = 1, RULE_N = 2, RULE_M = 3 };

typedef struct tz_date {
  int kind;      /* RULE_* */
  int a, b, c;   /* J: a = day 1..365; N: a = day 0..365; M: month a, week b, weekday c */
  int32_t time;  /* seconds after local midnight (may be negative or > 24 h) */
} tz_date;

struct lb_tz {
  int64_t *at;       /* transition times, ascending */
  int32_t *off;      /* offset in effect from at[i] */
  int32_t n;
  int32_t off0;      /* before the first transition */
  int32_t has_rule;  /* the footer gives the rule after the last transition */
  int32_t has_dst;
  int32_t std_off, dst_off;
  tz_date start, end; /* std -> dst, dst -> std */
};

#define T_MIN INT64_MIN
#define T_MAX INT64_MAX
#define T_CLAMP ((int64_t)1 << 60)

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

/* POSIX TZ string parsing (the TZif footer, RFC 8536 section 3.3). */
typedef struct tzs {
  const uint8_t *p, *e;
} tzs;

static int tzs_name(tzs *s) {
  const uint8_t *p = s->p;
  if (p < s->e && *p == '<') {
    p++;
    const uint8_t *b = p;
    while (p < s->e && *p != '>') {
      if (!(is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-')) return -1;
      p++;
    }
    if (p == s->e || p - b < 3) return -1;
    s->p = p + 1;
    return 0;
  }
  const uint8_t *b = p;
  while (p < s->e && is_alpha(*p)) p++;
  if (p - b < 3) return -1;
  s->p = p;
  return 0;
}

static int tzs_num(tzs *s, int max, int *v) {
  const uint8_t *p = s->p;
  int n = 0;
  if (p == s->e || !is_digit(*p)) return -1;
  while (p < s->e && is_digit(*p)) {
    n = n * 10 + (*p - '0');
    if (n > max) return -1;
    p++;
  }
  s->p = p;
  *v = n;
  return 0;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh; seconds. */
static int tzs_hms(tzs *s, int maxh, int32_t *out) {
  int sign = 1, h, m = 0, sec = 0;
  if (s->p < s->e && (*s->p == '+' || *s->p == '-')) sign = *s->p++ == '-' ? -1 : 1;
  if (tzs_num(s, maxh, &h)) return -1;
  if (s->p < s->e && *s->p == ':') {
    s->p++;
    if (tzs_num(s, 59, &m)) return -1;
    if (s->p < s->e && *s->p == ':') {
      s->p++;
      if (tzs_num(s, 59, &sec)) return -1;
    }
  }
  *out = sign * (h * 3600 + m * 60 + sec);
  return 0;
}

static int tzs_date(tzs *s, tz_date *d) {
  if (s->p < s->e && *s->p == 'J') {
    s->p++;
    d->kind = RULE_J;
    if (tzs_num(s, 365, &d->a) || d->a < 1) return -1;
  } else if (s->p < s->e && *s->p == 'M') {
    s->p++;
    d->kind = RULE_M;
    if (tzs_num(s, 12, &d->a) || d->a < 1) return -1;
    if (s->p == s->e || *s->p++ != '.') return -1;
    if (tzs_num(s, 5, &d->b) || d->b < 1) return -1;
    if (s->p == s->e || *s->p++ != '.') return -1;
    if (tzs_num(s, 6, &d->c)) return -1;
  } else {
    d->kind = RULE_N;
    if (tzs_num(s, 365, &d->a)) return -1;
  }
  d->time = 2 * 3600;
  if (s->p < s->e && *s->p == '/') {
    s->p++;
    if (tzs_hms(s, 167, &d->time)) return -1; /* RFC 8536 3.3.1: -167..167 h */
  }
  return 0;
}

static int parse_footer(lb_tz *z, const uint8_t *p, const uint8_t *e) {
  tzs s = {p, e};
  int32_t v;
  if (tzs_name(&s) || tzs_hms(&s, 24, &v)) return -1;
  z->std_off = -v; /* POSIX offsets are positive west of Greenwich */
  z->has_rule = 1;
  if (s.p == s.e) return 0;
  if (tzs_name(&s)) return -1;
  z->has_dst = 1;
  z->dst_off = z->std_off + 3600;
  if (s.p < s.e && *s.p != ',') {
    if (tzs_hms(&s, 24, &v)) return -1;
    z->dst_off = -v;
  }
  if (s.p == s.e) { /* no rule given: the POSIX default is the US rule */
    z->start = (tz_date){RULE_M, 3, 2, 0, 7200};
    z->end = (tz_date){RULE_M, 11, 1, 0, 7200};
    return 0;
  }
  if (*s.p++ != ',' || tzs_date(&s, &z->start)) return -1;
  if (s.p == s.e || *s.p++ != ',' || tzs_date(&s, &z->end)) return -1;
  return s.p == s.e ? 0 : -1;
}

lb_tz *lb_tz_new(const uint8_t *data, size_t len, int *err) {
  int dummy;
  if (err == NULL) err = &dummy;
  *err = LB_ETZIF;
  if (data == NULL) {
    *err = LB_EINVAL;
    return NULL;
  }
  if (len < 44 || memcmp(data, "TZif", 4) != 0) return NULL;
  int version = data[4] == 0 ? 1 : data[4] - '0';
  if (version < 1 || version > 9) return NULL;
  const uint8_t *h = data;
  size_t tsize = 4;
  uint64_t cnt[6], block;
  for (int pass = 0;; pass++) {
    for (int i = 0; i < 6; i++) cnt[i] = be32(h + 20 + 4 * i);
    /* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
    block = cnt[3] * tsize + cnt[3] + cnt[4] * 6 + cnt[5] + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
    if ((uint64_t)(data + len - h) - 44 < block) return NULL;
    if (version == 1 || pass == 1) break;
    h += 44 + block; /* the version 2+ header and 64-bit block follow */
    tsize = 8;
    if ((size_t)(data + len - h) < 44 || memcmp(h, "TZif", 4) != 0) return NULL;
  }
  uint64_t timecnt = cnt[3], typecnt = cnt[4];
  if (cnt[2] != 0) return NULL; /* leap seconds ("right/" zones): not UTC-based */
  if (typecnt == 0 || typecnt > 256) return NULL;
  if ((cnt[1] != 0 && cnt[1] != typecnt) || (cnt[0] != 0 && cnt[0] != typecnt)) return NULL;
  lb_tz *z = calloc(1, sizeof *z + (size_t)timecnt * (sizeof(int64_t) + sizeof(int32_t)));
  if (z == NULL) {
    *err = LB_ENOMEM;
    return NULL;
  }
  z->at = (int64_t *)(void *)(z + 1);
  z->off = (int32_t *)(void *)(z->at + timecnt);
  z->n = (int32_t)timecnt;
  const uint8_t *times = h + 44, *idx = times + timecnt * tsize, *types = idx + timecnt;
  for (uint64_t i = 0; i < typecnt; i++) {
    int32_t o = (int32_t)be32(types + 6 * i);
    if (o < -89999 || o > 93599 || types[6 * i + 4] > 1) goto bad; /* RFC 8536 3.2 */
  }
  for (uint64_t i = 0; i < timecnt; i++) {
    int64_t t = tsize == 8 ? (int64_t)be64(times + 8 * i) : (int64_t)(int32_t)be32(times + 4 * i);
    if (t < -T_CLAMP) t = -T_CLAMP;
    if (t > T_CLAMP) goto bad;
    if (i > 0 && t < z->at[i - 1]) goto bad;
    if (idx[i] >= typecnt) goto bad;
    z->at[i] = t;
    z->off[i] = (int32_t)be32(types + 6 * idx[i]);
  }
  z->off0 = (int32_t)be32(types);
  if (version >= 2) {
    const uint8_t *f = h + 44 + block, *e = data + len;
    if (f >= e || *f != '\n') goto bad;
    f++;
    const uint8_t *nl = memchr(f, '\n', (size_t)(e - f));
    if (nl == NULL) goto bad;
    if (nl > f && parse_footer(z, f, nl) != 0) goto bad;
  }
  *err = 0;
  return z;
bad:
  free(z);
  return NULL;
}

void lb_tz_free(lb_tz *z) { free(z); }

/* Day number (since 1970) of a rule date in year y. */
static int64_t rule_day(const tz_date *d, int64_t y) {
  int64_t jan1 = days_from_civil(y, 1, 1);
  switch (d->kind) {
  case RULE_J: /* 1..365, February 29 never counted */
    return jan1 + d->a - 1 + (is_leap(y) && d->a >= 60);
  case RULE_N:
    return jan1 + d->a;
  default: {
    int64_t first = days_from_civil(y, (unsigned)d->a, 1);
    int64_t day = first + (d->c - (int)weekday(first) + 7) % 7 + (d->b - 1) * 7;
    int64_t dim = days_in_month(y, (unsigned)d->a);
    while (day >= first + dim) day -= 7; /* week 5 = the last one */
    return day;
  }
  }
}

/* The segment [*lo, *hi) of constant offset *off that holds Unix time u. */
static void seg_at(const lb_tz *z, int64_t u, int64_t *lo, int64_t *hi, int32_t *off) {
  int32_t n = z->n;
  if (n > 0 && u < z->at[n - 1]) {
    if (u < z->at[0]) {
      *lo = T_MIN;
      *hi = z->at[0];
      *off = z->off0;
      return;
    }
    int32_t a = 0, b = n - 1; /* at[a] <= u < at[b] */
    while (b - a > 1) {
      int32_t mid = a + (b - a) / 2;
      if (z->at[mid] <= u) a = mid; else b = mid;
    }
    *lo = z->at[a];
    *hi = z->at[b];
    *off = z->off[a];
    return;
  }
  int64_t base = n > 0 ? z->at[n - 1] : T_MIN;
  if (!z->has_rule) {
    *lo = base;
    *hi = T_MAX;
    *off = n > 0 ? z->off[n - 1] : z->off0;
    return;
  }
  if (!z->has_dst) {
    *lo = base;
    *hi = T_MAX;
    *off = z->std_off;
    return;
  }
  /* Transitions of the years around u, in order; at equal instants the
   * switch to standard time goes first, so a zone that is on DST all year
   * ("EST5EDT4,0/0,J365/25") stays on DST. */
  int64_t y, ts[6];
  int32_t os[6];
  unsigned mm, dd;
  civil_from_days(floor_div(u + z->std_off, 86400), &y, &mm, &dd);
  int k = 0;
  for (int64_t yy = y - 1; yy <= y + 1; yy++) {
    ts[k] = rule_day(&z->end, yy) * 86400 + z->end.time - z->dst_off;
    os[k++] = z->std_off;
    ts[k] = rule_day(&z->start, yy) * 86400 + z->start.time - z->std_off;
    os[k++] = z->dst_off;
  }
  for (int i = 1; i < 6; i++) /* insertion sort, stable */
    for (int j = i; j > 0 && ts[j - 1] > ts[j]; j--) {
      int64_t t = ts[j]; ts[j] = ts[j - 1]; ts[j - 1] = t;
      int32_t o = os[j]; os[j] = os[j - 1]; os[j - 1] = o;
    }
  int i = -1;
  while (i + 1 < 6 && ts[i + 1] <= u) i++;
  /* i >= 0: a transition of year y-1 is always more than a year before u. */
  *off = i >= 0 ? os[i] : z->std_off;
  *lo = i >= 0 && ts[i] > base ? ts[i] : base;
  *hi = i + 1 < 6 ? ts[i + 1] : T_MAX;
}

int32_t lb_tz_offset(const lb_tz *z, int64_t t) {
  if (z == NULL) return 0;
  int64_t lo, hi;
  int32_t off;
  seg_at(z, t, &lo, &hi, &off);
  return off;
}

/* ---------------------------------------------------------------------- */
/* Next fire                                                                */

/* Years 1..9998: far from every overflow, and the horizon stays < 10000. */
#define T_FIRST ((int64_t)-62135596800)
#define T_LAST ((int64_t)253370764800)

static int64_t ceil_minute(int64_t w) { return -floor_div(-w, 60) * 60; }

int lb_cron_next(const lb_cron *c, const lb_tz *z, int64_t t, int64_t *out) {
  if (c == NULL || out == NULL || t < T_FIRST || t >= T_LAST) return LB_EINVAL;
  /* Not a parsed expression: an empty field, or bits out of range (which
   * would index past the month table). */
  if (c->minute == 0 || c->hour == 0 || c->dom == 0 || c->month == 0 || c->dow == 0 ||
      c->minute >> 60 || c->hour >> 24 || (c->dom & 1) || (c->month & ~(uint32_t)0x1ffe) ||
      c->dow >> 7)
    return LB_EINVAL;
  int64_t limit = floor_div(t, 86400) + LB_CRON_HORIZON_DAYS;
  if (z == NULL) return next_wall(c, floor_div(t, 60) * 60 + 60, limit, out);
  int64_t lo, hi, w;
  int32_t off;
  int rc;
  if (c->flags & LB_CRON_FIXED) {
    /* Rule B: fires at F(W), the first instant whose wall clock is >= W, for
     * each matching W. F is non-decreasing, and F(W) > t exactly when W is
     * above every wall time shown up to t, so the next fire is F of the
     * first matching W past that maximum. */
    seg_at(z, t, &lo, &hi, &off);
    int64_t max = t + off;
    for (int k = 0; k < 8 && lo != T_MIN && lo > t - 3 * 86400; k++) {
      seg_at(z, lo - 1, &lo, &hi, &off); /* the segment before: it ends at the old lo */
      if (hi - 1 + off > max) max = hi - 1 + off;
    }
    if ((rc = next_wall(c, floor_div(max, 60) * 60 + 60, limit, &w)) != 0) return rc;
    int64_t u = t;
    for (int k = 0; k < 100000; k++) {
      seg_at(z, u, &lo, &hi, &off);
      if (hi == T_MAX || w < hi + off) {
        *out = w - off > lo ? w - off : lo;
        return 0;
      }
      u = hi;
    }
    return LB_ECRONNONE;
  }
  /* Wall-clock match: in each segment the wall clock is u + off. */
  int64_t u = floor_div(t, 60) * 60 + 60;
  for (int k = 0; k < 100000; k++) {
    seg_at(z, u, &lo, &hi, &off);
    if ((rc = next_wall(c, ceil_minute(u + off), limit, &w)) != 0) return rc;
    if (hi == T_MAX || w - off < hi) {
      *out = w - off;
      return 0;
    }
    u = hi;
  }
  return LB_ECRONNONE;
}

/* bench_minify.c: lb_minify throughput and output sizes on the npm corpus
 * of conformance/webassets.md §3, with `esbuild --minify-whitespace` sizes
 * beside (goals: >= 50 MB/s JS, >= 100 MB/s CSS on one core; sizes within
 * one point of esbuild's: jquery <= 50.4 %, lodash <= 28.1 %, d3 <= 72.5 %,
 * bootstrap.css <= 84.4 %).
 *
 * The corpus is the temporary folder spec/minify_corpus_spec.lua installs
 * (its path is in /tmp/lowbit-minify-corpus.path); without it this prints
 * how to get it. Inputs as in §3: big.js = the six JS files concatenated,
 * big.css = bootstrap.css x4; the best of 5 runs is reported.
 * cc -O2 -Iinclude bench/c/bench_minify.c build/lib/liblowbit.a -lm */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lowbit/lb_minify.h"
#include "report.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)len + 1);
  if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) { fclose(f); free(p); return NULL; }
  fclose(f);
  *n = (size_t)len;
  return p;
}

/* Output bytes of esbuild --minify-whitespace on path (the loader follows
 * the extension), or -1. */
static long esbuild_size(const char *dir, const char *path) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s/node_modules/.bin/esbuild --minify-whitespace --log-level=error '%s' | wc -c",
           dir, path);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  long n = -1;
  if (fscanf(p, "%ld", &n) != 1) n = -1;
  pclose(p);
  return n;
}

typedef ptrdiff_t (*minify_fn)(const uint8_t *, size_t, uint8_t *, size_t, size_t *);

static double speed(minify_fn fn, const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
  double best = 1e9;
  size_t line;
  for (int r = 0; r < 5; r++) {
    double t0 = now_s();
    if (fn(in, n, out, cap, &line) < 0) return -1;
    double t = now_s() - t0;
    if (t < best) best = t;
  }
  return (double)n / best / 1e6;
}

int main(void) {
  static const struct { const char *file; int css; const char *goal; } files[] = {
    {"jquery/dist/jquery.js", 0, "<= 50.4 %"},
    {"lodash/lodash.js", 0, "<= 28.1 %"},
    {"underscore/underscore.js", 0, ""},
    {"moment/moment.js", 0, ""},
    {"d3/dist/d3.js", 0, "<= 72.5 %"},
    {"bootstrap/dist/js/bootstrap.bundle.js", 0, ""},
    {"bootstrap/dist/css/bootstrap.css", 1, "<= 84.4 %"},
    {"normalize.css/normalize.css", 1, ""},
  };
  char dir[1024] = {0};
  FILE *pf = fopen("/tmp/lowbit-minify-corpus.path", "r");
  if (!pf || !fgets(dir, sizeof dir, pf)) {
    printf("minify: corpus not installed (run SPECS=spec/minify_corpus_spec.lua sh tools/run-specs.sh once)\n");
    if (pf) fclose(pf);
    return 0;
  }
  fclose(pf);
  dir[strcspn(dir, "\n")] = 0;
  size_t js_total = 0, css_total = 0;
  uint8_t *big_js = NULL, *big_css = NULL;
  printf("%-24s %9s %9s %8s %9s %8s  %s\n", "file", "bytes", "lb_minify", "%", "esbuild-ws", "%", "goal");
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char path[1400];
    snprintf(path, sizeof path, "%s/node_modules/%s", dir, files[i].file);
    size_t n;
    uint8_t *in = slurp(path, &n);
    if (!in) { printf("minify: %s missing (corpus incomplete)\n", path); return 0; }
    size_t cap = lb_minify_max_len(n), line;
    uint8_t *out = malloc(cap);
    ptrdiff_t r = files[i].css ? lb_minify_css(in, n, out, cap, &line) : lb_minify_js(in, n, out, cap, &line);
    long es = esbuild_size(dir, path);
    const char *base = strrchr(files[i].file, '/') + 1;
    printf("%-24s %9zu %9td %7.1f%% %9ld %7.1f%%  %s\n", base, n, r, 100.0 * (double)r / (double)n, es,
           es > 0 ? 100.0 * (double)es / (double)n : 0.0, files[i].goal);
    /* output size in % of the input, next to esbuild --minify-whitespace */
    bench_line("minify", base, "output_pct", "lowbit", 100.0 * (double)r / (double)n, "%", "lower");
    if (es > 0) bench_line("minify", base, "output_pct", "esbuild", 100.0 * (double)es / (double)n, "%", "lower");
    free(out);
    if (!files[i].css) {
      big_js = realloc(big_js, js_total + n + 2);
      memcpy(big_js + js_total, in, n);
      js_total += n;
      big_js[js_total++] = '\n';
    } else if (strstr(base, "bootstrap")) {
      big_css = malloc(4 * n);
      for (int k = 0; k < 4; k++) memcpy(big_css + k * n, in, n);
      css_total = 4 * n;
    }
    free(in);
  }
  size_t cap = lb_minify_max_len(js_total > css_total ? js_total : css_total);
  uint8_t *out = malloc(cap);
  double js = speed(lb_minify_js, big_js, js_total, out, cap);
  double css = speed(lb_minify_css, big_css, css_total, out, cap);
  printf("minify JS  (big.js, %.2f MB):  %.1f MB/s (goal >= 50)\n", (double)js_total / 1e6, js);
  printf("minify CSS (big.css, %.2f MB): %.1f MB/s (goal >= 100)\n", (double)css_total / 1e6, css);
  bench_line("minify", "JS speed (the JS files joined)", "mb_per_s", "lowbit", js, "MB/s", "higher");
  bench_line("minify", "CSS speed (bootstrap.css x 4)", "mb_per_s", "lowbit", css, "MB/s", "higher");
  free(out);
  free(big_js);
  free(big_css);
  return 0;
}

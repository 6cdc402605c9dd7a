/*
 * lb_minify.h: a token-level JavaScript and CSS minifier.
 *
 * What it does: removes whitespace and comments, and nothing else. It never
 * rewrites a value, a number, a string, a shorthand or a selector, never
 * renames an identifier and never inserts a semicolon. Its guarantees:
 *
 * JavaScript
 * - The output has the same tokens as the input, minus comments and minus
 *   the `;`s just before a `}` (the lexer declared below is exposed so a
 *   test can check exactly that). Such a `;` goes (ASI puts it back) unless
 *   it is an empty statement forming a statement's body: after the `)` of
 *   an if/for/while/with header, after else, do or any `:` (labels, case,
 *   default) it stays. A run of them goes whole; a run longer than
 *   LB_MINIFY_MAX_HELD, or one before a kept comment or the end, stays.
 * - A separator (one space) is written between two tokens only where
 *   joining them would change them: identifier/number characters on both
 *   sides (non-ASCII characters count as identifier characters), a
 *   decimal integer before `.`, punctuators that would merge (`+ +`,
 *   `- -`, `a+ ++b`, `= >`, `. . .`), `.` before a digit, `# x`, `/`
 *   before `/` or `*`, `< !--`, `-- >`, and `<` before `/` (so `</script`
 *   cannot form).
 * - A line break of the input (in whitespace or inside a block comment) is
 *   kept as one "\n" wherever automatic semicolon insertion or a
 *   restricted production could depend on it: after a token that can end
 *   an expression (identifier, keyword, literal, `)`, `]`, `}`, `++`, `--`,
 *   a template's end) when the next token cannot continue that expression
 *   (identifier, literal, `{`, `!`, `~`, `++`, `--`, `#x`, `@`); and after
 *   return, throw, break, continue, yield, async, await and let before any
 *   token other than `;` `}` `)` `]` `,` `:`. Elsewhere it is dropped,
 *   and after the `}` of a block statement: a `{` after a statement boundary
 *   (`;` `{` `}`, the start), after the `)` of an if/for/while/with header,
 *   else, do, try or finally, or the body of a function declaration (the
 *   `function` after such a boundary). Other braces (object literals,
 *   function, arrow and class bodies, switch, catch) keep the line break.
 * - Regex or division: `/` starts a regular expression unless the previous
 *   significant token is an identifier (other than the keywords return,
 *   typeof, instanceof, in, new, delete, void, throw, case, do, else,
 *   yield, await, extends), a number, a string, a regex, a template's end,
 *   `]`, `++`, `--`, or a `)` that does not close `if (`, `while (`,
 *   `for (` or `with (`. After `}` (a block's end or an object literal's:
 *   a lexer cannot tell) it is a regular expression: blocks followed by a
 *   regex occur in real code, `{} / x` does not. Such a division then fails
 *   as an unterminated regex (an error, never a wrong output) unless a
 *   second `/` follows on the line, in which case the text between is
 *   copied verbatim, which gives the same program.
 * - Template literals are copied verbatim, `${ }` nesting tracked by a
 *   brace stack (at most LB_MINIFY_MAX_NESTING open `${`). Strings and
 *   regular expressions (with their classes `[/]`) are copied verbatim.
 * - `</script` (any case) inside a string, template, regex, kept comment
 *   or `#!` line is written `<\/script`; it never appears in the output (a
 *   regex whose body ends in `<` before flags "script", a syntax error
 *   anyway, is refused with LB_EREGEXP).
 * - A `#!` first line is kept with its line break. `/\*! ... *\/` comments
 *   are kept verbatim. Annex B comments (`<!--` anywhere, `-->` at the
 *   start of a line) are comments.
 * - Whitespace: space, tab, VT, FF, NBSP, BOM and the Unicode Zs spaces;
 *   line terminators: LF, CR, U+2028, U+2029.
 *
 * CSS
 * - A declaration's `;` before the block's `}` goes (with empty `;`s and
 *   comments between); it stays after a custom property's value, after an
 *   at-rule statement (`@import ...;`), inside parentheses and before a
 *   `/\*! *\/` comment.
 * - Whitespace and comments collapse to one space, dropped next to
 *   `{ } ; !` (before or after), after `( :` and before `)`, and around
 *   `,` `>` `~` outside parentheses (inside them a space after a comma is
 *   kept: values holding var() are token lists, spaces included, for
 *   some tools). A space is kept everywhere else: before
 *   `:` (`a :hover`), around `+`, `-`, `*`, `/` (`calc(1px + 2px)`), before
 *   `(` (`and (`), after `)`, and as the descendant combinator.
 * - Strings, `url()` (unquoted: trimmed only), escapes (`\31 ` keeps its
 *   space) and `/\*! *\/` comments are copied verbatim. A custom property's
 *   value (`--x: value`) is copied verbatim, trimmed; an empty value that
 *   had whitespace keeps one space (`--x: ;`).
 *
 * lb_minify_js and lb_minify_css take the whole input at once; both can
 * also be fed in pieces (lb_minify_js_feed, lb_minify_css_feed), with the
 * same output. Nothing allocates.
 */
#ifndef LOWBIT_LB_MINIFY_H
#define LOWBIT_LB_MINIFY_H

#ifndef LB_CDEF
#include <stddef.h>
#include <stdint.h>
#include "lowbit/lb_base.h"
#endif

enum {
  LB_MINIFY_MAX_NESTING = 64,   /* open template `${` at once */
  LB_MINIFY_PAREN_BITS = 1024,  /* parens tracked for `if (...) /re/` */
  LB_MINIFY_LOOKAHEAD = 4,      /* bytes the lexer may look past a token */
  LB_MINIFY_MAX_HELD = 16       /* `;`s held back at once (a longer run is kept) */
};

/* Token kinds of the JavaScript lexer. */
enum {
  LB_MINIFY_TOK_IDENT = 1,    /* identifier, keyword, #private */
  LB_MINIFY_TOK_NUMBER = 2,
  LB_MINIFY_TOK_STRING = 3,
  LB_MINIFY_TOK_TEMPLATE = 4, /* one piece: `..` `..${ }..${ }..` */
  LB_MINIFY_TOK_REGEX = 5,
  LB_MINIFY_TOK_PUNCT = 6,
  LB_MINIFY_TOK_COMMENT = 7,  /* a kept /\*! comment only */
  LB_MINIFY_TOK_HASHBANG = 8  /* the #! line, without its line break */
};

/* One token: in[off .. off+len). nl_before is 1 when a line terminator
 * (whitespace or inside a comment) separates it from the previous token. */
typedef struct lb_minify_token {
  uint32_t kind;
  uint32_t nl_before;
  size_t off;
  size_t len;
} lb_minify_token;

/* JavaScript lexer state. Caller-allocated; set up by
 * lb_minify_js_lexer_init. The fields are private. */
typedef struct lb_minify_js_lexer {
  const uint8_t *in;
  size_t len;
  size_t pos;
  size_t base;           /* offset of in[0] in the whole source (feeding) */
  size_t err_pos;        /* offset in the whole source */
  uint32_t final;        /* 1: the source ends at len */
  uint32_t prev_kind;
  uint32_t regex_ok;     /* 1 when `/` starts a regex */
  uint32_t prev_paren_kw;/* the previous token is if/while/for/with */
  uint32_t tpl_depth;
  uint32_t paren_depth;
  uint32_t tpl_braces[64];
  uint64_t paren_kw[16];
} lb_minify_js_lexer;

/* Streaming state of the JavaScript minifier (lb_minify_js_feed).
 * Caller-allocated, set up by lb_minify_js_init; the fields are private. */
typedef struct lb_minify_js_state {
  lb_minify_js_lexer lx;
  size_t lines;          /* line breaks in the input consumed so far */
  size_t piece_len;      /* the last piece written: its length, */
  uint32_t piece_kind;   /* kind (0: none), */
  uint32_t piece_digits; /* whether it is a number of digits only, */
  uint8_t tail[4];       /* last bytes (right-aligned), */
  uint8_t before;        /* and the output byte before it */
  uint8_t last;          /* the last byte written by an earlier call */
  uint8_t pad[2];
  uint32_t a_ends_expr;  /* the last significant token ends an expression */
  uint32_t a_restricted; /* ... is return/throw/break/continue/yield/... */
  uint32_t have_a;
  uint32_t out_nl;       /* a line break was written after it */
  uint32_t out_any;      /* an earlier call wrote something */
  uint32_t a_body;       /* a `;` after it would be an empty statement body
                            (`)` of if/for/while/with, else, do, any `:`) */
  uint32_t pend_semi;    /* `;`s read but not written yet: dropped before `}` */
  uint32_t semi_keep;    /* this run of `;` is longer than LB_MINIFY_MAX_HELD:
                            all of it is written */
  uint32_t a_stmt;       /* a `{` after it is a block, `function` a declaration */
  uint32_t a_block_end;  /* it is the `}` of a block statement (no ASI needed) */
  uint32_t fn_state;     /* function declaration head: 1 `function`, 2 name,
                            3 in the parameters, 4 after them */
  uint32_t fn_paren;     /* paren depth of its parameter list */
  uint32_t brace_depth;  /* open `{` */
  uint32_t pad2;
  uint64_t brace_block[LB_MINIFY_PAREN_BITS / 64]; /* each open `{`: a block? */
} lb_minify_js_state;

/* The output capacity that is always enough for an input of len bytes:
 * 2*len + 32 (each separator follows a token of at least one byte; a feed
 * call may also write up to LB_MINIFY_MAX_HELD `;`s held by earlier calls,
 * see lb_minify_js_feed). Real
 * code never grows: every separator replaces whitespace, except `-- >`,
 * `1 in`-like joins and the `<\/script` escape. */
size_t lb_minify_max_len(size_t len);

/* Minifies JavaScript in[0..len) into out[0..cap). Returns the output
 * length, or:
 *   LB_ENOSPACE   cap is too small (lb_minify_max_len(len) never is);
 *   LB_ESTRING    unterminated string literal;
 *   LB_ECOMMENT   unterminated block comment;
 *   LB_EREGEXP    unterminated regular expression;
 *   LB_ETEMPLATE  unterminated template literal;
 *   LB_ETOOMANY   more than LB_MINIFY_MAX_NESTING open template `${`;
 *   LB_EINVAL     in or out NULL with a non-zero length.
 * On an error, *line (when line is not NULL) is the 1-based line where the
 * offending token starts; it is 0 on success. */
ptrdiff_t lb_minify_js(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                       size_t *line);

/* Sets up a streaming JavaScript minification. */
void lb_minify_js_init(lb_minify_js_state *m);

/* Feeds in[0..len): the source's next bytes, after the unconsumed ones of
 * the previous call (the caller keeps them: *consumed says how many bytes
 * of in[] were used; in[*consumed..len) must be given again, followed by
 * more input). final = 1 marks the end of the source. Writes the output of
 * every token known to be complete into out and returns its length; the
 * concatenated outputs equal lb_minify_js of the whole source, however it
 * is split. cap must be at least lb_minify_max_len(len), else LB_ENOSPACE
 * (nothing consumed). Errors as for lb_minify_js, with *line counted from
 * the start of the source; the state is unusable after an error. A token
 * is held back until LB_MINIFY_LOOKAHEAD more bytes (or the end) follow it,
 * so a single token longer than the caller's buffer needs a larger one. */
ptrdiff_t lb_minify_js_feed(lb_minify_js_state *m, const uint8_t *in, size_t len, int final,
                            uint8_t *out, size_t cap, size_t *consumed, size_t *line);

/* Minifies CSS in[0..len) into out[0..cap). Returns the output length, or
 * LB_ENOSPACE, LB_ESTRING (unterminated string), LB_ECOMMENT, LB_EURLTOKEN
 * (unterminated url(), LB_EINVAL; *line as for lb_minify_js. The output is
 * never longer than the input. */
ptrdiff_t lb_minify_css(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *line);

/* Streaming state of the CSS minifier (lb_minify_css_feed). */
typedef struct lb_minify_css_state {
  size_t lines;          /* line breaks in the input consumed so far */
  uint32_t pending;      /* whitespace or a comment since the last byte written */
  uint32_t paren;        /* open parentheses */
  uint32_t stmt_start;   /* at the start of a declaration or rule */
  uint32_t out_any;      /* something was written */
  uint32_t at_stmt;      /* in an at-rule's prelude (its `;` stays before `}`) */
  uint32_t custom;       /* the last thing written is a custom property value */
  uint8_t p;             /* the last byte written */
  uint8_t prev_in;       /* the last input byte consumed */
  uint8_t pad[6];
} lb_minify_css_state;

/* Sets up a streaming CSS minification. */
void lb_minify_css_init(lb_minify_css_state *st);

/* As lb_minify_js_feed, for CSS: the same output as lb_minify_css of the
 * whole source however it is split; cap must be at least len + 1. A unit
 * (a string, comment, url() or custom property value) is written once 9
 * bytes or the end follow it, so one longer than the caller's buffer needs
 * a larger one. */
ptrdiff_t lb_minify_css_feed(lb_minify_css_state *st, const uint8_t *in, size_t len, int final,
                             uint8_t *out, size_t cap, size_t *consumed, size_t *line);

/* Starts lexing in[0..len) (kept by pointer: it must outlive the lexer). */
void lb_minify_js_lexer_init(lb_minify_js_lexer *lx, const uint8_t *in, size_t len);

/* The next token into *t. Returns 1 for a token, 0 at the end of input, or
 * a negative code as for lb_minify_js (lx->err_pos is then the offending
 * token's offset). Comments and whitespace are skipped, except kept
 * /\*! comments (LB_MINIFY_TOK_COMMENT). */
int lb_minify_js_next(lb_minify_js_lexer *lx, lb_minify_token *t);

/* The 1-based line number of offset pos in in[0..len). */
size_t lb_minify_line_of(const uint8_t *in, size_t len, size_t pos);

#endif

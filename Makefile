# lowbit: build, test, bench, fuzz. `make help` lists the targets.
#
# Layout: include/lowbit/*.h (C API) + runtime/lb_*.c (sans-I/O C cores)
# -> build/lib/liblowbit.{a,so}; runtime/host/main.c + embedded Lua sources
# -> build/bin/lowbit; FFI declarations generated from the headers into
# build/lua/lowbit/cdef.lua.

# A fresh machine has none of the packages, and make looks up pkg-config's
# flags and llhttp's sources when it reads this file, before any rule runs.
# So every goal runs in two steps: install what is missing (tools/deps.sh),
# then make the goal in a sub-make that reads this file afresh.
ifndef LB_DEPS_CHECKED
GOALS  := $(or $(MAKECMDGOALS),all)
# rock and rock-install run under luarocks, which has already checked the
# external dependencies: they never try apt-get.
NODEPS := help clean deps rock rock-install bench-report readme-figures
.PHONY: $(GOALS)
$(GOALS):
	@case " $(NODEPS) " in *" $@ "*) ;; *) sh tools/deps.sh ;; esac
	@$(MAKE) --no-print-directory LB_DEPS_CHECKED=1 $@
else

CC      ?= cc
LUAJIT  ?= luajit
VERSION := 0.1.0
BUILD   := build

PKG_CFLAGS := $(shell pkg-config --cflags luajit libuv openssl zlib 2>/dev/null) $(ROCK_CFLAGS)
PKG_LIBS   := $(ROCK_LDFLAGS) $(or $(shell pkg-config --libs openssl zlib 2>/dev/null),-lssl -lcrypto -lz)

WARN     := -Wall -Wextra -Werror
CFLAGS   ?= -O2 -g
CFLAGS_ALL = $(CFLAGS) $(WARN) -std=gnu99 -fPIC -Iinclude -DLB_VERSION='"$(VERSION)"'

# llhttp's C sources ship in Debian's node-llhttp; they are compiled as they
# come (their own warnings are not ours to fix, so no -Werror there).
# The rockspec passes both from its LLHTTP external dependency.
LLHTTP_SRC ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
LLHTTP_SRCS := $(LLHTTP_SRC)/llhttp.c $(LLHTTP_SRC)/api.c $(LLHTTP_SRC)/http.c

CORE_SRCS := $(sort $(wildcard runtime/lb_*.c))
CORE_HDRS := $(sort $(wildcard include/lowbit/lb_*.h))
CORE_PRIV := $(wildcard runtime/lb_*.h)
CORE_OBJS := $(CORE_SRCS:runtime/%.c=$(BUILD)/obj/%.o)
LLHTTP_OBJS := $(BUILD)/obj/llhttp/llhttp.o $(BUILD)/obj/llhttp/api.o $(BUILD)/obj/llhttp/http.o
# Lua/C glue on the luv loop (bindings/*.c): in the library, not in the
# sans-I/O core tests.
GLUE_SRCS := $(sort $(wildcard bindings/*.c))
GLUE_OBJS := $(GLUE_SRCS:bindings/%.c=$(BUILD)/obj/glue/%.o)
LIB_OBJS  := $(CORE_OBJS) $(LLHTTP_OBJS) $(GLUE_OBJS)

LUA_SRCS  := $(shell find lua bindings -name '*.lua' | sort)
CDEF_LUA  := $(BUILD)/lua/lowbit/cdef.lua

# The host links luv statically; where that archive is missing (any system
# but Debian's lua-luv-dev) the rock installs no host.
LUV_A     ?= /usr/lib/x86_64-linux-gnu/liblua5.1-luv.a
HOST_LIBS := -Wl,--whole-archive $(BUILD)/lib/liblowbit.a -Wl,--no-whole-archive \
             -Wl,--whole-archive $(LUV_A) -Wl,--no-whole-archive \
             -Wl,-Bstatic -lluajit-5.1 -Wl,-Bdynamic -luv $(PKG_LIBS) -lm -ldl -lpthread

TEST_SRCS := $(sort $(wildcard runtime/test/test_*.c))
TEST_BINS := $(TEST_SRCS:runtime/test/%.c=$(BUILD)/test/%)
SAN       := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

FUZZ_SRCS := $(sort $(wildcard runtime/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:runtime/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 20

.PHONY: all deps lib host test test-c test-lua bench bench-report readme-figures fuzz example clean help rock rock-install

all: lib host $(CDEF_LUA)

help:
	@echo "make            build build/lib/liblowbit.{a,so} and build/bin/lowbit"
	@echo "make example    build and serve the showcase on http://127.0.0.1:8080/ (REDIS=1: with a private redis-server)"
	@echo "make test       every suite (C under ASan+UBSan, busted specs on LuaJIT)"
	@echo "make bench      benchmarks, printing figures; ends with build/bench/report.md and report.png"
	@echo "make bench-report   the report again from the last run (build/bench/run.log), no benchmark run"
	@echo "make readme-figures README.md's figures section from build/bench/report.md"
	@echo "make fuzz       short fuzz runs of every parser (FUZZ_SECONDS=$(FUZZ_SECONDS) each)"
	@echo "make deps       install missing Debian packages (as root)"

deps:
	@sh tools/deps.sh

lib: $(BUILD)/lib/liblowbit.a $(BUILD)/lib/liblowbit.so

host: $(BUILD)/bin/lowbit

$(BUILD)/obj/%.o: runtime/%.c $(CORE_HDRS) $(CORE_PRIV)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/obj/glue/%.o: bindings/%.c $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -c $< -o $@

$(BUILD)/obj/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -w -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/lib/liblowbit.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/liblowbit.so: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(PKG_LIBS) -luv -lm

# FFI declarations: the headers, preprocessed with LB_CDEF (no system
# includes), turned into a Lua module. One source of truth: the headers.
$(CDEF_LUA): $(CORE_HDRS) tools/gencdef.lua
	@mkdir -p $(dir $@)
	$(LUAJIT) tools/gencdef.lua $@ $(CORE_HDRS)

# Every Lua module (its source, checked to compile), linked into the host.
$(BUILD)/gen/embedded.c: $(LUA_SRCS) $(CDEF_LUA) tools/embed.lua
	@mkdir -p $(dir $@)
	$(LUAJIT) tools/embed.lua $@ lua bindings $(BUILD)/lua

$(BUILD)/bin/lowbit: runtime/host/main.c $(BUILD)/gen/embedded.c $(BUILD)/lib/liblowbit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(PKG_CFLAGS) -I/usr/include/lua5.1 -Wl,-E -o $@ \
	  runtime/host/main.c $(BUILD)/gen/embedded.c $(HOST_LIBS)

# C core tests: each test file is linked with every core, all built with
# ASan+UBSan into their own archive.
SAN_OBJS := $(CORE_SRCS:runtime/%.c=$(BUILD)/san/%.o) \
            $(BUILD)/san/llhttp/llhttp.o $(BUILD)/san/llhttp/api.o $(BUILD)/san/llhttp/http.o

$(BUILD)/san/%.o: runtime/%.c $(CORE_HDRS) $(CORE_PRIV)
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(WARN) -std=gnu99 $(SAN) -Iinclude $(PKG_CFLAGS) -I$(LLHTTP_INC) \
	  -DLB_VERSION='"$(VERSION)"' -c $< -o $@

$(BUILD)/san/llhttp/%.o: $(LLHTTP_SRC)/%.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -w $(SAN) -I$(LLHTTP_INC) -c $< -o $@

$(BUILD)/san/liblowbit_san.a: $(SAN_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/test/%: runtime/test/%.c runtime/test/lb_test.h $(BUILD)/san/liblowbit_san.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(WARN) -std=gnu99 $(SAN) -Iinclude -Iruntime/test $(PKG_CFLAGS) -I$(LLHTTP_INC) \
	  -o $@ $< $(BUILD)/san/liblowbit_san.a $(PKG_LIBS) -lm

test-c: $(TEST_BINS)
	@sh tools/run-c-tests.sh $(TEST_BINS)

test-lua: all
	@sh tools/run-specs.sh

test: all $(TEST_BINS)
	@sh tools/test.sh $(TEST_BINS)

$(BUILD)/fuzz/%: runtime/fuzz/%.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(dir $@)
	clang -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude $(PKG_CFLAGS) -I$(LLHTTP_INC) \
	  -DLB_VERSION='"$(VERSION)"' -o $@ $< $(CORE_SRCS) $(LLHTTP_SRCS) $(PKG_LIBS) -lm

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  n=$$(basename $$f); mkdir -p $(BUILD)/corpus/$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(BUILD)/corpus/$$n runtime/fuzz/corpus/$$n 2>&1 | \
	    grep -E 'stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY' || exit 1; \
	done

bench: all
	@sh tools/run-bench.sh

# The report of the last `make bench` (its output is in build/bench/run.log).
bench-report:
	@$(LUAJIT) tools/bench-report.lua --log $(BUILD)/bench/run.log --out $(BUILD)/bench --print

readme-figures:
	@$(LUAJIT) tools/bench-report.lua --readme README.md --out $(BUILD)/bench

# The showcase on http://127.0.0.1:8080/ (examples/showcase/); REDIS=1 also
# starts a private redis-server for it. The first example stays runnable:
# build/bin/lowbit examples/hello.lua 127.0.0.1:8080
example: all
	@sh tools/example.sh $(if $(REDIS),--redis)

# Used by the rockspec (build.type = "command"): `rock` builds what a rock
# needs (the library and the FFI declarations, plus the host where luv's
# static archive exists); `rock-install` copies them into the LuaRocks tree.
ROCK_HOST := $(if $(wildcard $(LUV_A)),host)
rock: lib $(CDEF_LUA) $(ROCK_HOST)

rock-install: rock
	mkdir -p "$(LUADIR)/lowbit" "$(LIBDIR)"
	cd lua && find lowbit -name '*.lua' -exec install -D -m 644 {} "$(LUADIR)/{}" \;
	cd bindings && find lowbit -name '*.lua' -exec install -D -m 644 {} "$(LUADIR)/{}" \;
	install -m 644 $(CDEF_LUA) "$(LUADIR)/lowbit/cdef.lua"
	install -m 755 $(BUILD)/lib/liblowbit.so "$(LIBDIR)/liblowbit.so"
	if [ -n "$(ROCK_HOST)" ] && [ -n "$(BINDIR)" ]; then mkdir -p "$(BINDIR)" && install -m 755 $(BUILD)/bin/lowbit "$(BINDIR)/lowbit"; fi

clean:
	rm -rf $(BUILD)

endif

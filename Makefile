# vlab -- build, test, demo, bench.
#
#   make          build ./vlab
#   make demo     install missing packages, build, run a slides example
#   make test     install missing packages, run every test (unit suites,
#                 scenario goldens), then all of it again under ASan+UBSan
#   make bench    performance figures (name: value lines)
#   make deps     install the Debian packages vlab needs (only missing ones)
#   make golden   rewrite the golden traces (commit them with the reason)

CC      ?= cc
PKGS    := lua5.4 ncursesw libgvc libcgraph
WARN    := -Wall -Wextra -Wshadow -Wpointer-arith -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter
CSTD    := -std=c11 -D_GNU_SOURCE
OPT     ?= -O2 -g

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Lua and ncurses are linked statically (Debian's -dev packages ship the .a):
# two shared objects fewer to load makes `vlab` start about 0.5 ms sooner,
# as fast as lua5.4 itself (make bench: startup_over_lua).  Graphviz stays
# shared (Debian has no static libgvc).
STATIC_PKGS := lua5.4 ncursesw
SHARED_PKGS := libgvc libcgraph
PKG_LIBS   = -Wl,-Bstatic $(shell pkg-config --libs $(STATIC_PKGS) 2>/dev/null) -Wl,-Bdynamic \
             $(shell pkg-config --libs $(SHARED_PKGS) 2>/dev/null) -ldl
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

CFLAGS_ALL = $(CSTD) $(OPT) $(WARN) -I. $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm $(LDLIBS)

LIB_SRC  := $(wildcard cpu/*.c hypervisor/*.c sim/*.c viz/*.c)
LIB_SRC  := $(filter-out sim/main.c,$(LIB_SRC))
CHECK_SRC := $(wildcard tests/check_*.c)
TEST_SRC := $(CHECK_SRC) tests/runvlab.c
SUITES   := $(filter-out main,$(patsubst tests/check_%.c,%,$(CHECK_SRC)))

# Two flavours share the sources: plain (build/obj) and sanitized (build/asan).
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

OBJ      := $(patsubst %.c,build/obj/%.o,$(LIB_SRC))
ASAN_OBJ := $(patsubst %.c,build/asan/%.o,$(LIB_SRC))
TEST_OBJ := $(patsubst %.c,build/obj/%.o,$(TEST_SRC))
ASAN_TEST_OBJ := $(patsubst %.c,build/asan/%.o,$(TEST_SRC))

.PHONY: all deps demo test test-plain test-asan bench golden clean format

all: vlab

deps:
	@sh scripts/deps.sh

vlab: $(OBJ) build/obj/sim/main.o
	$(CC) $(OPT) -o $@ $^ $(LDLIBS_ALL)

build/vlab-asan: $(ASAN_OBJ) build/asan/sim/main.o
	$(CC) $(SAN) -O1 -g -o $@ $^ $(LDLIBS_ALL)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) -O1 -g $(WARN) -I. $(PKG_CFLAGS) $(CHECK_CFLAGS) -MMD -MP $(SAN) $(CFLAGS) -c -o $@ $<

build/obj/tests/%.o: tests/%.c build/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ibuild $(CHECK_CFLAGS) -c -o $@ $<

build/asan/tests/%.o: tests/%.c build/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) -O1 -g $(WARN) -I. -Ibuild $(PKG_CFLAGS) $(CHECK_CFLAGS) -MMD -MP $(SAN) $(CFLAGS) -c -o $@ $<

# The list of suites comes from the file names: tests/check_X.c exports suite_X().
build/suites.h: $(CHECK_SRC) Makefile
	@mkdir -p build
	@{ for s in $(SUITES); do echo "SUITE($$s)"; done; } > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

build/check_vlab: $(OBJ) $(TEST_OBJ)
	$(CC) $(OPT) -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

build/check_vlab-asan: $(ASAN_OBJ) $(ASAN_TEST_OBJ)
	$(CC) $(SAN) -O1 -g -o $@ $^ $(LDLIBS_ALL) $(CHECK_LIBS)

demo: deps
	@$(MAKE) --no-print-directory vlab
	@echo "== a system call: user mode -> kernel mode and back (traps and I/O only; drop --show for every instruction)"
	./vlab slides-examples/01-syscall-user-kernel.lua --show traps,io,notes
	@echo
	@echo "== the same program on a machine where every sensitive instruction traps..."
	./vlab slides-examples/02-sensitive-instructions.lua --policy strict --show traps,sens
	@echo
	@echo "== ...and on the classic x86, where some do not"
	./vlab slides-examples/02-sensitive-instructions.lua --policy x86 --show traps,sens

# Plain run, then the sanitized run; the last line is Check's summary.
test: deps
	@$(MAKE) --no-print-directory vlab build/check_vlab build/vlab-asan build/check_vlab-asan
	@echo "== unit and scenario tests (plain build)"
	VLAB_BIN=./vlab ./build/check_vlab
	@echo "== the same under AddressSanitizer + UBSan"
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  VLAB_BIN=./build/vlab-asan ./build/check_vlab-asan

bench: deps
	@$(MAKE) --no-print-directory vlab
	@sh bench/run.sh

golden: vlab build/check_vlab
	VLAB_UPDATE_GOLDEN=1 VLAB_BIN=./vlab ./build/check_vlab scenarios

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build vlab

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(ASAN_TEST_OBJ:.o=.d)
-include build/obj/sim/main.d build/asan/sim/main.d

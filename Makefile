# sluice — build, test, run, bench, fuzz.
#
#   make              build/sluice and build/sluice-mock (release, -O2)
#   make test         everything under ASan+UBSan: unit, fuzz replay, integration
#   make run          demo on 127.0.0.1:8080 (starts the mock without OPENAI_API_KEY)
#   make bench        load scenarios in bench/, then the soak (SOAK=0 skips it)
#   make soak         only the soak: a million mixed requests, RSS/fds/TTLs checked
#   make fuzz         libFuzzer targets (clang), FUZZ_SECONDS each
#   make format-check clang-format over the tree

CC      ?= cc
CXX     := g++
PKGS    := libevent hiredis libcurl libxxhash yaml-0.1 libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl is compiled against, not linked: src/upstream/curl_api.c dlopen()s
# it when an https upstream, a host name or a proxy needs it (issue 18: its
# dependency tree is ~5.5 MiB of PSS an http-only instance never uses).
# http_parser (libhttp-parser-dev) ships no pkg-config file.
LINK_PKGS  := $(filter-out libcurl,$(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(LINK_PKGS) 2>/dev/null) -lhttp_parser -lm -ldl -lstdc++
# The release binary carries the parts of libstdc++ the semantic index's shim
# uses instead of mapping all of libstdc++.so (1.4 MiB of PSS, its static
# constructors run at load whether the semantic cache is on or not).
REL_LIBS   := $(filter-out -lstdc++,$(PKG_LIBS)) -static-libstdc++ -static-libgcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral
CSTD    := -std=c11 -D_GNU_SOURCE
INC     := -Iinclude
# The release build is optimised across files at link time: a request's
# path crosses conn.c, the pipeline, its stages and the stores, and inlining
# across them took 1.6 % off a cache hit's instructions and 4 % off a
# pass-through's and a traced hit's (bench/instructions.py, 2026-12-03).
LTO     := -flto=auto
CFLAGS_REL  := $(CSTD) $(WARN) -O2 -g $(LTO) $(INC) $(PKG_CFLAGS)
CFLAGS_TEST := $(CSTD) $(WARN) -O1 -g -fno-omit-frame-pointer \
               -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
               -DSL_TEST_BUILD $(INC) $(PKG_CFLAGS)
LDFLAGS_TEST := -fsanitize=address,undefined,float-cast-overflow
# The one C++ file (hnswlib behind include/sluice/vindex.h). The vector
# kernels (float16 and int8 dot products) use AVX2+FMA+F16C when the building
# machine has them (sluice is built where it runs); plain C++ loops otherwise.
SIMD    := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -w avx2 | grep -w fma | \
             grep -qw f16c && echo -mavx2 -mfma -mf16c)
# ... and the int8 dot product AVX-512 VNNI (vpdpbusd, 64 bytes a step) where
# the machine has it (/proc/cpuinfo: avx512_vnni, avx512bw, avx512vl).
SIMD    += $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -w avx512_vnni | \
             grep -w avx512bw | grep -qw avx512vl && echo -mavx512f -mavx512bw -mavx512vl -mavx512vnni)
CXXFLAGS_COMMON := -std=c++17 -Wall -Wextra -Werror -Wshadow $(SIMD) $(INC)
CXXFLAGS_REL  := $(CXXFLAGS_COMMON) -O2 -g
# Under the sanitizers hnswlib's SSE path is off: its prefetches read one link
# past a node's list (inside malloc's rounding, harmless, but ASan stops there).
CXXFLAGS_TEST := $(CXXFLAGS_COMMON) -O1 -g -fno-omit-frame-pointer -DNO_MANUAL_VECTORIZATION \
                 -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all

LIB_SRC  := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
CXX_SRC  := $(shell find src -name '*.cpp' | sort)
MOCK_SRC := $(shell find test/mock -name '*.c' | sort)
UNIT_SRC := $(shell find test/unit -name 'test_*.c' | sort)
FUZZ_SRC := $(shell find test/fuzz -name 'fuzz_*.c' | sort)

REL_OBJ  := $(LIB_SRC:%.c=build/obj/%.o) $(CXX_SRC:%.cpp=build/obj/%.o)
TEST_OBJ := $(LIB_SRC:%.c=build/test/obj/%.o) $(CXX_SRC:%.cpp=build/test/obj/%.o)
FUZZ_CXX_OBJ := $(CXX_SRC:%.cpp=build/fuzz/obj/%.o)
UNIT_BIN := $(UNIT_SRC:test/unit/%.c=build/test/unit/%)
FUZZ_REPLAY := $(FUZZ_SRC:test/fuzz/%.c=build/test/fuzz/%)
FUZZ_BIN := $(FUZZ_SRC:test/fuzz/%.c=build/fuzz/%)

.PHONY: all deps have-deps test run bench bench-json bench-vindex soak fuzz clean format format-check test-build
all: build/sluice build/sluice-mock

deps:
	@./third_party/install.sh third_party/packages.txt

# A bare `make` on a machine without the packages says what to run instead
# of failing on a missing header (make run / test / bench install them).
have-deps:
	@pkg-config --exists $(PKGS) 2>/dev/null && test -f /usr/include/http_parser.h || \
	{ echo "sluice: the build's Debian packages are not installed: run 'make deps' first" \
	       "(make run, make test and make bench do it themselves)" >&2; exit 1; }

build/obj/%.o: %.c | have-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -MMD -MP -c $< -o $@

build/test/obj/%.o: %.c | have-deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_TEST) -MMD -MP -c $< -o $@

build/obj/%.o: %.cpp | have-deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_REL) -MMD -MP -c $< -o $@

build/test/obj/%.o: %.cpp | have-deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_TEST) -MMD -MP -c $< -o $@

.PRECIOUS: build/fuzz/obj/%.o
build/fuzz/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	clang++ -std=c++17 -DNO_MANUAL_VECTORIZATION -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	    -fno-sanitize=vptr,function $(INC) -c $< -o $@

build/sluice: $(REL_OBJ) build/obj/src/main.o
	$(CXX) -O2 $(LTO) -o $@ $^ $(REL_LIBS)

build/sluice-mock: $(MOCK_SRC:%.c=build/obj/%.o)
	$(CC) -o $@ $^ $(PKG_LIBS)

build/test/sluice: $(TEST_OBJ) build/test/obj/src/main.o
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

build/test/sluice-mock: $(MOCK_SRC:%.c=build/test/obj/%.o)
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

build/test/unit/%: build/test/obj/test/unit/%.o $(TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

# Under gcc every fuzz target builds as a corpus replayer (test/fuzz/replay.c).
build/test/fuzz/%: build/test/obj/test/fuzz/%.o build/test/obj/test/fuzz/replay.o $(TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_TEST) -o $@ $^ $(PKG_LIBS)

# Real libFuzzer builds (clang only).
build/fuzz/%: test/fuzz/%.c $(LIB_SRC) $(FUZZ_CXX_OBJ)
	@mkdir -p $(dir $@)
	clang $(CSTD) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    $(INC) $(PKG_CFLAGS) \
	    -o $@ $< $(LIB_SRC) $(FUZZ_CXX_OBJ) $(PKG_LIBS)

test-build: all build/test/sluice build/test/sluice-mock $(UNIT_BIN) $(FUZZ_REPLAY)

# The official client libraries (test/package.json) come from the npm
# registry; when they cannot be installed, test_sdk fails saying why.
test: deps
	@./test/sdk/install.sh || echo "test/sdk: client libraries not installed: the SDK tests will fail"
	@$(MAKE) --no-print-directory -j2 test-build
	@./test/run.sh

run: deps all
	@./conf/run-demo.sh

bench: deps all build/bench/json_parse build/bench/vindex build/bench/hop_relay
	@./third_party/install.sh third_party/bench-packages.txt
	@./bench/run.sh

# Parse time of the worst 8 MiB JSON bodies (issue 17 item 1), release build.
build/bench/json_parse: bench/json_parse.c build/obj/src/core/json.o build/obj/src/util/arena.o \
                        build/obj/src/util/buf.o build/obj/src/util/util.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -o $@ $^ $(PKG_LIBS)

# The semantic cache's index: lookup p50/p99, recall@1, memory (issue 20), release build.
build/bench/vindex: bench/vindex.c build/obj/src/store/hnsw_shim.o build/obj/src/core/semantic.o \
                    build/obj/src/core/json.o build/obj/src/core/cache_key.o \
                    build/obj/src/util/arena.o build/obj/src/util/buf.o build/obj/src/util/util.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -o $@ $^ $(PKG_LIBS)

# The floor of one proxy hop (bytes copied both ways, nothing else): the
# reference for the added latency at concurrency 1 (issue 18).
build/bench/hop_relay: bench/hop_relay.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -o $@ $^

bench-vindex: build/bench/vindex
	@./build/bench/vindex

bench-json: build/bench/json_parse
	@./build/bench/json_parse

soak: deps all
	@./third_party/install.sh third_party/bench-packages.txt
	@python3 bench/soak.py

FUZZ_SECONDS ?= 60
fuzz: deps $(FUZZ_BIN)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./test/fuzz/run.sh $(FUZZ_BIN)

FORMAT_FILES = $(shell find src include test -name '*.[ch]')
format:
	clang-format -i $(FORMAT_FILES)
format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

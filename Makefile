# scalewise — top-level build.
#   make            build ./scalewise (release, -O2) and print the optional features found
#   make test       build everything (release and ASan+UBSan) and run every test; the last line
#                   is "N passed, N failed"
#   make bench      run the benchmarks (figures are printed, never asserted)
#   make fuzz       build the libFuzzer target for the plan loader (needs clang)
#   make clean
#
# Sources are found by wildcard: a new .c in a module folder is built without editing this file.
# Every tests/unit/test_*.c is one test program linked against all module objects.

CC      ?= cc
CFLAGS_COMMON := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
                 -Wshadow -Wno-unused-parameter -fno-strict-aliasing -I. -fopenmp
OPT     ?= -O2 -g
LDLIBS_CORE := -lyaml -ljson-c -lm -ldl -lpthread

BUILD   := build
ABUILD  := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# ------------------------------------------------------------------ optional features
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda) /usr)
NVCC      := $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
HAVE_NCCL := $(shell test -f $(CUDA_HOME)/include/nccl.h -o -f /usr/include/nccl.h && echo 1)
HAVE_MPI  := $(shell command -v mpicc >/dev/null 2>&1 && echo 1)
HAVE_HWLOC := $(shell pkg-config --exists hwloc 2>/dev/null && echo 1)
HAVE_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1)
HAVE_NCURSES := $(shell pkg-config --exists ncursesw 2>/dev/null && echo 1)

ifeq ($(HAVE_HWLOC),1)
  CFLAGS_COMMON += -DSW_HAVE_HWLOC=1 $(shell pkg-config --cflags hwloc)
  LDLIBS_CORE += $(shell pkg-config --libs hwloc)
endif
ifeq ($(HAVE_OPENBLAS),1)
  CFLAGS_COMMON += -DSW_HAVE_OPENBLAS=1 $(shell pkg-config --cflags openblas)
  LDLIBS_CORE += $(shell pkg-config --libs openblas)
endif
ifeq ($(HAVE_NCURSES),1)
  CFLAGS_COMMON += -DSW_HAVE_NCURSES=1 $(shell pkg-config --cflags ncursesw)
  LDLIBS_CORE += $(shell pkg-config --libs ncursesw)
endif
ifneq ($(NVCC),)
  CFLAGS_COMMON += -DSW_HAVE_NVCC=1 \
                   -DSW_CUDA_PLUGIN_PATH='"$(abspath $(BUILD))/libscalewise-cuda.so"'
  # The CUDA backend: kernels/cuda/*.cu built by nvcc into one plugin the core dlopens
  # (executor/backend_cuda_loader.c), and the GPU test programs tests/gpu/*.c|*.cu (they skip
  # with a reason where no GPU is present). Nothing of it is linked into ./scalewise.
  CUDA_SRC    := $(wildcard kernels/cuda/*.cu)
  CUDA_OBJ    := $(CUDA_SRC:kernels/cuda/%.cu=$(BUILD)/cuda/%.o)
  CUDA_HDRS   := $(wildcard kernels/cuda/*.cuh) executor/backend.h executor/comm.h common/common.h common/banned.h
  CUDA_PLUGIN := $(BUILD)/libscalewise-cuda.so
  GPU_TEST_SRC := $(wildcard tests/gpu/*.c tests/gpu/*.cu)
  GPU_TEST_BIN := $(patsubst tests/gpu/%,$(BUILD)/gpu/%,$(basename $(GPU_TEST_SRC)))
endif
# sm_75 (Turing: fp16-mixed's fast path; no bf16 tensor cores), sm_80 and sm_90 machine code
# (sm_86/sm_89 run sm_80's) plus compute_90 PTX, which newer GPUs compile at load time. Every
# warning is an error, as for the C code.
NVCC_ARCH  ?= -gencode arch=compute_75,code=sm_75 -gencode arch=compute_80,code=sm_80 \
              -gencode arch=compute_90,code=[sm_90,compute_90]
NVCCFLAGS  := -std=c++17 -O3 -I. $(NVCC_ARCH) -Werror all-warnings \
              -Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter,-fvisibility=hidden
ifeq ($(HAVE_NCCL),1)
  CFLAGS_COMMON += -DSW_HAVE_NCCL_HEADERS=1
endif
ifeq ($(HAVE_MPI),1)
  CFLAGS_COMMON += -DSW_HAVE_MPI_BUILD=1 \
                   -DSW_MPI_PLUGIN_PATH='"$(abspath $(BUILD))/libscalewise-mpi.so"'
  # The MPI engine (executor/comm_mpi.c) as a plugin the core dlopens, and the program
  # tests/cli/mpi.sh runs under mpirun; neither exists without mpicc.
  MPI_PLUGIN := $(BUILD)/libscalewise-mpi.so
  MPI_TEST_BIN := $(BUILD)/tests/mpi_collectives
endif
CFLAGS_COMMON += -DSW_PROFILES_DIR='"$(abspath profiles)"'

# ------------------------------------------------------------------ sources
MODULE_DIRS := common advisor cli executor kernels/cpu tui
# executor/comm_mpi.c needs mpi.h: it is built by mpicc into the MPI plugin only (below).
LIB_SRC  := $(filter-out executor/comm_mpi.c,$(foreach d,$(MODULE_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB_AOBJ := $(LIB_SRC:%.c=$(ABUILD)/%.o)
HDRS     := $(foreach d,$(MODULE_DIRS),$(wildcard $(d)/*.h $(d)/*.def))
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_ABIN := $(TEST_SRC:tests/unit/%.c=$(ABUILD)/tests/%)
TEST_HELPER_SRC := $(wildcard tests/unit/helper_*.c)
# Shared objects the tests build (fake NVML / CUDA driver); see tests/fake_gpu/.
FAKE_GPU_SRC := $(wildcard tests/fake_gpu/*.c)
FAKE_GPU_SO  := $(FAKE_GPU_SRC:tests/fake_gpu/%.c=$(BUILD)/fake_gpu/lib%.so)

.PHONY: all features test test-release test-asan bench fuzz clean format
all: features scalewise $(MPI_PLUGIN) $(CUDA_PLUGIN) $(GPU_TEST_BIN)

features:
	@printf '%s\n' "scalewise build: optional features" \
	  "$(if $(NVCC),  ✓ nvcc ($(NVCC)),  ✗ nvcc not found: CUDA backend not built)" \
	  "$(if $(HAVE_NCCL),  ✓ NCCL headers,  ✗ NCCL not found: multi-GPU runs disabled)" \
	  "$(if $(HAVE_MPI),  ✓ MPI (mpicc),  ✗ MPI not found: multi-process CPU runs disabled)" \
	  "$(if $(HAVE_HWLOC),  ✓ hwloc,  ✗ hwloc not found: CPU topology from /proc and /sys only)" \
	  "$(if $(HAVE_OPENBLAS),  ✓ OpenBLAS,  ✗ OpenBLAS not found: CPU matmuls use the built-in kernel)" \
	  "$(if $(HAVE_NCURSES),  ✓ ncursesw,  ✗ ncursesw not found: no TUI)"

# Module objects go into a static archive so a test links only the objects it needs.
$(BUILD)/libsw.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(ABUILD)/libsw.a: $(LIB_AOBJ)
	@rm -f $@
	@ar rcs $@ $^

scalewise: $(BUILD)/scalewise.o $(BUILD)/libsw.a
	@echo "  LD      $@"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -c -o $@ $<

$(ABUILD)/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC-ASAN $<"
	@$(CC) $(CFLAGS_COMMON) -O1 -g $(SANFLAGS) -c -o $@ $<

# kernels/cpu/optim.c without errno semantics for sqrtf, so AdamW's loop vectorises (the file
# says why; nothing in it reads errno).
$(BUILD)/kernels/cpu/optim.o $(ABUILD)/kernels/cpu/optim.o: CFLAGS_COMMON += -fno-math-errno

$(BUILD)/tests/%: tests/unit/%.c tests/harness.h $(TEST_HELPER_SRC) $(BUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -Itests -o $@ $< $(TEST_HELPER_SRC) $(BUILD)/libsw.a $(LDLIBS_CORE)

$(ABUILD)/tests/%: tests/unit/%.c tests/harness.h $(TEST_HELPER_SRC) $(ABUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) -O1 -g $(SANFLAGS) -Itests -o $@ $< $(TEST_HELPER_SRC) \
	  $(ABUILD)/libsw.a $(LDLIBS_CORE)

$(ABUILD)/scalewise: $(ABUILD)/scalewise.o $(ABUILD)/libsw.a
	@echo "  LD-ASAN $@"
	@$(CC) $(CFLAGS_COMMON) -O1 -g $(SANFLAGS) -o $@ $^ $(LDLIBS_CORE)

# Fake GPU driver libraries: plain C shared objects, no sanitizer (they are dlopen'ed).
$(BUILD)/fake_gpu/lib%.so: tests/fake_gpu/%.c $(wildcard tests/fake_gpu/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O1 -g -fPIC -shared -o $@ $<

# The MPI plugin: mpicc adds mpi.h and libmpi; only comm_mpi_plugin_init is exported.
$(BUILD)/libscalewise-mpi.so: executor/comm_mpi.c executor/comm.h common/common.h \
  common/banned.h Makefile
	@mkdir -p $(dir $@)
	@echo "  MPICC   $@"
	@mpicc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
	  -Wno-unused-parameter -I. -O2 -g -fPIC -shared -fvisibility=hidden -o $@.tmp $<
	@mv -f $@.tmp $@

# The CUDA plugin: only scalewise_cuda_backend (and its table size) are exported. cuBLASLt is a
# shared library of the toolkit (no static archive here); the rpath finds it where the build
# found it.
$(BUILD)/cuda/%.o: kernels/cuda/%.cu $(CUDA_HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  NVCC    $<"
	@$(NVCC) $(NVCCFLAGS) -c -o $@ $<

$(BUILD)/libscalewise-cuda.so: $(CUDA_OBJ) Makefile
	@echo "  NVCC-LD $@"
	@$(NVCC) -shared --cudart=static $(NVCC_ARCH) -o $@.tmp $(CUDA_OBJ) -lcublasLt \
	  -Xlinker -rpath,$(CUDA_HOME)/lib64
	@mv -f $@.tmp $@

# GPU test programs: a .c one goes through the loader like the executor (no CUDA headers); a
# .cu one may also call the kcuda_* entries directly (linked with the plugin's objects).
$(BUILD)/gpu/%: tests/gpu/%.c tests/harness.h $(BUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -Itests -o $@ $< $(BUILD)/libsw.a $(LDLIBS_CORE)

$(BUILD)/gpu/%: tests/gpu/%.cu tests/harness.h $(CUDA_OBJ) $(CUDA_HDRS) $(BUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(NVCC) $(NVCCFLAGS) --cudart=static -Itests -o $@ $< $(CUDA_OBJ) $(BUILD)/libsw.a \
	  -lcublasLt -Xcompiler -fopenmp -Xlinker -rpath,$(CUDA_HOME)/lib64 $(LDLIBS_CORE)

$(BUILD)/tests/mpi_collectives: tests/mpi/mpi_collectives.c tests/harness.h $(BUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -Itests -o $@ $< $(BUILD)/libsw.a $(LDLIBS_CORE)

# ------------------------------------------------------------------ CUDA kernels on the CPU
# tests/cuda_emu (docs/cuda.md, "Kernel logic without a GPU"): kernels/cuda/k_*.cu, turned into
# C++ by tests/cuda_emu/cu2cpp.pl (the <<<>>> launches and extern __shared__ arrays only) and
# compiled by g++ against the CPU emulation tests/cuda_emu/cuda_emu.h; build/tests/test_cuda_emu
# runs them against kernels/cpu. Needs g++ and perl, not nvcc. The kernel files also get
# -Wno-unknown-pragmas (#pragma unroll); -ffp-contract=off keeps each fp32 operation one rounding
# on every host, as in the CPU kernels. kernels/cuda/matmul.cu runs on the cuBLASLt fake
# tests/cuda_emu/cublaslt_emu.cpp (-O2: its GEMM loop is most of the matmul checks' time), and
# tests/cuda_emu/backend_cases.c (C) runs tests/gpu/test_cuda_backend.c's matmul cases on it;
# tests/cuda_emu/plugin_standin.cpp stands in for plugin.cu's helpers.
# The emulated plugin build/cuda_emu/libscalewise-cuda-emu.so is the real plugin's link list
# (every kernels/cuda/*.cu: plugin.cu and comm_nccl.cu too) translated the same way, compiled
# -fPIC -fvisibility=hidden and -O2 (the fibers are most of an end-to-end run's time), plus the
# emulation and the cuBLASLt fake. It exports what build/libscalewise-cuda.so exports
# (tests/cuda_emu/plugin.map), and -z defs proves it needs nothing from the core.
# SCALEWISE_CUDA_PLUGIN=<it> runs the executor on it (tests/cli/cuda_emu_e2e.sh).
EMU_OBJ  := $(patsubst kernels/cuda/%.cu,$(BUILD)/cuda_emu/%.o,$(wildcard kernels/cuda/k_*.cu)) \
            $(BUILD)/cuda_emu/matmul.o $(BUILD)/cuda_emu/cuda_err.o $(BUILD)/cuda_emu/emu.o \
            $(BUILD)/cuda_emu/cublaslt_emu.o \
            $(BUILD)/cuda_emu/plugin_standin.o $(BUILD)/cuda_emu/backend_cases.o
EMU_PLUGIN := $(BUILD)/cuda_emu/libscalewise-cuda-emu.so
EMU_PIC_OBJ := $(patsubst kernels/cuda/%.cu,$(BUILD)/cuda_emu/pic/%.o,$(wildcard kernels/cuda/*.cu)) \
               $(BUILD)/cuda_emu/pic/emu.o $(BUILD)/cuda_emu/pic/cublaslt_emu.o
EMU_DEPS := $(HDRS) $(wildcard kernels/cuda/*.cuh tests/cuda_emu/*.h tests/cuda_emu/include/*.h) \
            Makefile
EMU_CXXFLAGS := -std=c++17 -O1 -g -pthread -I. -Itests -Itests/cuda_emu -Itests/cuda_emu/include \
                -ffp-contract=off -fno-strict-aliasing -Wall -Wextra -Werror
EMU_PICFLAGS := -fPIC -fvisibility=hidden -O2
.PRECIOUS: $(BUILD)/cuda_emu/%.cpp

$(BUILD)/cuda_emu/%.cpp: kernels/cuda/%.cu tests/cuda_emu/cu2cpp.pl
	@mkdir -p $(dir $@)
	@perl tests/cuda_emu/cu2cpp.pl $< >$@.tmp && mv -f $@.tmp $@

$(BUILD)/cuda_emu/%.o: $(BUILD)/cuda_emu/%.cpp $(EMU_DEPS)
	@echo "  CXX-EMU $<"
	@$(CXX) $(EMU_CXXFLAGS) -Wno-unknown-pragmas -c -o $@ $<

$(BUILD)/cuda_emu/emu.o: tests/cuda_emu/emu.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<

$(BUILD)/cuda_emu/plugin_standin.o: tests/cuda_emu/plugin_standin.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(EMU_CXXFLAGS) -c -o $@ $<

$(BUILD)/cuda_emu/cublaslt_emu.o: tests/cuda_emu/cublaslt_emu.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX     $<"
	@$(CXX) $(EMU_CXXFLAGS) -O2 -c -o $@ $<

$(BUILD)/cuda_emu/backend_cases.o: tests/cuda_emu/backend_cases.c tests/gpu/test_cuda_backend.c \
  tests/harness.h $(HDRS) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_COMMON) $(OPT) -Itests -c -o $@ $<

$(BUILD)/tests/test_cuda_emu: tests/cuda_emu/test_cuda_emu.cpp tests/gpu/test_cuda_kernels.cu \
  tests/harness.h $(EMU_OBJ) $(EMU_DEPS) $(BUILD)/libsw.a
	@mkdir -p $(dir $@)
	@echo "  TEST    $@"
	@$(CXX) $(EMU_CXXFLAGS) -fopenmp -o $@ $< $(EMU_OBJ) $(BUILD)/libsw.a $(LDLIBS_CORE)

$(BUILD)/cuda_emu/pic/%.o: $(BUILD)/cuda_emu/%.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX-PIC $<"
	@$(CXX) $(EMU_CXXFLAGS) $(EMU_PICFLAGS) -Wno-unknown-pragmas -c -o $@ $<

$(BUILD)/cuda_emu/pic/emu.o: tests/cuda_emu/emu.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX-PIC $<"
	@$(CXX) $(EMU_CXXFLAGS) $(EMU_PICFLAGS) -c -o $@ $<

$(BUILD)/cuda_emu/pic/cublaslt_emu.o: tests/cuda_emu/cublaslt_emu.cpp $(EMU_DEPS)
	@mkdir -p $(dir $@)
	@echo "  CXX-PIC $<"
	@$(CXX) $(EMU_CXXFLAGS) $(EMU_PICFLAGS) -O2 -c -o $@ $<

$(EMU_PLUGIN): $(EMU_PIC_OBJ) tests/cuda_emu/plugin.map
	@echo "  LD-EMU  $@"
	@$(CXX) -shared -pthread -Wl,-z,defs -Wl,--version-script=tests/cuda_emu/plugin.map \
	  -o $@.tmp $(EMU_PIC_OBJ) -ldl
	@mv -f $@.tmp $@

# The emulated plugin (a few seconds on 2 cores) and test_cuda_model (plain C, built without
# nvcc too) are what tests/cli/cuda_emu_e2e.sh runs.
test: all $(TEST_BIN) $(TEST_ABIN) $(ABUILD)/scalewise $(FAKE_GPU_SO) $(MPI_TEST_BIN) \
  $(CUDA_PLUGIN) $(GPU_TEST_BIN) $(BUILD)/tests/test_cuda_emu $(EMU_PLUGIN) \
  $(BUILD)/gpu/test_cuda_model
	@SW_BUILD=$(BUILD) SW_ABUILD=$(ABUILD) tests/run.sh

bench: scalewise
	@tests/bench/run.sh

fuzz:
	@mkdir -p $(BUILD)/fuzz
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_DEFAULT_SOURCE \
	  -D_POSIX_C_SOURCE=200809L -DSW_PROFILES_DIR='"$(abspath profiles)"' \
	  -o $(BUILD)/fuzz/fuzz_plan tests/fuzz/fuzz_plan.c \
	  $(filter-out cli/%,$(wildcard common/*.c advisor/*.c)) $(LDLIBS_CORE) -fopenmp
	@echo "run: $(BUILD)/fuzz/fuzz_plan -max_total_time=60 tests/fuzz/corpus"

format:
	clang-format -i $(LIB_SRC) $(HDRS) scalewise.c tests/unit/*.c

clean:
	rm -rf $(BUILD) scalewise

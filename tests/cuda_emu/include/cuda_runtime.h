/* The CUDA header cuda_runtime.h, emulated on the CPU: see tests/cuda_emu/cuda_emu.h. */
#include "cuda_emu.h"

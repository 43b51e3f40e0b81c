/* The CUDA header cuda_fp16.h, emulated on the CPU: see tests/cuda_emu/cuda_emu.h. */
#include "cuda_emu.h"

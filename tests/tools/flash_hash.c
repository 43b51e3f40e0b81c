/* FNV-1a hashes of kcpu_flash_attention_forward's out and lse and of the backward's dqkv on fixed
 * inputs (GQA, T 150: two key blocks and a partial third; head sizes 40, 88 and 136, so the
 * 64-float register blocks leave scalar tails), one line per head size. tests/cli/flash_clones.sh
 * links it against kernels/cpu/flash.c built for several instruction sets and requires the same
 * lines from all of them: the file promises the same bits in every clone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cpu/kernels_cpu.h"

static uint64_t fnv(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

int main(void)
{
    const int B = 2, T = 150, NH = 4, NKV = 2;
    for (int HS = 40; HS <= 136; HS += 48) {
        size_t R = (size_t)(NH + 2 * NKV) * HS, nq = (size_t)B * T * R;
        size_t no = (size_t)B * T * NH * HS, nl = (size_t)B * NH * T;
        float *qkv = malloc(nq * sizeof(float)), *o = malloc(no * sizeof(float));
        float *l = malloc(nl * sizeof(float)), *go = malloc(no * sizeof(float));
        float *d = calloc(nq, sizeof(float));
        if (!qkv || !o || !l || !go || !d)
            return 2;
        for (size_t i = 0; i < nq; i++)
            qkv[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        for (size_t i = 0; i < no; i++)
            go[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        kcpu_flash_attention_forward(o, l, qkv, B, T, NH, NKV, HS);
        kcpu_flash_attention_backward(d, go, qkv, o, l, B, T, NH, NKV, HS);
        printf("HS %d: out %016llx lse %016llx dqkv %016llx\n", HS,
               (unsigned long long)fnv(o, no), (unsigned long long)fnv(l, nl),
               (unsigned long long)fnv(d, nq));
        free(qkv), free(o), free(l), free(go), free(d);
    }
    return 0;
}

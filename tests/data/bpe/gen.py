#!/usr/bin/env python3
"""Builds the tiny GPT-2-style BPE fixture in this folder (vocab.json, merges.txt) from the
hand-written merge list below, and prints the ids that GPT-2's reference algorithm (encoder.py
from openai/gpt-2: its regex, bytes_to_unicode and bpe()) gives for the test strings, for
tests/unit/test_data.c. Needs the `regex` module. No network.

    python3 tests/data/bpe/gen.py            # rewrite the fixture, print expected ids
"""
import json
import os

import regex as re

HERE = os.path.dirname(os.path.abspath(__file__))

# Hand-written merges, in rank order, in GPT-2's alphabet (Ġ = space, Ċ = newline,
# "Ã ©" = the two UTF-8 bytes of é).
MERGES = """Ġ t
h e
Ġt he
i n
Ġ a
e r
o u
Ġ s
in g
Ġ w
o r
Ġ m
e n
Ġ h
l l
n d
Ġa nd
Ġ I
Ġ b
o n
Ġ y
Ġy ou
Ġ f
Ġ c
e s
i s
Ġ o
Ġo f
a t
Ġ d
i t
Ġ n
o t
Ġn ot
Ġ p
Ġ l
e a
Ġ T
Ġ Ġ
ĠĠ ĠĠ
Ċ Ċ
Ġ C
i t
C it
Ġm y
' s
' ll
l o
Ġl o
v e
Ġlo ve
1 2
Ã ©
Ġc a
f Ã©
Ġw e
""".strip("\n").split("\n")

TESTS = [
    "the",
    " the",
    "Hello, world!",
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n",
    "I'll say it's   not\tyou 123 45678",
    " café ca fé",
    "<|endoftext|>the end<|endoftext|>",
    "   trailing   ",
    "We love thee, and you love me.\n\n\nAll:",
]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs])), bs


def main():
    b2u, order = bytes_to_unicode()
    vocab = {}
    for b in order:  # byte tokens in the order of GPT-2's encoder.json
        vocab[b2u[b]] = len(vocab)
    ranks = {}
    for line in MERGES:
        a, b = line.split(" ")
        assert a in vocab and b in vocab, line
        if (a, b) in ranks:
            continue
        ranks[(a, b)] = len(ranks)
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with open(os.path.join(HERE, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(HERE, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for (a, b) in ranks:
            f.write(f"{a} {b}\n")

    pat = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(token):
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            first, second = best
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        return word

    def encode(text):
        out = []
        parts = text.split("<|endoftext|>")
        for k, part in enumerate(parts):
            for tok in re.findall(pat, part):
                tok = "".join(b2u[b] for b in tok.encode("utf-8"))
                out.extend(vocab[t] for t in bpe(tok))
            if k + 1 < len(parts):
                out.append(vocab["<|endoftext|>"])
        return out

    print(f"/* vocab size {len(vocab)}, eos {vocab['<|endoftext|>']}, {len(ranks)} merges */")
    for t in TESTS:
        ids = encode(t)
        print(json.dumps(t), ":", ", ".join(str(i) for i in ids))
    return encode


if __name__ == "__main__":
    main()

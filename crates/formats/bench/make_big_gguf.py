#!/usr/bin/env python3
"""Writes a GGUF with a realistic large tokenizer for the header benchmark.

150,000 tokens (6-11 characters), 150,000 merges ("Ġt he" style), f32 scores
and i32 token types, plus 400 tensor infos with tiny data: about 7 MB of
metadata, written by the reference gguf package's GGUFWriter.

usage: make_big_gguf.py OUT.gguf
"""
import random
import sys

import numpy as np
from gguf import GGUFWriter

N_TOKENS = 150_000
N_MERGES = 150_000
N_TENSORS = 400

rng = random.Random(7)
letters = "abcdefghijklmnopqrstuvwxyz"


def piece(lo, hi):
    return "".join(rng.choice(letters) for _ in range(rng.randint(lo, hi)))


def main(path):
    w = GGUFWriter(path, "qwen2")
    w.add_name("bench-vocab")
    w.add_file_type(15)
    w.add_context_length(32768)
    w.add_embedding_length(3584)
    w.add_block_count(28)
    w.add_feed_forward_length(18944)
    w.add_head_count(28)
    w.add_head_count_kv(4)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    tokens = [("Ġ" if i % 2 else "") + piece(6, 10) for i in range(N_TOKENS)]
    w.add_token_list(tokens)
    w.add_token_scores([float(-i) for i in range(N_TOKENS)])
    w.add_token_types([1] * N_TOKENS)
    w.add_token_merges([f"Ġ{piece(2, 6)} {piece(3, 7)}" for _ in range(N_MERGES)])
    w.add_bos_token_id(151643)
    w.add_eos_token_id(151645)
    w.add_chat_template("{% for message in messages %}{{ message['content'] }}{% endfor %}" * 20)
    for i in range(N_TENSORS):
        w.add_tensor(f"blk.{i // 14}.t{i}.weight", np.zeros(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])

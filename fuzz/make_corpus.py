#!/usr/bin/env python3
"""Writes the small seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the repo's fixtures.

Multi-file inputs are the files joined by NUL bytes, in the order each target documents.
Run from anywhere: python3 fuzz/make_corpus.py (the committed corpus is its output)."""
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def rd(rel, mode="r"):
    with open(os.path.join(ROOT, rel), mode) as f:
        return f.read()


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def join(*parts):
    return b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, bytes)."""
    header, buf = {}, b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + buf


def subset(rel, keep):
    """A few tensors of a fixture checkpoint, rewritten as a small file."""
    b = rd(rel, "rb")
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for k in keep:
        v = h[k]
        s, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], b[base + s:base + e])
    return safetensors(out, meta)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    tiny = "tests/data/parity/hf_qwen3_tiny/model.safetensors"
    bnb = "tests/data/parity/qwen3_dense_bnb4/model.safetensors"
    put("safetensors_fuzz", "norms", subset(tiny, ["model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.k_norm.weight"]))
    q = "model.layers.0.self_attn.q_proj.weight"
    put("safetensors_fuzz", "nf4", subset(bnb, [q, q + ".absmax", q + ".quant_map", q + ".nested_absmax",
                                                 q + ".quant_state.bitsandbytes__nf4"]))
    put("safetensors_fuzz", "dtypes", safetensors({
        "b": ("BF16", [2], b"\x80\x3f\x00\x40"), "h": ("F16", [1], b"\x00\x3c"), "i": ("I64", [1, 1], struct.pack("<q", -3)),
        "u": ("U8", [3], b"abc"), "e": ("F32", [0, 4], b""), "s": ("F64", [], struct.pack("<d", 1.5)), "t": ("BOOL", [1], b"\x01")},
        {"format": "pt"}))

    # tokenizer.json \0 tokenizer_config.json \0 text: gym's byte-level tokenizer pipeline with a few merges.
    byte_chars = [chr(c) for c in range(ord("!"), ord("~") + 1)] + [chr(c) for c in range(0xA1, 0xAD)] + [chr(c) for c in range(0xAE, 0x100)]
    bs = [ord(c) for c in byte_chars]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    merges = ["Ġ t", "h e", "Ġt he", "i n", "e r"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    added = [{"id": len(vocab) + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": s} for i, (t, s) in enumerate([("<|endoftext|>", True), ("<|im_start|>", True),
                                                                             ("<|im_end|>", True), ("<think>", False)])]
    split = {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": False}
    tok = {"version": "1.0", "added_tokens": added, "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                     "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}
    tcfg = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "model_max_length": 131072}
    examples = json.loads(rd("tests/data/tokenizer/tokenizer_examples.json"))
    put("tokenizer_fuzz", "bpe", join(json.dumps(tok), json.dumps(tcfg), "<|im_start|>user\nthe inner " + examples[1]["text"] + "<|im_end|>"))
    put("tokenizer_fuzz", "no_config", join(json.dumps(tok), "", examples[2]["text"]))
    for i, e in enumerate(examples[:12]):
        put("tokenize_fuzz", f"example_{i}", e["text"])
    put("tokenize_fuzz", "chat", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n12")

    # YAML \0 overrides (one per line)
    for rel in ["configs/tiny/sft_tiny.yaml", "configs/tiny/gspo_tiny.yaml", "tests/data/config/train_lora__qwen3_lora_sft.yaml",
                "tests/data/config/train_qlora__qwen3_lora_sft_otfq.yaml"]:
        put("config_fuzz", os.path.basename(rel), join(rd(rel), "--learning_rate=2e-5\ntrl.beta=0.04\n--bf16\nmax_steps 3"))

    # dataset_info.json \0 data file
    info = json.loads(rd("data/dataset_info.json"))
    for name, entry in info.items():
        data_rel = "data/" + entry["file_name"]
        text = rd(data_rel)
        if data_rel.endswith(".jsonl"):
            text = "\n".join(text.splitlines()[:3]) + "\n"
            entry["file_name"] = "data.jsonl"
        else:
            text = json.dumps(json.loads(text)[:3], ensure_ascii=False)
            entry["file_name"] = "data.json"
        put("dataset_fuzz", name, join(json.dumps({"fuzz": entry}), text))

    # adapter_config.json \0 adapter_model.safetensors (fits the target's q_proj [8, 8] and v_proj [4, 8])
    r = 2
    f32 = lambda k: struct.pack(f"<{k}f", *[0.01 * i for i in range(k)])
    pre = "base_model.model.model.layers.0.self_attn."
    st = safetensors({pre + "q_proj.lora_A.weight": ("F32", [r, 8], f32(r * 8)), pre + "q_proj.lora_B.weight": ("F32", [8, r], f32(8 * r)),
                      pre + "v_proj.lora_A.weight": ("F32", [r, 8], f32(r * 8)), pre + "v_proj.lora_B.weight": ("F32", [4, r], f32(4 * r))})
    acfg = {"peft_type": "LORA", "r": r, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"],
            "bias": "none", "use_rslora": False, "base_model_name_or_path": "tiny", "task_type": "CAUSAL_LM"}
    put("adapter_fuzz", "q_v", join(json.dumps(acfg), st))
    put("adapter_fuzz", "rslora_string_target", join(json.dumps(dict(acfg, use_rslora=True, target_modules="q_proj")), st))

    # trainer_state.json \0 .gym_manifest.json
    state = {"global_step": 4, "epoch": 0.5, "num_input_tokens_seen": 1234, "max_steps": 8, "gym_finished": False,
             "log_history": [{"loss": 1.5, "step": 2}], "gym_data_state": {"epoch": 0, "position": 16, "seed": 42},
             "gym_extra": {"buffer": []}}
    put("checkpoint_fuzz", "resume", join(json.dumps(state), json.dumps({"entries": ["checkpoint-2", "trainer_log.jsonl"]})))
    put("checkpoint_fuzz", "finished", join(json.dumps(dict(state, gym_finished=True)), json.dumps({"entries": []})))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""gym against plain PyTorch eager on the same machine, in the same run.

The peer is the model of `gym bench generate|sft|gspo --shape S` written in eager PyTorch (Debian's
python3-torch: the same LibTorch 1.13 and OpenBLAS as gym), one torch thread: a Qwen3 dense decoder
(RMSNorm, q/k-norm, RoPE, GQA, SwiGLU, tied embeddings) with LoRA r 8 / alpha 16 on every
projection, the way a transformers + PEFT eager model computes it (KV cache grown with torch.cat,
softmax + torch.multinomial sampling, full-sequence logits). Same batch, sequence and token counts
as gym's benches. Each side of each bench runs in its own process (peak RSS per process, from
wait4), alternately, so machine noise hits both alike.

    /usr/bin/python3 bench/compare_peer.py [--gym build/gym] [--shape small] [--quick] [--json-only]

Prints one JSON object (gym, peer, ratios) and a table of gym/peer ratios (speed: >1 = gym faster;
RSS: <1 = gym smaller).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

SHAPES = {
    # vocab, hidden, intermediate, layers, heads, kv heads, head dim
    "tiny": dict(vocab=512, hidden=64, inter=128, layers=2, heads=4, kv=2, hd=16),
    "small": dict(vocab=32000, hidden=512, inter=1536, layers=8, heads=8, kv=4, hd=64),
}


# ----------------------------------------------------------------------------------------------
# The peer (imported lazily: the driver itself needs no torch)

def peer_main(bench, shape):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    c = SHAPES[shape]
    torch.manual_seed(0)
    rank, scaling, eps, theta = 8, 16.0 / 8, 1e-6, 1e6

    class LoraLinear(torch.nn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(o, i) * 0.02, requires_grad=False)
            self.lora_A = torch.nn.Parameter(torch.empty(rank, i))
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = torch.nn.Parameter(torch.zeros(o, rank))

        def forward(self, x):   # PEFT: base + B(A(dropout(x))) * scaling
            return F.linear(x, self.weight) + F.linear(F.linear(x, self.lora_A), self.lora_B) * scaling

    class RMSNorm(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(d), requires_grad=False)

        def forward(self, x):
            v = x.pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(v + eps))

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), -1)

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            h, nh, nkv, d = c["hidden"], c["heads"], c["kv"], c["hd"]
            self.q_proj, self.k_proj = LoraLinear(h, nh * d), LoraLinear(h, nkv * d)
            self.v_proj, self.o_proj = LoraLinear(h, nkv * d), LoraLinear(nh * d, h)
            self.q_norm, self.k_norm = RMSNorm(d), RMSNorm(d)
            self.gate_proj, self.up_proj = LoraLinear(h, c["inter"]), LoraLinear(h, c["inter"])
            self.down_proj = LoraLinear(c["inter"], h)
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(h), RMSNorm(h)

        def forward(self, x, cos, sin, mask, cache):
            b, t, _ = x.shape
            nh, nkv, d = c["heads"], c["kv"], c["hd"]
            r = x
            x = self.input_layernorm(x)
            q = self.q_norm(self.q_proj(x).view(b, t, nh, d)).transpose(1, 2)
            k = self.k_norm(self.k_proj(x).view(b, t, nkv, d)).transpose(1, 2)
            v = self.v_proj(x).view(b, t, nkv, d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None:   # transformers' DynamicCache: concatenate per step
                if cache[0] is not None:
                    k = torch.cat([cache[0], k], 2)
                    v = torch.cat([cache[1], v], 2)
                cache[0], cache[1] = k, v
            g = nh // nkv   # repeat_kv
            s = k.shape[2]
            k = k[:, :, None].expand(b, nkv, g, s, d).reshape(b, nh, s, d)
            v = v[:, :, None].expand(b, nkv, g, s, d).reshape(b, nh, s, d)
            w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d)
            if mask is not None:
                w = w + mask
            w = torch.softmax(w, -1, dtype=torch.float32)
            a = torch.matmul(w, v).transpose(1, 2).reshape(b, t, nh * d)
            x = r + self.o_proj(a)
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Parameter(torch.randn(c["vocab"], c["hidden"]) * 0.02, requires_grad=False)
            self.layers = torch.nn.ModuleList([Layer() for _ in range(c["layers"])])
            self.norm = RMSNorm(c["hidden"])
            d = c["hd"]
            self.inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))

        def forward(self, ids, past=0, caches=None):
            b, t = ids.shape
            x = F.embedding(ids, self.embed)
            pos = torch.arange(past, past + t).float()
            f = pos[:, None] * self.inv_freq[None]
            emb = torch.cat((f, f), -1)
            cos, sin = emb.cos()[None, None], emb.sin()[None, None]
            mask = None
            if t > 1:
                s = past + t
                blocked = torch.arange(s)[None, :] > torch.arange(past, s)[:, None]
                mask = torch.zeros(t, s).masked_fill(blocked, torch.finfo(torch.float32).min)[None, None]
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, mask, None if caches is None else caches[i])
            return F.linear(self.norm(x), self.embed)   # logits of every position, as transformers

    def lora_params(m):
        return [p for n, p in m.named_parameters() if "lora_" in n]

    def generate(m, prompt, n, gen):
        caches = [[None, None] for _ in m.layers]
        logits = m(prompt, 0, caches)[:, -1]
        out, past = [], prompt.shape[1]
        for t in range(n):
            probs = torch.softmax(logits.float(), -1)
            nxt = torch.multinomial(probs, 1, generator=gen)
            out.append(nxt)
            if t + 1 == n:
                break
            logits = m(nxt, past, caches)[:, -1]
            past += 1
        return torch.cat(out, 1)

    def peak_rss_mib():
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    def matmul_gflops():
        a, b_ = torch.randn(1024, 1024), torch.randn(1024, 1024)
        torch.mm(a, b_)
        ts = []
        for _ in range(5):
            s = time.perf_counter()
            torch.mm(a, b_)
            ts.append(time.perf_counter() - s)
        return 2.0 * 1024 ** 3 / sorted(ts)[2] / 1e9

    gflops = matmul_gflops()
    m = Model()
    out = {"bench": bench, "shape": shape, "matmul_gflops": gflops, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if bench == "generate":
        m.eval()
        with torch.no_grad():
            for batch in (8, 1):
                prompt = torch.randint(0, 256, (batch, 32))
                s = time.perf_counter()
                m(prompt)
                prefill = time.perf_counter() - s
                s = time.perf_counter()
                generate(m, prompt, 128, torch.Generator().manual_seed(0))
                total = time.perf_counter() - s
                decode = max(1e-9, total - prefill)
                out["batch_%d" % batch] = {"prefill_tokens_per_s": batch * 32 / prefill,
                                           "decode_tokens_per_s": batch * 128 / decode, "total_s": total}
    elif bench == "sft":
        b, t = (8, 64) if shape == "tiny" else (4, 256)
        opt = torch.optim.AdamW(lora_params(m), lr=1e-4)
        ids = torch.randint(0, 256, (b, t))
        times = []
        for i in range(7):
            s = time.perf_counter()
            logits = m(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]).float(), ids[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()
            if i >= 2:
                times.append(time.perf_counter() - s)
        step = sorted(times)[len(times) // 2]
        h, d = c["hidden"], c["hd"]
        n = c["layers"] * (h * d * (2 * c["heads"] + 2 * c["kv"]) + 3 * h * c["inter"]) + h * c["vocab"]
        tokens = b * t
        flops = 4 * n * tokens + 12.0 * c["layers"] * c["heads"] * d * t * tokens
        out.update({"batch": b, "seq": t, "median_step_s": step, "tokens_per_s": tokens / step,
                    "achieved_gflops": flops / step / 1e9, "fraction_of_matmul_peak": flops / step / 1e9 / gflops})
    elif bench == "gspo":
        opt = torch.optim.AdamW(lora_params(m), lr=1e-5)
        gen_t, lp_t, opt_t = [], [], []
        for i in range(4):
            prompts = torch.randint(0, 256, (2, 32)).repeat_interleave(8, 0)
            s = time.perf_counter()
            m.eval()
            with torch.no_grad():
                comp = generate(m, prompts, 64, torch.Generator().manual_seed(i))
            m.train()
            g = time.perf_counter() - s
            s = time.perf_counter()
            logits = m(torch.cat([prompts, comp], 1))[:, 31:95]
            logp = torch.gather(torch.log_softmax(logits.float(), -1), -1, comp[..., None]).squeeze(-1)
            adv = torch.randn(16)
            old = logp.detach() + 0.01
            # GSPO: sequence-level ratio of the mean log-ratio, clipped
            seq = (logp - old).mean(-1)
            ratio = torch.exp(seq - seq.detach())[:, None] * torch.exp(seq.detach())[:, None]
            loss = -torch.min(ratio * adv[:, None], ratio.clamp(1 - 3e-4, 1 + 4e-4) * adv[:, None]).mean()
            loss.backward()
            lp = time.perf_counter() - s
            s = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss.item()
            o = time.perf_counter() - s
            if i > 0:
                gen_t.append(g), lp_t.append(lp), opt_t.append(o)
        med = lambda v: sorted(v)[len(v) // 2]
        g, lp, o = med(gen_t), med(lp_t), med(opt_t)
        out.update({"generation_s": g, "logprob_forward_backward_s": lp, "optimizer_s": o, "total_s": g + lp + o,
                    "generation_fraction": g / (g + lp + o)})
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


# ----------------------------------------------------------------------------------------------
# The driver

def run_child(cmd, env=None):
    """Runs cmd; returns (last JSON line of stdout, the child's peak RSS in MiB from wait4)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out_b = p.stdout.read()
    err_b = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit("compare_peer: %s failed (exit %d): %s" % (" ".join(cmd), p.returncode, err_b.decode()[-2000:]))
    lines = [l for l in out_b.decode().splitlines() if l.startswith("{")]
    if not lines:
        sys.exit("compare_peer: %s printed no JSON" % " ".join(cmd))
    return json.loads(lines[-1]), ru.ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gym", default="build/gym", help="the gym binary (default build/gym)")
    ap.add_argument("--shape", default="small", choices=sorted(SHAPES))
    ap.add_argument("--quick", action="store_true", help="CI smoke: the tiny shape, one round")
    ap.add_argument("--rounds", type=int, default=1, help="alternate gym/peer this many times; the median is kept")
    ap.add_argument("--benches", default="generate,gspo,sft")
    ap.add_argument("--json-only", action="store_true")
    ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                    help="the interpreter with Debian's python3-torch for the peer (default /usr/bin/python3)")
    ap.add_argument("--peer", choices=["generate", "sft", "gspo"], help=argparse.SUPPRESS)   # internal: one peer bench
    a = ap.parse_args()
    if a.peer:
        peer_main(a.peer, a.shape)
        return
    shape = "tiny" if a.quick else a.shape
    if a.quick:
        a.rounds = 1
    env = dict(os.environ)
    env.setdefault("GYM_LOG_LEVEL", "warn")
    res = {"shape": shape, "gym": {}, "peer": {}, "ratios": {}}
    for bench in a.benches.split(","):
        runs = {"gym": [], "peer": []}
        for _ in range(a.rounds):
            j, rss = run_child([a.gym, "bench", bench, "--shape", shape, "--json"], env)
            j["process_peak_rss_mib"] = rss
            runs["gym"].append(j)
            j, rss = run_child([a.python, os.path.abspath(__file__), "--peer", bench, "--shape", shape], env)
            j["process_peak_rss_mib"] = rss
            runs["peer"].append(j)
        for side in runs:
            key = {"generate": lambda r: -r["batch_8"]["decode_tokens_per_s"], "sft": lambda r: -r["tokens_per_s"],
                   "gspo": lambda r: r["total_s"]}[bench]
            rs = sorted(runs[side], key=key)
            res[side][bench] = rs[len(rs) // 2]
    g, p, r = res["gym"], res["peer"], res["ratios"]
    rows = []
    if "generate" in g:
        for b in ("batch_8", "batch_1"):
            r["decode_%s_speedup" % b] = g["generate"][b]["decode_tokens_per_s"] / p["generate"][b]["decode_tokens_per_s"]
            r["prefill_%s_speedup" % b] = g["generate"][b]["prefill_tokens_per_s"] / p["generate"][b]["prefill_tokens_per_s"]
        r["generate_rss_ratio"] = g["generate"]["process_peak_rss_mib"] / p["generate"]["process_peak_rss_mib"]
        rows.append(("decode batch 8 tok/s", g["generate"]["batch_8"]["decode_tokens_per_s"], p["generate"]["batch_8"]["decode_tokens_per_s"],
                     r["decode_batch_8_speedup"], "generate"))
        rows.append(("decode batch 1 tok/s", g["generate"]["batch_1"]["decode_tokens_per_s"], p["generate"]["batch_1"]["decode_tokens_per_s"],
                     r["decode_batch_1_speedup"], "generate"))
    if "gspo" in g:
        r["gspo_step_speedup"] = p["gspo"]["total_s"] / g["gspo"]["total_s"]
        r["gspo_generation_speedup"] = p["gspo"]["generation_s"] / g["gspo"]["generation_s"]
        r["gspo_logprob_speedup"] = p["gspo"]["logprob_forward_backward_s"] / g["gspo"]["logprob_forward_backward_s"]
        r["gspo_rss_ratio"] = g["gspo"]["process_peak_rss_mib"] / p["gspo"]["process_peak_rss_mib"]
        rows.append(("GSPO step s", g["gspo"]["total_s"], p["gspo"]["total_s"], r["gspo_step_speedup"], "gspo"))
        rows.append(("  generation s", g["gspo"]["generation_s"], p["gspo"]["generation_s"], r["gspo_generation_speedup"], "gspo"))
        rows.append(("  log-prob fwd+bwd s", g["gspo"]["logprob_forward_backward_s"], p["gspo"]["logprob_forward_backward_s"],
                     r["gspo_logprob_speedup"], "gspo"))
    if "sft" in g:
        r["sft_speedup"] = g["sft"]["tokens_per_s"] / p["sft"]["tokens_per_s"]
        r["sft_rss_ratio"] = g["sft"]["process_peak_rss_mib"] / p["sft"]["process_peak_rss_mib"]
        r["sft_fraction_of_matmul_peak_gym"] = g["sft"]["fraction_of_matmul_peak"]
        r["sft_fraction_of_matmul_peak_peer"] = p["sft"]["fraction_of_matmul_peak"]
        rows.append(("SFT tok/s", g["sft"]["tokens_per_s"], p["sft"]["tokens_per_s"], r["sft_speedup"], "sft"))
    print(json.dumps(res))
    if a.json_only:
        return
    print("\n%-22s %12s %12s %9s %12s %12s %9s" % ("", "gym", "peer", "gym/peer", "gym RSS MiB", "peer RSS MiB", "RSS ratio"))
    for name, gv, pv, ratio, bench in rows:
        gr, pr = g[bench]["process_peak_rss_mib"], p[bench]["process_peak_rss_mib"]
        print("%-22s %12.3f %12.3f %8.2fx %12.0f %12.0f %9.2f" % (name, gv, pv, ratio, gr, pr, gr / pr))
    print("(speed ratios: >1 = gym faster; RSS ratio: <1 = gym smaller; matmul GFLOP/s gym %.0f, peer %.0f)" %
          (next(iter(g.values()))["matmul_gflops"], next(iter(p.values()))["matmul_gflops"]))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates the small datasets gym ships in data/ (deterministic; rerun to reproduce them).

- arithmetic_rl.jsonl  : RL prompts with a numeric `answer` column (TRL prompt-only format)
- arithmetic_sft.json  : the same task as alpaca SFT rows (warm start for RL on tiny models)
- alpaca_demo.json     : a tiny alpaca-format SFT set (instruction / input / output / system)
- sharegpt_demo.json   : the same kind of data in sharegpt form (conversations: from / value)
- openai_demo.jsonl    : OpenAI messages form
- dataset_info.json    : the LLaMA-Factory registry of all of them
"""
import json
import random
from pathlib import Path

out = Path(__file__).resolve().parent.parent / "data"
out.mkdir(exist_ok=True)
rng = random.Random(20261122)


def arithmetic_rows(n):
    rows = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        op = rng.choice(["+", "-"]) if a >= b else "+"
        ans = a + b if op == "+" else a - b
        rows.append((f"{a}{op}{b}=", str(ans)))
    return rows


rl = arithmetic_rows(512)
with open(out / "arithmetic_rl.jsonl", "w") as f:
    for q, a in rl:
        f.write(json.dumps({"prompt": q, "answer": a}) + "\n")

sft = arithmetic_rows(512)
json.dump([{"instruction": q, "input": "", "output": a} for q, a in sft],
          open(out / "arithmetic_sft.json", "w"), indent=1)

facts = [
    ("What is the capital of France?", "", "Paris."),
    ("Translate to French.", "Good morning", "Bonjour."),
    ("Name a prime number greater than 10.", "", "11 is a prime number."),
    ("Add the numbers.", "12 and 30", "12 + 30 = 42."),
    ("What colour is the sky on a clear day?", "", "Blue."),
    ("Reverse the word.", "gym", "myg"),
    ("Give the plural of mouse.", "", "Mice."),
    ("Is 7 even or odd?", "", "7 is odd."),
    ("Summarise in one word.", "The cat sat on the mat and slept all day.", "Nap."),
    ("Write a haiku about code.", "", "Loops fold into light\nfunctions call their quiet names\nthe build turns green now"),
]
alpaca = []
for i in range(40):
    ins, inp, outp = facts[i % len(facts)]
    row = {"instruction": ins, "input": inp, "output": outp}
    if i % 4 == 0:
        row["system"] = "You are a concise assistant."
    if i % 5 == 0:
        row["history"] = [["Hi!", "Hello! How can I help?"]]
    alpaca.append(row)
json.dump(alpaca, open(out / "alpaca_demo.json", "w"), indent=1, ensure_ascii=False)

sharegpt = []
for i in range(40):
    ins, inp, outp = facts[(i * 3) % len(facts)]
    user = ins + ("\n" + inp if inp else "")
    conv = [{"from": "human", "value": user}, {"from": "gpt", "value": outp}]
    if i % 3 == 0:
        conv = [{"from": "human", "value": "Hi!"}, {"from": "gpt", "value": "Hello!"}] + conv
    row = {"conversations": conv}
    if i % 4 == 0:
        row["system"] = "You are a concise assistant."
    sharegpt.append(row)
json.dump(sharegpt, open(out / "sharegpt_demo.json", "w"), indent=1, ensure_ascii=False)

with open(out / "openai_demo.jsonl", "w") as f:
    for i in range(20):
        ins, inp, outp = facts[(i * 7) % len(facts)]
        msgs = [{"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": ins + ("\n" + inp if inp else "")},
                {"role": "assistant", "content": outp}]
        f.write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")

info = {
    "arithmetic_rl": {"file_name": "arithmetic_rl.jsonl", "columns": {"prompt": "prompt"}},
    "arithmetic_sft": {"file_name": "arithmetic_sft.json"},
    "alpaca_demo": {"file_name": "alpaca_demo.json"},
    "sharegpt_demo": {"file_name": "sharegpt_demo.json", "formatting": "sharegpt",
                      "columns": {"messages": "conversations", "system": "system"}},
    "openai_demo": {"file_name": "openai_demo.jsonl", "formatting": "openai",
                    "columns": {"messages": "messages"}},
}
json.dump(info, open(out / "dataset_info.json", "w"), indent=2)
print(f"wrote {len(info)} datasets to {out}")

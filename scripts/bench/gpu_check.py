"""GPU check: BERT-base fine-tuning throughput (fp32 vs bf16), MFU, full-ranking evaluation speed.

Run by scripts/gpu_check.sh on a machine with a CUDA GPU (made for one H200); needs no network (the
BERT-base is built from its config with random weights). Parts that need a GPU are skipped, with the
reason in the JSON, when there is none. GPU_CHECK_TINY=1 shrinks every size so that the whole script
runs in seconds on a CPU (a smoke test of the script itself, not a measurement).

  finetune  BertForSequenceClassification (BERT-base: 12 layers, 768 wide, 110M parameters), AdamW,
            batch 32 x 128 tokens, fp32 and bf16 autocast: samples/s and tokens/s over timed steps after
            warm-up; MFU = 6 x parameters x tokens/s / peak (H200 dense bf16 peak 989 TFLOPS, for both:
            the fp32 number says how far plain fp32 is from what the chip can do)
  ranking   recfit.evaluation.ranking (top_k_items + ranking_metrics) on 50,000 users x 20,000 items,
            chunks of 4,096 users, vs the RecBole-style path on the same device (full score matrix per
            chunk, history set to -inf, torch.topk, a dense positive matrix gathered; NDCG only, where
            recfit computes six metrics); max abs difference of per-user NDCG@10

Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import torch

TINY = os.environ.get("GPU_CHECK_TINY") == "1"
H200_BF16_DENSE_FLOPS = 989e12
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def finetune(precision: str) -> dict:
    """Training steps of a random-init BERT-base classifier at one precision."""
    from transformers import BertConfig, BertForSequenceClassification

    if TINY:
        config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        batch, length, warmup, steps = 4, 16, 1, 3
    else:
        config = BertConfig()  # bert-base-uncased's architecture (vocab 30,522)
        batch, length, warmup, steps = 32, 128, 10, 40
    config.num_labels = 2
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).to(DEVICE).train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(1000, config.vocab_size, (batch, length), device=DEVICE)
    labels = torch.randint(0, 2, (batch,), device=DEVICE)
    autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    seconds = time.perf_counter() - start
    tokens_per_s = steps * batch * length / seconds
    result = {
        "parameters": parameters,
        "batch": batch,
        "tokens_per_row": length,
        "timed_steps": steps,
        "samples_per_s": steps * batch / seconds,
        "tokens_per_s": tokens_per_s,
        "mfu_vs_h200_bf16_peak": 6 * parameters * tokens_per_s / H200_BF16_DENSE_FLOPS,
    }
    if DEVICE == "cuda":
        result["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.reset_peak_memory_stats()
    return result


def ranking() -> dict:
    """recfit's evaluator vs a RecBole-style evaluator on one device, same inputs."""
    from recfit.evaluation.ranking import ranking_metrics, top_k_items

    users, items, dim, chunk, k = (2_000, 1_000, 16, 512, 10) if TINY else (50_000, 20_000, 64, 4_096, 10)
    generator = torch.Generator(device="cpu").manual_seed(0)
    user_vectors = torch.randn(users, dim, generator=generator).to(DEVICE)
    item_vectors = torch.randn(items, dim, generator=generator).to(DEVICE)
    # 90 history items and 10 held-out items per user, all distinct (the head of a random permutation)
    torch.manual_seed(0)
    picked = torch.rand(users, items, device=DEVICE).argsort(dim=1)[:, :100]
    seen, targets = picked[:, :90].contiguous(), picked[:, 90:].contiguous()

    def recfit_eval() -> torch.Tensor:
        parts = []
        for start in range(0, users, chunk):
            top = top_k_items(
                user_vectors[start : start + chunk], item_vectors, seen[start : start + chunk], k
            )
            parts.append(ranking_metrics(top, targets[start : start + chunk], [k])[f"ndcg@{k}"])
        return torch.cat(parts)

    def recbole_style_eval() -> torch.Tensor:
        parts = []
        discounts = 1.0 / torch.log2(torch.arange(2, k + 2, device=DEVICE, dtype=torch.float32))
        for start in range(0, users, chunk):
            scores = user_vectors[start : start + chunk] @ item_vectors.T
            scores.scatter_(1, seen[start : start + chunk], float("-inf"))
            top = scores.topk(k, dim=1).indices
            positive = torch.zeros_like(scores, dtype=torch.int)
            positive.scatter_(1, targets[start : start + chunk], 1)
            hits = positive.gather(1, top).float()
            ideal = discounts[: min(k, targets.shape[1])].sum()
            parts.append((hits * discounts).sum(1) / ideal)
        return torch.cat(parts)

    timings = {}
    values = {}
    for name, evaluate in (("recfit", recfit_eval), ("recbole_style", recbole_style_eval)):
        evaluate()  # warm-up (kernels, allocator)
        seconds = []
        for _ in range(3):
            synchronize()
            start = time.perf_counter()
            values[name] = evaluate()
            synchronize()
            seconds.append(time.perf_counter() - start)
        timings[name] = statistics.median(seconds)
    return {
        "users": users,
        "items": items,
        "user_chunk": chunk,
        "recfit_seconds": timings["recfit"],
        "recbole_style_seconds": timings["recbole_style"],
        "ratio_recbole_style_over_recfit": timings["recbole_style"] / timings["recfit"],
        "ndcg@10": values["recfit"].mean().item(),
        "max_abs_diff_ndcg_per_user": (values["recfit"] - values["recbole_style"]).abs().max().item(),
    }


def main() -> None:
    report: dict = {"device": DEVICE, "tiny": TINY, "torch": torch.__version__}
    if DEVICE == "cuda":
        report["gpu"] = torch.cuda.get_device_name(0)
    if DEVICE != "cuda" and not TINY:
        report["finetune"] = report["ranking"] = {
            "skipped": "no CUDA device (GPU_CHECK_TINY=1 runs tiny sizes)"
        }
        print(json.dumps(report, indent=1))
        return
    report["finetune"] = {"fp32": finetune("fp32")}
    if DEVICE == "cuda" and torch.cuda.is_bf16_supported():
        report["finetune"]["bf16"] = finetune("bf16")
        report["finetune"]["speedup_bf16_over_fp32"] = (
            report["finetune"]["bf16"]["samples_per_s"] / report["finetune"]["fp32"]["samples_per_s"]
        )
    else:
        report["finetune"]["bf16"] = {"skipped": "bf16 needs a CUDA device that supports it"}
    report["ranking"] = ranking()
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Peak temporary memory of the video-colorization attention, dense vs
blocked, from XLA's compiled memory analysis (deterministic on CPU; nothing
is run).

Launch::

    python benchmarks/video_attention_memory.py

What is measured. The function compiled is the loss of
``ssljax.methods.video_colorization``: ``y = attend(f_ref, onehot(c_ref),
f_tgt)`` followed by the cross-entropy against the target clusters
(``ssljax.losses.video_colorization_loss``), with its
gradient w.r.t. both embeddings (what a train step needs), and the forward
alone (what evaluation needs), for

* ``dense`` (:func:`attend_dense`: the whole ``[B, M, N]`` attention), and
* ``blocked`` (:func:`attend_blocked`: ``lax.map`` over blocks of target
  pixels, each block rematerialized in the backward pass),

at three sizes: the evaluated one (72x96 frames, embeddings at 1/4 = 18x24,
3 reference frames, D = 64, K = 16, batch 16 as in training), 4x larger
frames (288x384, batch 1), and vtest.avi's full 576x768 (batch 1). Reported:
``jax.jit(f).lower(...).compile().memory_analysis().temp_size_in_bytes``
(XLA's buffer assignment: the peak of the temporaries, without arguments and
outputs) and the analytic size of one dense attention matrix, ``4 B M N``
bytes. JSON goes to ``--out`` (default
``benchmarks/results/video_attention_memory.json``).
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from _machine import cpu_model  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from ssljax.losses import video_colorization_loss  # noqa: E402
from ssljax.methods.video_colorization import (attend_blocked,  # noqa: E402
                                               attend_dense)

SIZES = [
    # name, frame (H, W), batch
    ("evaluated 72x96 (grid 18x24), batch 16", (72, 96), 16),
    ("288x384 (grid 72x96), batch 1", (288, 384), 1),
    ("vtest full 576x768 (grid 144x192), batch 1", (576, 768), 1),
]


def measure(fn, *args) -> int:
  compiled = jax.jit(fn).lower(*args).compile()
  return int(compiled.memory_analysis().temp_size_in_bytes)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--num_refs", type=int, default=3)
  ap.add_argument("--dim", type=int, default=64)
  ap.add_argument("--clusters", type=int, default=16)
  ap.add_argument("--stride", type=int, default=4)
  ap.add_argument("--block_sizes", default="96,512")
  ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" /
                                       "video_attention_memory.json"))
  args = ap.parse_args()
  blocks = [int(b) for b in args.block_sizes.split(",")]
  rows = []
  for name, (h, w), b in SIZES:
    m = (h // args.stride) * (w // args.stride)
    n = args.num_refs * m
    f_ref = jax.ShapeDtypeStruct((b, n, args.dim), jnp.float32)
    f_tgt = jax.ShapeDtypeStruct((b, m, args.dim), jnp.float32)
    c_ref = jax.ShapeDtypeStruct((b, n), jnp.int32)
    tgt = jax.ShapeDtypeStruct((b, m), jnp.int32)

    def make(attn):
      def loss(fr, ft, cr, t):
        y = attn(fr, jax.nn.one_hot(cr, args.clusters), ft, temperature=1.0)
        return video_colorization_loss(y, t)
      fwd = lambda fr, ft, cr: attn(fr, jax.nn.one_hot(cr, args.clusters), ft,
                                    temperature=0.5)
      return jax.value_and_grad(loss, argnums=(0, 1)), fwd

    row = {"size": name, "frame": [h, w], "batch": b, "target_pixels_M": m,
           "reference_pixels_N": n,
           "dense_attention_matrix_bytes": 4 * b * m * n}
    grad_fn, fwd_fn = make(attend_dense)
    row["dense"] = {"train_temp_bytes": measure(grad_fn, f_ref, f_tgt, c_ref, tgt),
                    "forward_temp_bytes": measure(fwd_fn, f_ref, f_tgt, c_ref)}
    for blk in blocks:
      if blk >= m:
        continue
      attn = lambda *a, blk=blk, **k: attend_blocked(*a, **k, block_size=blk)
      grad_fn, fwd_fn = make(attn)
      row[f"blocked_{blk}"] = {
          "train_temp_bytes": measure(grad_fn, f_ref, f_tgt, c_ref, tgt),
          "forward_temp_bytes": measure(fwd_fn, f_ref, f_tgt, c_ref)}
    print(json.dumps(row), flush=True)
    rows.append(row)
  out = {
      "command": " ".join(["python"] + sys.argv),
      "date": datetime.date.today().isoformat(),
      "machine": {"cpu": cpu_model(), "python": platform.python_version(),
                  "jax": jax.__version__, "backend": jax.default_backend()},
      "what": "XLA compiled memory_analysis().temp_size_in_bytes of the "
              "attention + cross-entropy with gradients w.r.t. both "
              "embeddings (train) and of the attention alone (forward); "
              f"R={args.num_refs} reference frames, D={args.dim}, "
              f"K={args.clusters}, embeddings at 1/{args.stride}",
      "rows": rows,
  }
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(out, f, indent=1)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()

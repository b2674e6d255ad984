"""Cost of a fine-tuning step (``ssljax.eval.finetune``) on a real run, and
why it is a Python loop over a jitted step rather than one ``lax.scan``.

    python benchmarks/finetune_step.py --workdir workdirs/simclr_fashion_mnist

Side by side in one process, on the run's encoder with batch 128 from 600
labelled training images: the same train step (forward + backward through
the encoder in training mode, SGD) called from a Python loop, and run as a
``lax.scan`` of ``--steps`` steps. Compilation is excluded (each is called
once before timing). Then :func:`ssljax.eval.finetune.finetune` itself for
``--steps`` steps (compilation included). Prints seconds per step and the
ratio.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax.augment import to_float
from ssljax.eval import finetune
from ssljax.run import restore


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default="workdirs/simclr_fashion_mnist")
  p.add_argument("--steps", type=int, default=8)
  p.add_argument("--repeats", type=int, default=2)
  args = p.parse_args()
  run = restore(args.workdir)
  tr = run.train
  model, pre = finetune._model_parts(run.method)  # pylint: disable=protected-access
  v = finetune.encoder_variables(run.state)
  idx = finetune.balanced_subset(tr.labels, fraction=0.01, seed=0)
  ims = jnp.asarray(tr.images[idx])
  labs = jnp.asarray(tr.labels[idx].astype(np.int32))
  tx = optax.chain(optax.add_decayed_weights(5e-4),
                   optax.sgd(0.05, momentum=0.9, nesterov=True))

  def loss_fn(t, bs, x, y):
    f, upd = model.apply({"params": t["encoder"], "batch_stats": bs}, x,
                         train=True, method=type(model).encode,
                         mutable=["batch_stats"])
    logits = f.astype(jnp.float32) @ t["head"]["w"] + t["head"]["b"]
    return (optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
            upd["batch_stats"])

  def step(t, bs, os, k):
    i = jax.random.randint(k, (128,), 0, len(idx))
    (loss, bs), g = jax.value_and_grad(loss_fn, has_aux=True)(
        t, bs, pre(to_float(ims[i])), labs[i])
    u, os = tx.update(g, os, t)
    return optax.apply_updates(t, u), bs, os, loss

  jstep = jax.jit(step)

  @jax.jit
  def scan(t, bs, os, keys):
    def body(c, k):
      *c, loss = step(*c, k)
      return tuple(c), loss
    return jax.lax.scan(body, (t, bs, os), keys)

  width = jax.eval_shape(lambda x: model.apply(
      v, pre(to_float(x)), train=False, method=type(model).encode),
      ims[:1]).shape[-1]
  t0 = {"encoder": v["params"],
        "head": {"w": jnp.zeros((width, 10)), "b": jnp.zeros(10)}}
  init = (t0, v["batch_stats"], tx.init(t0))
  keys = jax.random.split(jax.random.key(0), args.steps)

  def loop(c):
    for k in keys:
      *c, loss = jstep(*c, k)
    return jax.block_until_ready(loss)

  loop(init)                                         # compile
  jax.block_until_ready(scan(*init, keys))            # compile
  times = {"python loop": [], "lax.scan": []}
  for _ in range(args.repeats):
    t = time.perf_counter()
    loop(init)
    times["python loop"].append((time.perf_counter() - t) / args.steps)
    t = time.perf_counter()
    jax.block_until_ready(scan(*init, keys))
    times["lax.scan"].append((time.perf_counter() - t) / args.steps)
  best = {k: min(x) for k, x in times.items()}
  for k, s in best.items():
    print(f"{k:12s} {s:.3f} s/step (best of {args.repeats})")
  print(f"lax.scan / python loop = {best['lax.scan'] / best['python loop']:.1f}x")
  t = time.perf_counter()
  ft = finetune.finetune(run.method, run.state, tr.images, tr.labels,
                         num_classes=tr.num_classes, steps=args.steps,
                         batch_size=128, subset=idx)
  jax.block_until_ready(ft["params"])
  print(f"finetune(): {args.steps} steps incl. compilation "
        f"{time.perf_counter() - t:.1f} s")
  run.close()


if __name__ == "__main__":
  main()

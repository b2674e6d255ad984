"""Train colorization / split-brain on crops of the opencv-doc photos for a
fixed wall-clock budget, then evaluate on crops of the held-out photos.

    python experiments/colorization_photos_eval.py --method colorization --seconds 300
    python experiments/colorization_photos_eval.py --method splitbrain --seconds 180
    python experiments/colorization_photos_eval.py --method colorization \
        --override '{"colorization.rebalance_lambda": 1.0}' \
        --load workdirs/colorization_norebal_state.msgpack   # evaluate only

Colorization quality on held-out crops: the ab error (mean L2 distance in ab
units), the share within 10 / 25, the bin accuracy, and the PSNR (dB, dm-pix)
of the recoloured RGB crop (true L + predicted ab -> sRGB) against the
original, each beside constant-colour baselines (gray ab = 0, the training
mean ab, the most frequent training bin).
"""

if __name__ == "__main__":  # first, before the heavy imports (ssljax/startup.py)
  from ssljax.startup import prepare_cpu_process
  prepare_cpu_process()

import argparse
import importlib.util
import json
import os
import time

import jax
import jax.numpy as jnp
import dm_pix as pix
import numpy as np

from ssljax.eval.features import map_in_batches
from ssljax import data as data_lib
from ssljax.augment.lab import (lab_to_rgb, nearest_ab_bin, rgb_to_lab,
                                soft_encode_ab)
from ssljax.data.photos import find_photos, load_photos, read_photo, split_photos
from ssljax.methods.colorization import (build_colorization, colorization_loss,
                                         save_colorization_png)
from ssljax.train.build import build_encoder
from ssljax.train.optim import make_optimizer, warmup_cosine_schedule

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def load_config(name):
  path = os.path.join(ROOT, "experiments", "configs", f"{name}_photos.py")
  spec = importlib.util.spec_from_file_location(name, path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config()


def batched(fn, images, batch=256):
  return map_in_batches(fn, images, batch)


def make_method(config, num_steps):
  opt = config.optimizer
  steps_per_epoch = 26 * 256 // config.batch_size
  warmup = min(int(opt.warmup_epochs * steps_per_epoch), num_steps // 4)
  schedule = warmup_cosine_schedule(opt.base_lr, num_steps, warmup)
  tx = make_optimizer(opt.name, schedule, weight_decay=opt.weight_decay)
  return build_colorization(config, tx, schedule, build_encoder)


def train(method, config, train_ds, seconds, num_steps=None):
  key = jax.random.key(config.seed)
  init_key, data_key = jax.random.split(key)
  t0 = time.perf_counter()
  state = method.init(init_key, train_ds.image_shape)
  init_state = jax.tree.map(jnp.copy, state)
  step = jax.jit(method.train_step, donate_argnums=0)
  it = data_lib.batches(train_ds, batch_size=config.batch_size, seed=config.seed)
  log = []
  n = 0
  t_start = time.perf_counter()
  print(f"init {t_start - t0:.1f}s", flush=True)
  while True:
    batch = next(it)
    state, metrics = step(state, jnp.asarray(batch["image"]), data_key)
    n += 1
    if n == 1:
      jax.block_until_ready(metrics)
      t_compiled = time.perf_counter()
      print(f"compile+1 step {t_compiled - t_start:.1f}s", flush=True)
    if n % 50 == 0:
      m = {k: float(v) for k, v in jax.device_get(metrics).items()}
      m["step"] = n
      m["time"] = time.perf_counter() - t_compiled
      log.append(m)
      print(json.dumps(m), flush=True)
    if num_steps is not None and n >= num_steps:
      break
    if num_steps is None and time.perf_counter() - t_compiled > seconds:
      break
  jax.block_until_ready(state)
  return state, init_state, n, time.perf_counter() - t_compiled, log


def ab_metrics(pred_ab, true_ab, true_lab=None, images=None):
  """ab distances; with ``true_lab`` and the uint8 ``images``, also the mean
  PSNR (dB) of the recoloured crops (true L, predicted ab) against them."""
  d = np.linalg.norm(pred_ab - true_ab, axis=-1)
  out = {"ab_error": float(d.mean()), "within_10": float((d <= 10).mean()),
         "within_25": float((d <= 25).mean())}
  if true_lab is not None:
    out["psnr_db"] = float(np.mean(recolor_psnr(pred_ab, true_lab, images)))
  return out


@jax.jit
def _recolor_psnr(packed):
  """``packed`` = [predicted ab (2) | true Lab (3) | original RGB in 0-255 (3)]."""
  pred_ab, true_lab, rgb = packed[..., :2], packed[..., 2:5], packed[..., 5:]
  recolored = lab_to_rgb(jnp.concatenate([true_lab[..., :1], pred_ab], -1))
  return pix.psnr(recolored, rgb / 255.0)


def recolor_psnr(pred_ab, true_lab, images):
  """Per-crop PSNR ``[N]`` (dB, range 1) of sRGB(true L, ``pred_ab``) against
  the original crops."""
  pred_ab = np.broadcast_to(np.asarray(pred_ab, np.float32), true_lab[..., 1:].shape)
  packed = np.concatenate([pred_ab, np.asarray(true_lab, np.float32),
                           np.asarray(images, np.float32)], -1)
  return map_in_batches(_recolor_psnr, packed, 256)


def eval_colorization(method, state, init_state, train_ds, test_ds):
  out = _eval_colorization(method, state, init_state, train_ds, test_ds)
  # the same on (unflipped) training crops: the generalization gap
  sub = data_lib.ArrayDataset(train_ds.images[::9], train_ds.labels[::9],
                              train_ds.num_classes, "train_subset")
  tr = _eval_colorization(method, state, init_state, train_ds, sub)
  out["trained_on_train_crops"] = tr["trained"]
  out["gray_on_train_crops"] = tr["gray_ab0"]
  return out


def _eval_colorization(method, state, init_state, train_ds, test_ds):
  bins = method.bin_centers
  lab_fn = jax.jit(rgb_to_lab)
  true_lab = batched(lambda x: lab_fn(x), test_ds.images)
  true_ab = true_lab[..., 1:]
  train_lab = batched(lambda x: lab_fn(x), train_ds.images)
  mean_ab = train_lab[..., 1:].reshape(-1, 2).mean(0)

  logits_fn = jax.jit(method.predict_logits)
  out = {}
  for name, st in (("trained", state), ("random_init", init_state)):
    logits = batched(lambda x: logits_fn(st, x), test_ds.images, 128)
    hw = logits.shape[1:3]
    res = {}
    for t in (0.38, 1.0):
      decode = jax.jit(lambda lg: method._decode(
          lg, test_ds.images.shape[1:3], t))
      ab = batched(decode, logits, 512)
      res[f"T={t}"] = ab_metrics(ab, true_ab, true_lab, test_ds.images)
    # bin accuracy at the prediction resolution
    pooled = true_ab.reshape(len(true_ab), hw[0], true_ab.shape[1] // hw[0],
                             hw[1], true_ab.shape[2] // hw[1], 2).mean((2, 4))
    target_bin = np.asarray(jax.jit(lambda a: nearest_ab_bin(a, bins))(pooled))
    res["bin_acc"] = float((logits.argmax(-1) == target_bin).mean())
    z = jax.jit(lambda a: soft_encode_ab(a, bins))(pooled)
    res["loss_unweighted"] = float(colorization_loss(jnp.asarray(logits), z))
    res["loss_rebalanced"] = float(colorization_loss(
        jnp.asarray(logits), z, class_weights=method.class_weights))
    out[name] = res
  # baselines: constant colours
  for name, ab in (("train_mean_ab", mean_ab), ("gray_ab0", np.zeros(2))):
    pred = np.broadcast_to(ab.astype(np.float32), true_ab.shape)
    r = ab_metrics(pred, true_ab, true_lab, test_ds.images)
    b = int(np.asarray(nearest_ab_bin(jnp.asarray(ab, jnp.float32), bins)))
    r["bin_acc"] = float((target_bin == b).mean())
    r["value"] = [round(float(v), 2) for v in ab]
    out[name] = r
  train_bins = np.bincount(np.asarray(jax.jit(
      lambda a: nearest_ab_bin(a, bins))(train_lab[..., 1:].reshape(-1, 2))),
      minlength=len(bins))
  mode = int(train_bins.argmax())
  out["train_mode_bin"] = {"bin": bins[mode].tolist(),
                           "bin_acc": float((target_bin == mode).mean()),
                           **ab_metrics(np.broadcast_to(bins[mode], true_ab.shape),
                                        true_ab, true_lab, test_ds.images)}
  return out


def holdout_photos(long_side=128, stride=2):
  paths = split_photos(find_photos())["test"]
  from PIL import Image
  images, names = [], []
  for p in paths:
    im = Image.fromarray(read_photo(p)[..., :3])
    w, h = im.size
    s = long_side / max(w, h)
    nw = int(round(w * s / (4 * stride))) * 4 * stride
    nh = int(round(h * s / (4 * stride))) * 4 * stride
    images.append(np.asarray(im.resize((nw, nh), Image.Resampling.BOX)))
    names.append(os.path.basename(p))
  return images, names


def eval_splitbrain(method, state, init_state, train_ds, test_ds):
  ev = jax.jit(method.evaluate)
  out = {}
  for name, st in (("trained", state), ("random_init", init_state)):
    # test crops: 128 per photo, evaluated in chunks of 128 (equal weights)
    per_chunk = [jax.device_get(ev(st, jnp.asarray(test_ds.images[i:i + 128])))
                 for i in range(0, len(test_ds), 128)]
    out[name] = {k: float(np.mean([c[k] for c in per_chunk]))
                 for k in per_chunk[0]}
  # marginal baselines: the training distribution of bins, predicted everywhere
  bins = method.bin_centers
  lab_fn = jax.jit(rgb_to_lab)
  def pooled(images):
    lab = batched(lambda x: lab_fn(x), images)
    n, h, w, _ = lab.shape
    return lab.reshape(n, h // 2, 2, w // 2, 2, 3).mean((2, 4))
  tr, te = pooled(train_ds.images), pooled(test_ds.images)
  nb = jax.jit(lambda a: nearest_ab_bin(a, bins))
  p_ab = np.bincount(np.asarray(nb(tr[..., 1:].reshape(-1, 2))),
                     minlength=len(bins)) + 1.0
  p_ab /= p_ab.sum()
  z = np.asarray(jax.jit(lambda a: soft_encode_ab(a, bins))(te[..., 1:].reshape(-1, 2)))
  l_tr = np.clip(np.floor(tr[..., 0] / 2), 0, 49).astype(int).ravel()
  l_te = np.clip(np.floor(te[..., 0] / 2), 0, 49).astype(int).ravel()
  p_l = np.bincount(l_tr, minlength=50) + 1.0
  p_l /= p_l.sum()
  out["train_marginal"] = {
      "loss_ab": float(-(z * np.log(p_ab)).sum(-1).mean()),
      "loss_l": float(-np.log(p_l[l_te]).mean()),
      "ab_acc": float((z.argmax(-1) == p_ab.argmax()).mean()),
      "l_acc": float((l_te == p_l.argmax()).mean())}
  out["train_marginal"]["loss"] = (out["train_marginal"]["loss_ab"]
                                   + out["train_marginal"]["loss_l"])
  return out


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--method", default="colorization")
  ap.add_argument("--seconds", type=float, default=300)
  ap.add_argument("--bench", type=int, default=0)
  ap.add_argument("--override", default="{}",
                  help='JSON merged into the config, e.g. {"batch_size": 32}')
  ap.add_argument("--tag", default="")
  ap.add_argument("--load", default="",
                  help="evaluate this saved {params, batch_stats} .msgpack "
                       "(written by an earlier run) instead of training")
  ap.add_argument("--png", default=os.path.join(ROOT, "workdirs", "colorization_samples.png"))
  args = ap.parse_args()
  os.makedirs(os.path.join(ROOT, "workdirs"), exist_ok=True)
  config = load_config(args.method)
  config.update_from_flattened_dict(json.loads(args.override))
  print(config.encoder, config.colorization, config.batch_size, flush=True)
  t = time.perf_counter()
  train_ds = load_photos("train", seed=0)
  test_ds = load_photos("test", crops_per_photo=128, seed=1)
  print(f"data {time.perf_counter() - t:.1f}s train {train_ds.images.shape} "
        f"test {test_ds.images.shape}", flush=True)
  if args.bench:
    method = make_method(config, 1000)
    _, _, n, dt, _ = train(method, config, train_ds, 0, num_steps=args.bench)
    print(f"bench: {n} steps in {dt:.1f}s after compile -> "
          f"{dt / max(n - 1, 1):.3f}s/step", flush=True)
    return
  if args.load:
    from flax import serialization  # pylint: disable=import-outside-toplevel
    method = make_method(config, 1000)
    init_state = method.init(jax.random.split(jax.random.key(config.seed))[0],
                             train_ds.image_shape)
    with open(args.load, "rb") as f:
      saved = serialization.msgpack_restore(f.read())
    state = init_state.replace(
        params=serialization.from_state_dict(init_state.params, saved["params"]),
        batch_stats=serialization.from_state_dict(init_state.batch_stats,
                                                  saved["batch_stats"]))
    res = eval_colorization(method, state, init_state, train_ds, test_ds)
    res["loaded"] = args.load
    write_result(res, args.tag or args.method)
    return
  # Time 20 steps, then size the run (and its cosine schedule) to the budget.
  probe = make_method(config, 1000)
  _, _, n, dt, _ = train(probe, config, train_ds, 0, num_steps=21)
  per_step = dt / 20
  steps = max(10, int(args.seconds / per_step))
  print(f"{per_step:.3f}s/step -> {steps} steps", flush=True)
  t = time.perf_counter()
  method = make_method(config, steps)
  print(f"build (prior) {time.perf_counter() - t:.1f}s", flush=True)
  state, init_state, n, dt, log = train(method, config, train_ds, None,
                                        num_steps=steps)
  print(f"trained {n} steps in {dt:.1f}s", flush=True)
  from flax import serialization
  tag = args.tag or args.method
  with open(os.path.join(ROOT, "workdirs", f"{tag}_state.msgpack"), "wb") as f:
    f.write(serialization.to_bytes(jax.device_get(
        {"params": state.params, "batch_stats": state.batch_stats})))
  if args.method == "colorization":
    res = eval_colorization(method, state, init_state, train_ds, test_ds)
    photos, names = holdout_photos()
    cols, means = [], []
    for im in photos:
      cols.append(np.asarray(method.colorize(state, im[None]))[0])
      means.append(np.asarray(method.colorize(state, im[None], temperature=1.0))[0])
    # one PNG: pad photos to one size (they share it after resizing when
    # aspect ratios agree; else pad with white)
    hmax = max(p.shape[0] for p in photos)
    wmax = max(p.shape[1] for p in photos)
    def pad(x):
      x = np.asarray(x, np.float32)
      if x.dtype != np.float32 or x.max() > 1.5:
        x = x / 255.0
      out = np.ones((hmax, wmax, 3), np.float32)
      out[:x.shape[0], :x.shape[1]] = x
      return out
    save_colorization_png(args.png, np.stack([pad(p) for p in photos]),
                          np.stack([pad(c) for c in cols]),
                          extra={"mean (T=1)": np.stack([pad(m) for m in means])},
                          titles=names)
    res["png"] = args.png
  else:
    res = eval_splitbrain(method, state, init_state, train_ds, test_ds)
  res.update(steps=n, train_seconds=round(dt, 1), last_log=log[-1] if log else None,
             test_crops=int(len(test_ds)), train_crops=int(len(train_ds)))
  write_result(res, args.tag or args.method)


def write_result(res, tag):
  """Print ``res`` and write it to ``workdirs/<tag>_eval.json``."""
  print(json.dumps(res, indent=1))
  with open(os.path.join(ROOT, "workdirs", f"{tag}_eval.json"), "w") as f:
    json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()

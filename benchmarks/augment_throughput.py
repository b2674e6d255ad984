"""Augmentation throughput: ssljax's on-device SimCLR recipe vs a per-image
CPU pipeline in a PyTorch DataLoader with the machine's workers.

    python benchmarks/augment_throughput.py                 # idle machine
    python benchmarks/augment_throughput.py --quick         # smoke test

Data: the 32x32 RGB crops of the opencv-doc colour photos
(``ssljax.data.photos.load_photos("train")``, 6,656 crops; Debian
``opencv-doc``), uint8. Recipe: the SimCLR CIFAR-10 views (Chen et al. 2020,
appendix B.9): random resized crop (area 0.08-1, aspect 3/4-4/3) back to
32x32, horizontal flip p 0.5, colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8,
grayscale p 0.2, no blur (``--blur_p 0.5`` adds the ImageNet blur). Each
source image yields two views as float32 ``[B, 32, 32, 3]``; "images/s" counts
source images.

* ssljax: ``jax.jit(simclr_views)`` on a uint8 batch placed on the device
  each step (the copy is timed), one call per batch; ends with
  ``block_until_ready``.
* per-image pipeline: a ``torch.utils.data.Dataset`` whose ``__getitem__``
  applies the recipe to one PIL image twice, batched by a ``DataLoader`` with
  ``--workers`` processes (default: every core). The transforms are
  torchvision's (``transforms.v2``) when torchvision imports; otherwise the
  same ops written with PIL (``ImageEnhance`` brightness/contrast/saturation,
  a hue shift in HSV, ``convert("L")``, crop+resize ``BILINEAR``), which is
  what torchvision's PIL path calls. The JSON records which one ran.

The two are timed alternately in one process (``--rounds`` rounds of
``--batches`` batches each, after a warm-up), and the median images/s of each
and their ratio (ssljax / per-image) are printed and written to ``--out``.
"""

from __future__ import annotations

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import jax
import numpy as np

from _machine import cpu_model, malloc_name  # noqa: E402

import torch  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

from ssljax.augment import simclr_views  # noqa: E402
from ssljax.data.photos import load_photos  # noqa: E402

S = 0.5   # colour strength of SimCLR's CIFAR-10 recipe


def _torchvision_transform(size, blur_p):
  """The recipe in torchvision v2, or None when torchvision is unusable."""
  try:
    from torchvision.transforms import v2  # pylint: disable=import-outside-toplevel
  except Exception:  # pylint: disable=broad-except  (e.g. a CUDA-only build)
    return None
  ops = [v2.PILToTensor(),
         v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
         v2.RandomHorizontalFlip(),
         v2.RandomApply([v2.ColorJitter(0.8 * S, 0.8 * S, 0.8 * S, 0.2 * S)],
                        p=0.8),
         v2.RandomGrayscale(p=0.2)]
  if blur_p > 0:
    k = max(3, int(0.1 * size) // 2 * 2 + 1)
    ops.append(v2.RandomApply([v2.GaussianBlur(k, (0.1, 2.0))], p=blur_p))
  ops.append(v2.ToDtype(torch.float32, scale=True))
  return v2.Compose(ops)


class _PILRecipe:
  """The recipe on one PIL image with PIL's own ops (torchvision's PIL path)."""

  def __init__(self, size, blur_p):
    self.size, self.blur_p = size, blur_p

  def _crop_box(self, rng, w, h):
    area = w * h
    for _ in range(10):
      target = area * rng.uniform(0.08, 1.0)
      ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
      cw = int(round(math.sqrt(target * ratio)))
      ch = int(round(math.sqrt(target / ratio)))
      if 0 < cw <= w and 0 < ch <= h:
        x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        return x, y, x + cw, y + ch
    return 0, 0, w, h

  @staticmethod
  def _hue(img, shift):
    hsv = np.asarray(img.convert("HSV"), np.int16).copy()
    hsv[..., 0] = (hsv[..., 0] + int(shift * 255)) % 256
    return Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")

  def __call__(self, img, rng):
    img = img.crop(self._crop_box(rng, *img.size)).resize(
        (self.size, self.size), Image.BILINEAR)
    if rng.random() < 0.5:
      img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8:
      for op in rng.permutation(4):
        if op == 0:
          img = ImageEnhance.Brightness(img).enhance(rng.uniform(1 - 0.8 * S, 1 + 0.8 * S))
        elif op == 1:
          img = ImageEnhance.Contrast(img).enhance(rng.uniform(1 - 0.8 * S, 1 + 0.8 * S))
        elif op == 2:
          img = ImageEnhance.Color(img).enhance(rng.uniform(1 - 0.8 * S, 1 + 0.8 * S))
        else:
          img = self._hue(img, rng.uniform(-0.2 * S, 0.2 * S))
    if rng.random() < 0.2:
      img = img.convert("L").convert("RGB")
    if self.blur_p > 0 and rng.random() < self.blur_p:
      from PIL import ImageFilter  # pylint: disable=import-outside-toplevel
      img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.1, 2.0)))
    return torch.from_numpy(np.asarray(img, np.float32) / 255.0).permute(2, 0, 1)


class TwoViews(torch.utils.data.Dataset):
  """Two augmented views of image ``i`` (uint8 ``[N, H, W, 3]`` source)."""

  def __init__(self, images, size, blur_p, backend):
    self.images, self.backend = images, backend
    self.tv = _torchvision_transform(size, blur_p) if backend == "torchvision" else None
    self.pil = _PILRecipe(size, blur_p)
    self.rng = np.random.default_rng(0)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    img = Image.fromarray(self.images[i])
    if self.tv is not None:
      return self.tv(img), self.tv(img)
    return self.pil(img, self.rng), self.pil(img, self.rng)


def _worker_init(worker_id):
  info = torch.utils.data.get_worker_info()
  info.dataset.rng = np.random.default_rng(1000 + worker_id)
  torch.set_num_threads(1)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--batches", type=int, default=10)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--workers", type=int, default=os.cpu_count())
  p.add_argument("--blur_p", type=float, default=0.0)
  p.add_argument("--quick", action="store_true")
  p.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results",
      "augment_throughput.json"))
  args = p.parse_args(argv)
  if args.quick:
    args.batch_size, args.batches, args.rounds = 32, 2, 1
  images = load_photos("train", seed=0).images            # [6656, 32, 32, 3]
  size = images.shape[1]
  backend = "torchvision" if _torchvision_transform(size, 0) is not None else "pil"
  print(f"{len(images)} crops {images.shape[1:]}, per-image pipeline: {backend}, "
        f"{args.workers} DataLoader workers", flush=True)

  kwargs = dict(area_range=(0.08, 1.0), strength=S, jitter_p=0.8,
                grayscale_p=0.2, blur_p=args.blur_p)
  views = jax.jit(lambda k, x: simclr_views(k, x, **kwargs))
  rng = np.random.default_rng(0)
  stats = {}    # mean and std of the last batch of views: the same recipe

  def jax_round():
    key = jax.random.key(0)
    out = None
    t = time.perf_counter()
    for i in range(args.batches):
      idx = rng.integers(0, len(images), args.batch_size)
      out = views(jax.random.fold_in(key, i), jax.device_put(images[idx]))
    jax.block_until_ready(out)
    stats["ssljax"] = [float(np.mean(out[0])), float(np.std(out[0]))]
    return args.batches * args.batch_size / (time.perf_counter() - t)

  loader = torch.utils.data.DataLoader(
      TwoViews(images, size, args.blur_p, backend), batch_size=args.batch_size,
      shuffle=True, drop_last=True, num_workers=args.workers,
      persistent_workers=args.workers > 0, worker_init_fn=_worker_init
      if args.workers > 0 else None)

  def torch_round():
    it = iter(loader)
    next(it)            # the workers' first batch: start-up, not throughput
    t = time.perf_counter()
    for _ in range(args.batches):
      v1, v2 = next(it)
    assert v1.shape == (args.batch_size, 3, size, size) and v2.dtype == torch.float32
    stats["per_image"] = [float(v1.mean()), float(v1.std())]
    return args.batches * args.batch_size / (time.perf_counter() - t)

  jax_round()          # compile + warm-up
  res = {"ssljax": [], "per_image": []}
  for r in range(args.rounds):
    order = (("ssljax", jax_round), ("per_image", torch_round))
    for name, fn in (order if r % 2 == 0 else order[::-1]):
      res[name].append(fn())
      print(f"round {r} {name}: {res[name][-1]:.0f} images/s", flush=True)
  med = {k: float(np.median(v)) for k, v in res.items()}
  ratio = med["ssljax"] / med["per_image"]
  print(f"median images/s: ssljax {med['ssljax']:.0f}, per-image "
        f"({backend}, {args.workers} workers) {med['per_image']:.0f}; "
        f"ratio {ratio:.2f}", flush=True)
  print("view mean/std (last batch):", {k: [round(x, 3) for x in v]
                                        for k, v in stats.items()})
  out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(
             timespec="seconds"),
         "machine": {"cpu": cpu_model(), "malloc": malloc_name(), "cores": os.cpu_count(),
                     "platform": platform.platform(), "jax": jax.__version__,
                     "jax_backend": jax.default_backend(),
                     "torch": torch.__version__,
                     "load_avg_at_start": os.getloadavg()},
         "command": " ".join(["python benchmarks/augment_throughput.py"]
                             + (argv if argv is not None else sys.argv[1:])),
         "per_image_backend": backend, "workers": args.workers,
         "batch_size": args.batch_size, "batches": args.batches,
         "blur_p": args.blur_p, "rounds": res, "median_images_per_s": med,
         "ratio_ssljax_over_per_image": ratio,
         "view_mean_std_last_batch": stats}
  if not args.quick:
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(out, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()

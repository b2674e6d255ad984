"""Standard ResNets on the CPU (issue 28, item 1): the SimCLR step of
ResNet-18 and ResNet-50 in ssljax, with what a user gets by default from the
shipped configs on a CPU, against PyTorch eager and whole-step
``torch.compile``, in interleaved rounds with a bootstrap interval.

    python benchmarks/resnet_cpu_step.py --encoder resnet18 \\
        --out benchmarks/results/resnet18_cpu_step.json
    python benchmarks/resnet_cpu_step.py --encoder resnet50 \\
        --out benchmarks/results/resnet50_cpu_step.json

It is ``gpu_session_step.py`` (the step, the PyTorch mirror, the checks that
tie the sides to one function, the rounds) run on the CPU with:

* ssljax's CPU start-up (``ssljax.cpu.startup``: tcmalloc preloaded, the
  shipped XLA:CPU flags), as every launch script has it; PyTorch runs in the
  same process, so both sides use the same allocator;
* ``conv_impl="auto"``, what every shipped config says (on this CPU it
  resolves to the oneDNN kernels, ``ssljax/cpu/conv.py``);
* float32 (PyTorch: channels_last, eager and ``torch.compile`` of the whole
  step with inductor);
* ResNet-18 with the CIFAR stem at 32x32, 128 images (256 views) a step, the
  setting of the issue's table; ResNet-50 with the ImageNet stem at 160x160,
  16 images (32 views);
* 10 rounds of 2 steps per side, alternating order, refused above a load
  average of 0.5 per core (``--allow_load`` times anyway and flags it).

Any ``gpu_session_step.py`` flag given here overrides these defaults
(``--torch eager``, ``--rounds 20``, ``--conv-impl xla`` ...).
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gpu_session_step as gss  # noqa: E402  pylint: disable=wrong-import-position

#: Per encoder: the CPU setting (source images per step, view size).
CPU_DEFAULTS = {
    "resnet18": {"batch_size": 128, "image_size": 32},
    "resnet50": {"batch_size": 16, "image_size": 160},
}


def cpu_argv(argv):
  """``gpu_session_step.py`` arguments: the CPU defaults, then ``argv``
  (argparse keeps the last value, so ``argv`` overrides)."""
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--encoder", choices=sorted(CPU_DEFAULTS),
                   default="resnet18")
  known, _ = pre.parse_known_args(argv)
  d = CPU_DEFAULTS[known.encoder]
  return ["--encoder", known.encoder,
          "--batch-size", str(d["batch_size"]),
          "--image-size", str(d["image_size"]),
          "--dtypes", "float32", "--torch", "eager,compiled",
          "--conv-impl", "auto", "--steps", "2", "--warmup", "2",
          "--rounds", "10", *argv]


def main(argv=None):
  argv = list(sys.argv[1:] if argv is None else argv)
  if "-h" in argv or "--help" in argv:
    print(__doc__)
  return gss.main(cpu_argv(argv))


if __name__ == "__main__":
  main()

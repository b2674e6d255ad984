"""One Markdown and HTML report comparing several evaluated runs.

    python experiments/evaluate.py --workdir workdirs/simclr_fmnist
    python experiments/evaluate.py --workdir workdirs/moco_v2_fmnist
    python experiments/report.py --out reports/fmnist \
        workdirs/simclr_fmnist workdirs/moco_v2_fmnist

Reads ``WORKDIR/eval_suite/report.json`` of each run, writes
``OUT/report.md`` and ``OUT/report.html`` with the tables and the pictures
(copied into ``OUT/<run>/``).
"""

if __name__ == "__main__": import ssljax.cpu.startup  # noqa: E701,F401  (first: CPU speed-ups, ssljax/cpu)

from absl import app, flags

from ssljax.eval.report import write_report

_OUT = flags.DEFINE_string("out", "reports/latest", "Output folder.")


def main(argv):
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError("give one or more evaluated workdirs, e.g. "
                         "python experiments/report.py workdirs/simclr_fmnist")
  md, html = write_report(workdirs, _OUT.value)
  print(f"wrote {md} and {html}")


if __name__ == "__main__":
  app.run(main)

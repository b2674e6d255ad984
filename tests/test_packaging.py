"""Packaging: ``import ssljax`` and the training loop need only
``install_requires``; the heavy extras ([data], [eval], [video], [cpu],
[bench]) are imported where they are used. Checked in a fresh process in which
those packages cannot be imported."""

import configparser
import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: Modules of the optional extras (and the opt-in CPU layer).
BLOCKED = ("sklearn", "matplotlib", "umap", "cv2", "tensorflow",
           "tensorflow_datasets", "torch", "PIL", "ssljax.cpu")

#: Makes the modules named in argv[1] (comma-separated) unimportable.
BLOCKER = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = tuple(sys.argv[1].split(","))

    class Blocker(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
          raise ImportError(f"{name} is blocked (not installed)")
        return None

    sys.meta_path.insert(0, Blocker())
""")

CHILD = BLOCKER + textwrap.dedent("""
    import ssljax, ssljax.train.loop, ssljax.methods
    print(json.dumps(sorted(m for m in sys.modules
                            if any(m == b or m.startswith(b + ".") for b in BLOCKED))))
""")


def test_import_and_training_loop_need_no_extras():
  out = subprocess.run([sys.executable, "-c", CHILD, ",".join(BLOCKED)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  loaded = json.loads(out.stdout.strip().splitlines()[-1])
  assert loaded == [], loaded            # ssljax.cpu among them: it is opt-in


MESSAGES = BLOCKER + textwrap.dedent("""
    import numpy as np
    from ssljax.data import photos, sources, video
    from ssljax.eval import clustering, plots
    calls = {
        "tfds": sources._import_tfds,
        "digits": lambda: sources.load("digits", "train"),
        "photo": lambda: photos.read_photo("x.jpg"),
        "video": video._cv2,
        "figure": plots.figure_class,
        "tsne": lambda: plots.embed_2d(np.zeros((4, 2))),
        "umap": lambda: plots.embed_2d(np.zeros((4, 2)), method="umap"),
        "kmeans": lambda: clustering.cluster_scores(np.zeros((4, 2)), np.zeros(4)),
    }
    out = {}
    for name, call in calls.items():
      try:
        call()
        out[name] = "no error"
      except ImportError as e:
        out[name] = str(e)
    print(json.dumps(out))
""")


def test_missing_extras_are_named():
  """Each optional import says which extra to install."""
  out = subprocess.run([sys.executable, "-c", MESSAGES, ",".join(BLOCKED)],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
  assert out.returncode == 0, out.stderr[-3000:]
  messages = json.loads(out.stdout.strip().splitlines()[-1])
  extra = {"tfds": "data", "digits": "eval", "photo": "data", "video": "video",
           "figure": "eval", "tsne": "eval", "umap": "eval", "kmeans": "eval"}
  for name, want in extra.items():
    assert f"pip install 'ssljax[{want}]'" in messages[name], (name, messages[name])


def test_extras_in_setup_cfg():
  cfg = configparser.ConfigParser()
  cfg.read(REPO / "setup.cfg")
  lines = lambda text: [l.strip() for l in text.splitlines()
                        if l.strip() and not l.strip().startswith("#")]
  required = " ".join(lines(cfg["options"]["install_requires"])).lower()
  for heavy in ("tensorflow", "scikit-learn", "matplotlib", "umap", "opencv",
                "onednn", "torch"):
    assert heavy not in required, heavy
  extras = {k: lines(v) for k, v in cfg["options.extras_require"].items()}
  assert {"data", "eval", "video", "cpu", "test", "bench"} <= set(extras)
  assert any(r.startswith("ssljax[") and all(
      e in r for e in ("data", "eval", "video", "cpu")) for r in extras["test"])
  assert all("platform_machine" in r for r in extras["cpu"])
  assert cfg["options.package_data"]["ssljax.cpu"].strip() == "*.cc"

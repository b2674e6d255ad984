"""benchmarks/_compare.py: interleaved rounds, the median ratio and its
bootstrap interval, the load check and the JSON record; and the dry runs of
the two throughput benchmarks that use it (in subprocesses)."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import _compare as cmp  # benchmarks/ is on pytest's pythonpath (setup.cfg)

REPO = Path(__file__).resolve().parents[1]


def _ratios_around(center, n, sigma=0.05, seed=0):
  """``n`` (odd) ratios whose median is exactly ``center``: center *
  exp(+-noise) in pairs, plus center itself."""
  assert n % 2 == 1
  noise = np.abs(np.random.default_rng(seed).normal(0.0, sigma, n // 2))
  return center * np.exp(np.concatenate([noise, -noise, [0.0]]))


def _summary_of(ratios, **kw):
  """ratio_summary of rounds whose time ratio b / a is ``ratios``."""
  a = np.full(len(ratios), 0.2)
  return cmp.ratio_summary(a, a * np.asarray(ratios), **kw)


# --------------------------------------------------------------------------
# ratio_summary / bootstrap
# --------------------------------------------------------------------------

def test_direction_b_over_a():
  s = cmp.ratio_summary([1.0, 2.0, 0.5], [2.0, 4.0, 1.0])
  assert s["ratios"] == [2.0, 2.0, 2.0]
  assert s["median"] == 2.0 and s["interval"] == [2.0, 2.0]
  assert s["min"] == s["max"] == 2.0 and s["rounds"] == 3
  assert s["faster"] == "a" and not s["parity"]
  assert "side a is that many times faster" in s["direction"]


def test_known_median_inside_interval():
  s = _summary_of(_ratios_around(1.5, 11))
  assert s["median"] == pytest.approx(1.5)
  lo, hi = s["interval"]
  assert lo <= 1.5 <= hi and lo < hi
  assert s["min"] <= lo and hi <= s["max"]
  assert s["confidence"] == 0.95 and s["n_boot"] == 10_000
  assert not s["few_rounds"]


def test_interval_narrows_with_more_rounds():
  width = {}
  for n in (11, 201):
    s = _summary_of(_ratios_around(1.5, n, sigma=0.1, seed=n))
    width[n] = s["interval"][1] - s["interval"][0]
    assert s["median"] == pytest.approx(1.5)
    assert s["interval"][0] <= 1.5 <= s["interval"][1]
  assert 0 < width[201] < 0.5 * width[11]


def test_bootstrap_deterministic_for_a_seed():
  r = np.random.default_rng(2).lognormal(0.3, 0.2, 15)
  first = _summary_of(r, seed=3)
  assert _summary_of(r, seed=3) == first
  assert tuple(first["interval"]) == cmp.bootstrap_median_interval(r, seed=3)
  # A wider confidence gives a wider (or equal) interval.
  lo95, hi95 = cmp.bootstrap_median_interval(r, 0.95)
  lo50, hi50 = cmp.bootstrap_median_interval(r, 0.5)
  assert lo95 <= lo50 and hi50 <= hi95


def test_parity_true_and_false():
  tie = _summary_of(_ratios_around(1.0, 11, sigma=0.1))
  assert tie["parity"] and tie["faster"] == "parity"
  a_faster = _summary_of(_ratios_around(1.3, 11, sigma=0.02))
  assert not a_faster["parity"] and a_faster["faster"] == "a"
  b_faster = _summary_of(_ratios_around(0.7, 11, sigma=0.02))
  assert not b_faster["parity"] and b_faster["faster"] == "b"
  line = cmp.format_summary(b_faster, "jax", "torch")
  assert "torch faster" in line
  assert "no verdict" in cmp.format_summary(_summary_of([1.2, 1.3]), "a", "b")


def test_ratio_summary_rejects_bad_input():
  with pytest.raises(ValueError):
    cmp.ratio_summary([1.0, 2.0], [1.0])
  with pytest.raises(ValueError):
    cmp.ratio_summary([], [])
  with pytest.raises(ValueError):
    cmp.ratio_summary([1.0, 0.0], [1.0, 1.0])


# --------------------------------------------------------------------------
# interleaved_rounds
# --------------------------------------------------------------------------

class _FakeClock:
  def __init__(self):
    self.t = 0.0

  def __call__(self):
    return self.t


def _fake_sides(clock, seconds_per_step, calls):
  def side(name):
    def run(steps):
      calls.append((name, steps))
      clock.t += seconds_per_step[name] * steps
    return run
  return {name: side(name) for name in seconds_per_step}


def test_interleaved_both_sides_every_round_alternating():
  clock, calls = _FakeClock(), []
  sides = _fake_sides(clock, {"a": 0.1, "b": 0.3}, calls)
  r = cmp.interleaved_rounds(sides, rounds=10, steps_per_round=4, warmup=2,
                             clock=clock, log=None, collect=False)
  assert calls[:2] == [("a", 2), ("b", 2)]            # the warm-up, untimed
  timed = calls[2:]
  assert len(timed) == 20 and all(steps == 4 for _, steps in timed)
  for i, order in enumerate(r.orders):
    assert sorted(order) == ["a", "b"]
    assert order == (["a", "b"] if i % 2 == 0 else ["b", "a"])
    assert [n for n, _ in timed[2 * i:2 * i + 2]] == order
  assert r.rounds == 10 and r.steps_per_round == 4 and r.warmup == 2
  assert r.times["a"] == pytest.approx([0.4] * 10)
  assert r.times["b"] == pytest.approx([1.2] * 10)
  s = cmp.ratio_summary(r.times["a"], r.times["b"])
  assert s["median"] == pytest.approx(3.0)
  d = r.to_dict()
  assert d["orders"] == r.orders and d["seconds_per_round"]["a"] == r.times["a"]


def test_interleaved_shuffle_is_a_seeded_permutation():
  clock, calls = _FakeClock(), []
  sides = _fake_sides(clock, {"a": 0.1, "b": 0.2, "c": 0.3}, calls)
  r1 = cmp.interleaved_rounds(sides, rounds=12, steps_per_round=1, warmup=0,
                              order="shuffle", seed=5, clock=clock, log=None,
                              collect=False)
  assert all(sorted(o) == ["a", "b", "c"] for o in r1.orders)
  assert len({tuple(o) for o in r1.orders}) > 1
  assert r1.orders == cmp.round_orders(["a", "b", "c"], 12, "shuffle", seed=5)
  assert [n for n, _ in calls] == [n for o in r1.orders for n in o]
  with pytest.raises(ValueError):
    cmp.round_orders(["a"], 2, "random")


def test_interleaved_self_timed_and_validation():
  r = cmp.interleaved_rounds({"a": lambda steps: 0.5 * steps,
                              "b": lambda steps: 1.0 * steps},
                             rounds=3, steps_per_round=2, warmup=0,
                             self_timed=True, log=None, collect=False)
  assert r.times == {"a": [1.0] * 3, "b": [2.0] * 3}
  with pytest.raises(ValueError):
    cmp.interleaved_rounds({}, log=None)
  with pytest.raises(ValueError):
    cmp.interleaved_rounds({"a": lambda s: None}, rounds=0, log=None)


def test_interleaved_wall_time():
  r = cmp.interleaved_rounds({"sleep": lambda steps: time.sleep(0.01 * steps)},
                             rounds=2, steps_per_round=2, warmup=0, log=None)
  assert all(t >= 0.015 for t in r.times["sleep"])


# --------------------------------------------------------------------------
# check_load / records
# --------------------------------------------------------------------------

def _busy(monkeypatch, load, cores=2):
  monkeypatch.setattr(os, "getloadavg", lambda: (load, load / 2, load / 4))
  monkeypatch.setattr(cmp, "available_cores", lambda: cores)


def test_check_load_refuses_busy_machine(monkeypatch, capsys):
  _busy(monkeypatch, 3.0)
  with pytest.raises(SystemExit) as e:
    cmp.check_load(0.5, log=None)
  assert e.value.code == cmp.EXIT_BUSY == 2
  err = capsys.readouterr().err
  assert "3.00" in err and "--allow_load" in err


def test_check_load_flags_when_allowed(monkeypatch):
  _busy(monkeypatch, 3.0)
  rec = cmp.check_load(0.5, allow_load=True, log=None)
  assert rec["load_flagged"] is True
  assert rec["start"] == [3.0, 1.5, 0.75]
  assert rec["cores"] == 2 and rec["limit"] == 1.0
  _busy(monkeypatch, 2.0)
  assert cmp.finish_load(rec)["end"] == [2.0, 1.0, 0.5]


def test_check_load_idle_machine(monkeypatch):
  _busy(monkeypatch, 0.3, cores=4)
  rec = cmp.check_load(0.25, log=None)
  assert rec["load_flagged"] is False and rec["limit"] == 1.0


def test_results_record_fields(monkeypatch, tmp_path):
  _busy(monkeypatch, 3.0)
  load = cmp.finish_load(cmp.check_load(0.5, allow_load=True, log=None))
  clock = _FakeClock()
  rounds = cmp.interleaved_rounds(
      _fake_sides(clock, {"jax": 0.1, "torch": 0.15}, []), rounds=10,
      steps_per_round=2, warmup=1, clock=clock, log=None, collect=False)
  summary = cmp.ratio_summary(rounds.times["jax"], rounds.times["torch"])
  rec = cmp.results_record(benchmark="toy", rounds=rounds,
                           summaries={"jax_vs_torch": summary}, load=load,
                           argv=["toy.py", "--rounds", "10"],
                           machine={"jax": "x"}, extra={"config": {"b": 8}})
  assert rec["benchmark"] == "toy" and rec["command"] == "toy.py --rounds 10"
  assert rec["date"].endswith("+00:00")
  commit, dirty = rec["git"]["commit"], rec["git"]["dirty"]
  assert commit is None or (len(commit) == 40 and isinstance(dirty, bool))
  assert rec["machine"]["jax"] == "x" and "cpu_model" in rec["machine"]
  assert rec["machine"]["logical_cores"] == os.cpu_count()
  assert rec["load_flagged"] is True
  assert rec["load"]["start"][0] == 3.0 and rec["load"]["end"][0] == 3.0
  assert rec["rounds"]["rounds"] == 10 and rec["rounds"]["steps_per_round"] == 2
  assert rec["rounds"]["seconds_per_round"]["torch"] == rounds.times["torch"]
  assert rec["summary"]["jax_vs_torch"]["median"] == pytest.approx(1.5)
  assert rec["config"] == {"b": 8}
  out = tmp_path / "sub" / "toy.json"
  cmp.write_record(out, rec)
  assert json.loads(out.read_text()) == json.loads(json.dumps(rec))
  with pytest.raises(ValueError):
    cmp.results_record(benchmark="toy", rounds=rounds, summaries={},
                       load=load, extra={"summary": 1})


def test_plain_record_fields():
  """A record without rounds (memory benchmarks): the same header fields."""
  rec = cmp.plain_record(benchmark="mem", argv=["mem.py", "--n", "2"],
                         machine={"memory": 1}, extra={"rows": [1]})
  assert rec["benchmark"] == "mem" and rec["command"] == "mem.py --n 2"
  assert rec["date"].endswith("+00:00") and set(rec["git"]) == {"commit", "dirty"}
  assert rec["machine"]["memory"] == 1 and "cpu_model" in rec["machine"]
  assert rec["rows"] == [1] and "rounds" not in rec
  with pytest.raises(ValueError):
    cmp.plain_record(benchmark="mem", extra={"git": 1})


# --------------------------------------------------------------------------
# The benchmarks' dry runs
# --------------------------------------------------------------------------

_TORCH_SIDES = {"torch_eager", "torch_compiled_model", "torch_compiled_step"}


@pytest.mark.parametrize("script", ["simclr_throughput", "moco_throughput"])
def test_benchmark_dry_run(script, tmp_path):
  """Every code path of the benchmark on a tiny model: the JAX/torch
  equivalence checks, eager torch, the compiled model and the compiled
  whole step (each checked against eager) in both memory formats, one round
  through the harness, the record. The compiled sides use torch.compile's
  ``aot_eager`` backend here (dynamo's capture and AOTAutograd without
  inductor's code generation, which takes minutes cold on 2 cores); a
  plain ``--dry_run`` uses inductor."""
  if importlib.util.find_spec("torch") is None:
    pytest.skip("torch is not installed (it comes with the bench extra: "
                "pip install -e '.[bench]'); the benchmark compares against it")
  out = tmp_path / f"{script}.json"
  proc = subprocess.run(
      [sys.executable, str(REPO / "benchmarks" / f"{script}.py"), "--dry_run",
       "--torch-compile-backend", "aot_eager", "--out", str(out)]
      + (["--profile_steps", "1"] if script == "moco_throughput" else []),
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  rec = json.loads(out.read_text())
  assert rec["benchmark"] == script and rec["dry_run"] is True
  if script == "moco_throughput":
    assert rec["config"]["conv_impl_resolved"] == "onednn"
    prof = rec["profile"]
    assert any(p.startswith("key encoder forward")
               for p in prof["jax_model"]["parts_ms"])
    assert any(p.startswith("conv on oneDNN")
               for p in prof["jax_model"]["parts_ms"])
    assert prof["torch_eager"]["parts_ms"]["conv backward"] > 0
  assert rec["rounds"]["rounds"] == 1
  assert set(rec["rounds"]["seconds_per_round"]) == (
      {"jax_model", "jax_full"} | _TORCH_SIDES)
  assert set(rec["summary"]) == {f"jax_model_vs_{s}" for s in _TORCH_SIDES}
  sides = rec["torch_sides"]
  assert set(sides) == _TORCH_SIDES
  assert set(sides["torch_eager"]["memory_format_probe_images_per_s"]) == {
      "channels_last", "contiguous"}
  for name in ("torch_compiled_model", "torch_compiled_step"):
    checks = sides[name]["compiled_vs_eager"]
    assert set(checks) == {"channels_last", "contiguous"}
    for check in checks.values():
      assert check["loss_max_rel_diff"] < 1e-3
      assert check["update_rel_diff"] < 1e-3
      assert check["update_max_rel_diff"] < 1e-1
  assert "load_flagged" in rec and rec["load"]["end"]


def test_split_bn_keeps_channels_last():
  """moco_throughput's split BN: on channels_last it keeps the format (no
  copy to NCHW at every layer) and computes what the demo's reshape path
  computes on the same values, running statistics included."""
  torch = pytest.importorskip("torch", reason="torch is not installed (the "
                              "bench extra)")
  import moco_throughput as mt  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  bns = [mt.split_bn_(torch.nn.Sequential(torch.nn.BatchNorm2d(6)), 4)[0]
         for _ in range(2)]
  with torch.no_grad():
    for bn in bns:
      bn.weight.copy_(torch.linspace(0.5, 1.5, 6))
      bn.bias.copy_(torch.linspace(-1.0, 1.0, 6))
  x = torch.randn(16, 6, 5, 5) * 3 + 1
  y_ref = bns[0](x.contiguous())
  y_cl = bns[1](x.contiguous(memory_format=torch.channels_last))
  assert y_cl.is_contiguous(memory_format=torch.channels_last)
  torch.testing.assert_close(y_cl, y_ref, rtol=1e-5, atol=1e-5)
  torch.testing.assert_close(bns[1].running_mean, bns[0].running_mean)
  torch.testing.assert_close(bns[1].running_var, bns[0].running_var)
  # Sub-batch j is rows j, G + j, ...: normalized on its own.
  torch.testing.assert_close(y_ref[1::4].mean(dim=(0, 2, 3)), bns[0].bias,
                             rtol=1e-4, atol=1e-4)

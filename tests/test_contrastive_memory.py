"""benchmarks/contrastive_memory.py: the dense-loss search, the in-process
measurement of one configuration, the RSS watchdog, and main's record (one
attempt that fails fast). The whole-step configurations (a SimCLR train step
compiles for tens of seconds on 2 cores) are covered by its ``--dry_run``,
not here."""

import json

import numpy as np

import contrastive_memory as cm  # benchmarks/ is on pytest's pythonpath (setup.cfg)

MIB = 2 ** 20


def _fake_attempts(limit):
  tried = []

  def attempt(n):
    tried.append(n)
    return {"pairs": n, "status": "ok" if n <= limit else "killed_above_cap"}
  return attempt, tried


def test_dense_search_grows_then_bisects():
  attempt, tried = _fake_attempts(limit=20000)
  out = cm.dense_search(attempt, start=4096, factor=2.0, resolution=1024,
                        max_pairs=1 << 20, log=None)
  assert tried[:4] == [4096, 8192, 16384, 32768]
  assert out["largest_ok_pairs"] == 19456 and out["first_failed_pairs"] == 20480
  assert out["first_failed_pairs"] - out["largest_ok_pairs"] <= 1024
  assert len(out["attempts"]) == len(tried) and not out["stopped_at_max"]


def test_dense_search_stops_at_max_and_when_the_first_fails():
  attempt, tried = _fake_attempts(limit=10 ** 9)
  out = cm.dense_search(attempt, start=1024, factor=4.0, resolution=1024,
                        max_pairs=16384, log=None)
  assert tried == [1024, 4096, 16384] and out["stopped_at_max"]
  assert out["first_failed_pairs"] is None
  attempt, tried = _fake_attempts(limit=100)
  out = cm.dense_search(attempt, start=1024, factor=2.0, resolution=256,
                        max_pairs=1 << 20, log=None)
  assert tried == [1024] and out["largest_ok_pairs"] is None
  assert out["first_failed_pairs"] == 1024


def test_child_measures_the_loss_in_process():
  """A configuration's record: the peak over the baseline, XLA's estimate
  beside it, and the blockwise loss equal to the dense one."""
  spec = dict(kind="loss", pairs=256, dim=32, temperature=0.2, steps=1)
  dense = cm.child(dict(spec, block=0))
  block = cm.child(dict(spec, block=64))
  for r in (dense, block):
    assert r["loss_finite"] and r["grads_finite"]
    assert r["peak_rss_increase_bytes"] >= 0
    assert r["rss_baseline_bytes"] > 50 * MIB
    assert r["xla_memory_analysis"]["temp_size_in_bytes"] > 0
    assert "rlimit_as_bytes" not in r           # no cap passed: no limit set
  assert np.isclose(dense["loss"], block["loss"], rtol=1e-4)
  assert (block["xla_memory_analysis"]["temp_size_in_bytes"]
          < dense["xla_memory_analysis"]["temp_size_in_bytes"])


def test_watchdog_kills_a_child_above_the_cap():
  r = cm.run_attempt(dict(kind="loss", pairs=64, block=0, dim=8,
                          temperature=0.2, steps=1),
                     cap_bytes=24 * MIB, timeout_s=60, as_slack_bytes=None,
                     log=None)
  assert r["status"] == "killed_above_cap" and cm.failed(r)
  assert r["sampled_peak_rss_bytes"] > 24 * MIB and not r["reached_baseline"]


def test_main_records_a_failed_dense_attempt(tmp_path):
  """One dense attempt whose logits (34 GB at 2N = 131,072) cannot fit the
  address-space backstop: XLA's RESOURCE_EXHAUSTED, in a subprocess; the
  record names it as the first failing N."""
  out = tmp_path / "mem.json"
  cm.main(["--encoders", "", "--dense_start", "65536", "--dense_max", "65536",
           "--block_pairs", "", "--no_block_at_failure", "--mem_cap_gib", "1",
           "--as_slack_gib", "0", "--out", str(out)])
  rec = json.loads(out.read_text())
  assert rec["benchmark"] == "contrastive_memory" and not rec["dry_run"]
  assert set(rec["git"]) == {"commit", "dirty"} and rec["machine"]["memory"]
  assert rec["whole_step"] == [] and rec["cap_bytes"] == 2 ** 30
  dense = rec["dense_loss_alone"]
  assert dense["first_failed_pairs"] == 65536
  assert dense["largest_ok_pairs"] is None
  (attempt,) = dense["attempts"]
  assert attempt["status"] in ("out_of_memory", "aborted", "killed_above_cap")
  assert dense["blockwise_alone"] == []

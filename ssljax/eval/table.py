"""The methods table and few-label picture of ``experiments/reproduce.py``
(placeholder until the protocol lands)."""


def write_table(results_dir: str) -> str:
  raise NotImplementedError

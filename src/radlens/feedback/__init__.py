"""Learning from radiologists: feedback records, adjudication, the active-learning queue,
monitoring with drift detection, and curation of adjudicated feedback into cases.

* :mod:`~radlens.feedback.records`: one reader's decision on one finding and what it says.
* :mod:`~radlens.feedback.adjudication`: several readers -> the label (majority or senior).
* :mod:`~radlens.feedback.queue`: the cases whose review would teach the model most,
  round-robin across sites and scanners.
* :mod:`~radlens.feedback.drift` and :mod:`~radlens.feedback.monitor`: per model version
  and site/scanner: volume, positive rate, agreement, calibration, OOD drift.
* :mod:`~radlens.feedback.cases`: ``radlens feedback export``: de-identified images and
  ``cases.csv`` for ``radlens learn``.
* :mod:`~radlens.feedback.stored`: the reads of the store (the only module here with SQL).

Everything but ``stored`` and ``cases`` is pure: it takes records and findings and
returns frozen dataclasses.
"""

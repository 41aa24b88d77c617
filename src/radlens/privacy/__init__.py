"""Privacy: de-identification and the audit trail. Each module is imported on its own.

* :mod:`radlens.privacy.deid` (with :mod:`~radlens.privacy.profile` and
  :mod:`~radlens.privacy.actions`): the PS3.15 Annex E Basic Application Level
  Confidentiality Profile with the options Retain Longitudinal Temporal Information with
  Modified Dates, Retain Patient Characteristics, Retain Device Identity and Clean
  Descriptors (``radlens deidentify``).
* :mod:`radlens.privacy.audit`: who touched which patient's data (PS3.15 A.5, IHE ATNA).
* :mod:`radlens.privacy.roles`: the roles of accounts and what each may do.

This package imports nothing, so loading one privacy module never loads another's
dependencies. See ``docs/privacy.md``.
"""

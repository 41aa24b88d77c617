"""Reports: the text draft and machine-readable findings (SR and FHIR come later)."""

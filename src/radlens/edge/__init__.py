"""radlens.edge: the offline appliance. ``bundle.py`` writes the wheelhouse an air-gapped
machine installs from (``radlens bundle``); see ``docs/edge.md``."""

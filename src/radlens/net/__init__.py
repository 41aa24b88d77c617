"""DICOM networking (pynetdicom): the C-STORE SCP with C-ECHO."""

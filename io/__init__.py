"""Input/output: DICOM, masks, plan files, reports, DICOM export, PACS. No Qt, no VTK."""

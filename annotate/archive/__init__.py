"""The archive: where radiographs come from and what becomes of them. The DICOM C-STORE listener
(``dicomnet``), DICOMweb pulls (``dicomweb``) and STOW-RS pushes (``stow``), folders and uploads
(``sources``), pseudonyms (``pseudonyms``) and the removal of what failed or expired (``cleanup``).
DICOM decoding, de-identification and the ingest itself are still annotate/dicom.py,
annotate/deidentify.py and annotate/ingest.py."""

"""What a person sees: QC overlays (``qc``), key images (``figures``) and the clinical report (``clinical_report``)."""

"""The stream: reading token files and their checks (``data``), the bytes each token stands for
(``bytes``) and the CaseOps sidecars (``caseops``)."""

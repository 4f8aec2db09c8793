"""Ingestion: sources (PubMed, ClinicalTrials.gov, files), the catalog and the scheduler wiring."""

"""Synthesis: findings extraction, grading, citation verification, digests and answers.

`synthesis.rules` holds the deterministic extractors that always run (the "none" LLM backend, features
for ranking and grading, and the referee of LLM output); `synthesis.verify` holds the checks that keep
generated text faithful to the cited record.
"""

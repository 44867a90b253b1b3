"""Scores of forecast tables: accuracy metrics, significance tests and the one judge of
"better" and "worse", and conformal intervals. Pure functions of tables; no model, no file."""

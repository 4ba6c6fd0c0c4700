"""Measuring search quality: query sets in the dev-query format, and the metrics over them."""

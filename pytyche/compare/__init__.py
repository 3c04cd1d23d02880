"""Treatment comparison and recommendations (glossary: recommendation summary, decision)."""

from pytyche.compare.variants import compare_variants, decide, recommendation_summary

__all__ = ["compare_variants", "decide", "recommendation_summary"]

"""Treatment comparison and recommendations (docs/concepts.md, *SHIP / CONTINUE / STOP*)."""

from pytyche.compare.variants import compare_variants, decide, recommendation_summary

__all__ = ["compare_variants", "decide", "recommendation_summary"]

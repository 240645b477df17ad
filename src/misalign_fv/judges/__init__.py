"""LLM judges for the evaluation suite: one interface (:class:`Judge`), three backends (``hf`` and
``vllm`` load a local open model in the eval job; ``openai`` calls any OpenAI-compatible endpoint),
the reference's log-probability 0-100 scoring with a sample-and-parse fallback, and an on-disk
verdict cache shared by all evaluation jobs."""

from misalign_fv.judges.cache import VerdictCache
from misalign_fv.judges.judge import Judge, JudgePrompt, Verdict, model_identity, usable_share

__all__ = ["Judge", "JudgePrompt", "Verdict", "VerdictCache", "model_identity", "usable_share"]

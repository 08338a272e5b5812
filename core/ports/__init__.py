"""Ports: the protocols the core needs from the driven side."""

from .clock import Clock, IdSource, RandomIds, SystemClock
from .model import ModelPort
from .retriever import Passage, Retriever
from .snapshots import SnapshotManifest, SnapshotStore
from .stop import CONTINUE, StopRule, StopRuleFactory, Verdict
from .tokenizer import IncrementalDecoder, TokenizerPort

__all__ = [
    "CONTINUE",
    "Clock",
    "IdSource",
    "IncrementalDecoder",
    "ModelPort",
    "Passage",
    "RandomIds",
    "Retriever",
    "SnapshotManifest",
    "SnapshotStore",
    "StopRule",
    "StopRuleFactory",
    "SystemClock",
    "TokenizerPort",
    "Verdict",
]

"""Ports: the protocols the core needs from the driven side."""

from .clock import Clock, IdSource, RandomIds, SystemClock
from .family import GenerationDefaults, LoadedModel, ModelLoader
from .grammar import GrammarPort, TokenMatcher
from .model import ModelPort, RowRejected
from .retriever import Passage, Retriever
from .snapshots import SnapshotManifest, SnapshotStore
from .stop import CONTINUE, StopRule, StopRuleFactory, Verdict
from .tokenizer import IncrementalDecoder, TokenizerPort

__all__ = [
    "CONTINUE",
    "Clock",
    "GenerationDefaults",
    "GrammarPort",
    "IdSource",
    "IncrementalDecoder",
    "LoadedModel",
    "ModelLoader",
    "ModelPort",
    "Passage",
    "RandomIds",
    "Retriever",
    "RowRejected",
    "SnapshotManifest",
    "SnapshotStore",
    "StopRule",
    "StopRuleFactory",
    "SystemClock",
    "TokenMatcher",
    "TokenizerPort",
    "Verdict",
]

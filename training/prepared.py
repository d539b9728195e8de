"""What a training run works from, once every check has passed (`train.prepare` builds it).

Its own module, below the stages and the training loop, so that the stages can name the type
without importing the loop that runs them.
"""
from __future__ import annotations

from dataclasses import dataclass

from .annotations import AnnotatedDoc
from .config import Config


@dataclass
class Prepared:
    config: Config
    base_path: str
    tokenizer: object
    train_docs: list[AnnotatedDoc]
    eval_docs: list[AnnotatedDoc]

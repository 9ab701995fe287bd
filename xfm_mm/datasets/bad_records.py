# Copyright (c) xfm_mm contributors. All rights reserved.
"""Counting, logging and policing the bad records of JSON-lines shards."""
import logging
from collections import Counter
from typing import Dict, Optional

from mmengine.logging import print_log


class BadShardError(RuntimeError):
    """Raised when most records of one shard are bad."""


class BadRecordCounter:
    """Counts skipped records per reason and stops on a mostly bad shard.

    Two kinds of counts are kept: ``counts`` are *skipped records* per
    reason (these decide whether a shard is bad), ``dropped`` are parts of a
    record that were left out while the record itself was used (e.g. one
    region box outside the image). Each dataloader worker keeps its own
    counter; counts are logged through mmengine's current logger.

    Args:
        name (str): Dataset name used in log lines.
        max_bad_fraction (float): A shard whose fraction of bad records is
            above this stops the run. Defaults to 0.5.
        min_records (int): A shard is judged before its end only once this
            many of its records were seen. Defaults to 1000.
        log_interval (int): Log a summary every this many records seen
            (0 disables periodic logs). Defaults to 10000.
        max_warnings (int): Log each of the first this many bad records
            individually. Defaults to 10.
    """

    def __init__(self,
                 name: str,
                 max_bad_fraction: float = 0.5,
                 min_records: int = 1000,
                 log_interval: int = 10000,
                 max_warnings: int = 10) -> None:
        self.name = name
        self.max_bad_fraction = max_bad_fraction
        self.min_records = min_records
        self.log_interval = log_interval
        self.max_warnings = max_warnings
        self.counts: Counter = Counter()
        self.dropped: Counter = Counter()
        self.num_seen = 0
        self._warned = 0

    @property
    def num_bad(self) -> int:
        """int: Records skipped so far."""
        return sum(self.counts.values())

    def add_good(self) -> None:
        """Count one usable record."""
        self._seen()

    def add_bad(self,
                reason: str,
                where: str,
                detail: str = '',
                seen: bool = True) -> None:
        """Count one skipped record.

        Args:
            reason (str): The reason key.
            where (str): ``file:line`` of the record.
            detail (str): Extra text for the log.
            seen (bool): Whether this is the first time the record is
                judged (False when a record already counted as good at
                load time turns out bad when served).
        """
        self.counts[reason] += 1
        if self._warned < self.max_warnings:
            self._warned += 1
            suffix = ' (further bad records are only counted)' \
                if self._warned == self.max_warnings else ''
            print_log(
                f'{self.name}: skipped bad record {where}: {reason}'
                f'{" - " + detail if detail else ""}{suffix}',
                logger='current',
                level=logging.WARNING)
        if seen:
            self._seen()

    def add_dropped(self, reason: str, num: int = 1) -> None:
        """Count parts of a record that were left out.

        Args:
            reason (str): The reason key.
            num (int): How many. Defaults to 1.
        """
        self.dropped[reason] += num

    def _seen(self) -> None:
        self.num_seen += 1
        if self.log_interval and self.num_seen % self.log_interval == 0:
            self.log_summary()

    def summary(self) -> str:
        """str: One line with the counts per reason."""
        parts = [
            f'{self.num_bad} of {self.num_seen} records skipped ' +
            str(dict(sorted(self.counts.items())))
        ]
        if self.dropped:
            parts.append('dropped parts ' +
                         str(dict(sorted(self.dropped.items()))))
        return f'{self.name}: ' + '; '.join(parts)

    def log_summary(self, force: bool = False) -> None:
        """Log ``summary()`` if anything was skipped or dropped.

        Args:
            force (bool): Log even when nothing was skipped.
        """
        if force or self.num_bad or self.dropped:
            print_log(self.summary(), logger='current', level=logging.INFO)

    def check_shard(self,
                    path: str,
                    num_seen: int,
                    num_bad: int,
                    reasons: Optional[Dict[str, int]] = None,
                    final: bool = True) -> None:
        """Stop the run if most records of one shard are bad.

        Args:
            path (str): The shard.
            num_seen (int): Its records seen so far (or all of them).
            num_bad (int): How many of those were bad.
            reasons (dict, optional): Its bad counts per reason, for the
                message.
            final (bool): True when ``num_seen`` is the whole shard; if
                False the shard is only judged after ``min_records``.

        Raises:
            BadShardError: Naming the file.
        """
        if num_seen == 0 or (not final and num_seen < self.min_records):
            return
        if num_bad > self.max_bad_fraction * num_seen:
            raise BadShardError(
                f'{self.name}: {num_bad} of {num_seen} records of shard '
                f'{path} are bad (more than {self.max_bad_fraction:.0%}); '
                f'reasons: {dict(reasons or {})}. Fix or remove this file.')

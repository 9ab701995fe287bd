# Copyright (c) xfm_mm contributors. All rights reserved.
"""Counting, logging and policing the bad records of JSON-lines shards."""
import logging
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

from mmengine.logging import print_log

from xfm_mm.utils.args import check_arg
from .readers import (BadRecordError, ShardReadError, iter_shard_lines,
                      parse_json_line)


class BadShardError(RuntimeError):
    """Raised when most records of one shard are bad."""


class ShardStats:
    """Records read and found bad in one shard (for the bad-shard rule).

    Args:
        path (str): The shard.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.num_seen = 0
        self.reasons: Counter = Counter()

    @property
    def num_bad(self) -> int:
        """int: Bad records of the shard so far."""
        return sum(self.reasons.values())


class BadRecordCounter:
    """Counts skipped records per reason and stops on a mostly bad shard.

    Three kinds of counts are kept: ``counts`` are *skipped records* per
    reason (these decide whether a shard is bad), ``dropped`` are parts of a
    record that were left out while the record itself was used (e.g. one
    region box outside the image), ``shard_errors`` are shards that could
    not be read to their end (their lines before the failure are used).
    Each dataloader worker keeps its own counter; counts are logged through
    mmengine's current logger.

    Args:
        name (str): Dataset name used in log lines and errors.
        max_bad_fraction (float): A shard whose fraction of bad records is
            above this stops the run; in [0, 1]. Defaults to 0.5.
        min_records (int): A shard is judged before its end only once this
            many of its records were seen. Defaults to 1000.
        log_interval (int): Log a summary every this many records seen
            (0 disables periodic logs). Defaults to 10000.
        max_warnings (int): Log each of the first this many bad records
            individually, and as many of those found bad only when served.
            Defaults to 10.
    """

    def __init__(self,
                 name: str,
                 max_bad_fraction: float = 0.5,
                 min_records: int = 1000,
                 log_interval: int = 10000,
                 max_warnings: int = 10) -> None:
        is_number = isinstance(max_bad_fraction, (int, float)) \
            and not isinstance(max_bad_fraction, bool)
        check_arg(is_number and 0 <= max_bad_fraction <= 1, name,
                  'max_bad_fraction', 'a number in [0, 1]', max_bad_fraction)
        self.name = name
        self.max_bad_fraction = max_bad_fraction
        self.min_records = min_records
        self.log_interval = log_interval
        self.max_warnings = max_warnings
        self.counts: Counter = Counter()
        self.dropped: Counter = Counter()
        self.shard_errors: Counter = Counter()
        self.num_seen = 0
        self.num_served_bad = 0
        self._warned = Counter()

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
                judged; False when a record already counted as good at load
                time turns out bad when served. Such records have their own
                budget of individual warnings, and a summary is logged at
                the 1st, 2nd, 4th, 8th, ... of them, so they reach the
                training log.
        """
        self.counts[reason] += 1
        when = 'skipped bad record' if seen else 'record found bad when served'
        if self._warned[seen] < self.max_warnings:
            self._warned[seen] += 1
            suffix = ' (further ones are only counted)' \
                if self._warned[seen] == self.max_warnings else ''
            print_log(
                f'{self.name}: {when} {where}: {reason}'
                f'{" - " + detail if detail else ""}{suffix}',
                logger='current',
                level=logging.WARNING)
        if seen:
            self._seen()
            return
        self.num_served_bad += 1
        if self.num_served_bad & (self.num_served_bad - 1) == 0:
            self.log_summary()

    def add_dropped(self, reason: str, num: int = 1) -> None:
        """Count parts of a record that were left out.

        Args:
            reason (str): The reason key.
            num (int): How many. Defaults to 1.
        """
        self.dropped[reason] += num

    def add_shard_error(self, error: ShardReadError) -> None:
        """Count (and log) a shard that could not be read to its end.

        Args:
            error (ShardReadError): The failure, naming file and line.
        """
        self.shard_errors[type(error.error).__name__] += 1
        print_log(
            f'{self.name}: {error}; its lines so far are used, the rest '
            'is skipped',
            logger='current',
            level=logging.WARNING)

    def _seen(self) -> None:
        self.num_seen += 1
        if self.log_interval and self.num_seen % self.log_interval == 0:
            self.log_summary()

    def summary(self) -> str:
        """str: One line with the counts per reason."""
        skipped = f'{self.num_bad} of {self.num_seen} records skipped ' + \
            str(dict(sorted(self.counts.items())))
        if self.num_served_bad:
            skipped += f' ({self.num_served_bad} found bad when served)'
        parts = [skipped]
        if self.dropped:
            parts.append('dropped parts ' +
                         str(dict(sorted(self.dropped.items()))))
        if self.shard_errors:
            parts.append('shards not read to their end ' +
                         str(dict(sorted(self.shard_errors.items()))))
        return f'{self.name}: ' + '; '.join(parts)

    def log_summary(self, force: bool = False) -> None:
        """Log ``summary()`` if anything was skipped or dropped.

        Args:
            force (bool): Log even when nothing was skipped.
        """
        if force or self.num_bad or self.dropped or self.shard_errors:
            print_log(self.summary(), logger='current', level=logging.INFO)

    def check_shard(self, stats: ShardStats, final: bool = True) -> None:
        """Stop the run if most records of one shard are bad.

        Args:
            stats (ShardStats): The shard's counts so far.
            final (bool): True when the whole shard was seen; if False the
                shard is only judged after ``min_records``.

        Raises:
            BadShardError: Naming the file.
        """
        num_seen, num_bad = stats.num_seen, stats.num_bad
        if num_seen == 0 or (not final and num_seen < self.min_records):
            return
        if num_bad > self.max_bad_fraction * num_seen:
            raise BadShardError(
                f'{self.name}: {num_bad} of {num_seen} records of shard '
                f'{stats.path} are bad (more than '
                f'{self.max_bad_fraction:.0%}); reasons: '
                f'{dict(stats.reasons)}. Fix or remove this file.')

    def read_shard(
        self,
        stats: ShardStats,
        convert: Callable[[dict], dict],
        stride: int = 1,
        offset: int = 0,
        judge_early: bool = False,
        records: Optional[Iterable[Tuple[Any, Any]]] = None,
        decode: Callable[[Any], dict] = parse_json_line
    ) -> Iterator[Tuple[int, dict]]:
        """Convert the records of a shard, skipping and counting bad ones.

        A shard that cannot be read to its end (a truncated gzip) is
        counted and logged, and its lines before the failure are used.

        Args:
            stats (ShardStats): The shard's counts, updated here.
            convert (Callable): ``record -> item``; raises
                :class:`BadRecordError` for a record to skip.
            stride (int): See :func:`iter_shard_lines`.
            offset (int): See :func:`iter_shard_lines`.
            judge_early (bool): Apply the bad-shard rule after each bad
                record (once ``min_records`` were seen), not only at the
                end of the shard.
            records (Iterable, optional): ``(position, raw)`` pairs of a
                shard of another format (e.g. tar samples by key); the
                JSON lines of ``stats.path`` when None. May raise
                :class:`ShardReadError`.
            decode (Callable): ``raw -> record``; raises
                :class:`BadRecordError`. Defaults to
                :func:`parse_json_line`.

        Yields:
            tuple[int, dict]: The line number (position) and
            ``convert(record)``.

        Raises:
            BadShardError: For a mostly bad shard.
        """
        path = stats.path
        try:
            if records is None:
                records = iter_shard_lines(path, stride, offset)
            for line_no, raw in records:
                stats.num_seen += 1
                try:
                    item = convert(decode(raw))
                except BadRecordError as e:
                    stats.reasons[e.reason] += 1
                    self.add_bad(e.reason, f'{path}:{line_no}', e.detail)
                    if judge_early:
                        self.check_shard(stats, final=False)
                    continue
                self.add_good()
                yield line_no, item
        except ShardReadError as e:
            self.add_shard_error(e)
        self.check_shard(stats, final=True)

# Copyright (c) xfm_mm contributors. All rights reserved.
from .atomic_io import (ATOMIC_BACKEND, AtomicLocalBackend, atomic_write,
                        remove_partial_files)
from .checkpoint import (TRUST_ENV_VAR, CorruptCheckpointError,
                         UnsafeCheckpointError, checkpoint_safe_globals,
                         load_from_safe_alias, load_from_safe_http,
                         load_from_safe_local, register_safe_loader,
                         safe_torch_load)
from .launch import setup_cpu_distributed, shutdown_distributed

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'CorruptCheckpointError',
    'TRUST_ENV_VAR', 'UnsafeCheckpointError', 'atomic_write',
    'checkpoint_safe_globals', 'load_from_safe_alias', 'load_from_safe_http',
    'load_from_safe_local', 'register_safe_loader', 'remove_partial_files',
    'safe_torch_load', 'setup_cpu_distributed', 'shutdown_distributed'
]

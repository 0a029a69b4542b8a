"""Work around a Ray Tune failure that a killed driver leaves behind (seen with Ray 2.60).

The driver prunes a trial's old Ray checkpoints (num_to_keep) as new ones arrive, and snapshots the
experiment state only now and then. When the driver is killed between a pruning and the next snapshot, the
restored state still lists a checkpoint whose directory is gone; at the trial's next checkpoint Ray tries to
prune it again, `_delete_fs_path` raises FileNotFoundError, and Tune abandons the rest of that checkpoint's
bookkeeping (the trial's checkpoint index and cached state are not updated) with a traceback in the log.
A checkpoint that is already deleted needs no deleting: skip it.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def tolerate_pruned_checkpoints() -> bool:
    """Make Ray's checkpoint pruning skip directories that no longer exist. Idempotent; returns whether
    the patch is in place (False when this Ray has no such function: nothing to fix there)."""
    try:
        from ray.train._internal import checkpoint_manager
    except ImportError:
        return False
    delete = getattr(checkpoint_manager, "_delete_fs_path", None)
    if delete is None:
        return False
    if getattr(delete, "tolerates_missing", False):
        return True

    def delete_if_present(fs, fs_path: str) -> None:  # noqa: ANN001 - pyarrow FileSystem
        import pyarrow.fs

        if fs.get_file_info(fs_path).type == pyarrow.fs.FileType.NotFound:
            logger.debug("checkpoint %s was pruned before the driver restarted", fs_path)
            return
        delete(fs=fs, fs_path=fs_path)

    delete_if_present.tolerates_missing = True  # type: ignore[attr-defined]
    checkpoint_manager._delete_fs_path = delete_if_present
    return True

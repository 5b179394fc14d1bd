"""Training flow-matching priors: the loop (:mod:`.train`), its data (:mod:`.data`) and resumable
checkpoints (:mod:`.checkpoint`). ``ctflow train-prior`` is the command line."""

from .checkpoint import export_checkpoint, latest_checkpoint, load_training_checkpoint, save_training_checkpoint
from .train import TrainConfig, train

__all__ = ["TrainConfig", "export_checkpoint", "latest_checkpoint", "load_training_checkpoint", "save_training_checkpoint", "train"]

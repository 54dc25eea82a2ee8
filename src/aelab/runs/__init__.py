"""The run record: run directories, checkpoints, the one-writer lock, TensorBoard event files, opening a model."""

"""pocketlm.pipeline: corpus → vocabulary and token ids (ingest) → trained checkpoint (train),
plus the ``pocketlm`` command line. Submodules import torch and datasets; this package itself
imports nothing heavy, so ``pocketlm score`` stays light."""
